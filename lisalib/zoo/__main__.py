"""Command line for the tiny zoo.

    python -m lisalib.zoo build [--only NAME] [--json]   pretrain and save zoo models (minutes on a CPU)
    python -m lisalib.zoo build --only NAME --recipe KEY=VALUE [...] --out_dir DIR
                                                         try a recipe change without touching the zoo
    python -m lisalib.zoo build --only tiny-llava --start_from CKPT [--out_dir DIR]
                                                         only the recipe's later stages, on CKPT's weights
    python -m lisalib.zoo eval [--only NAME] [--json]    re-measure the shipped models on held-out data
    python -m lisalib.zoo list                           what the zoo has and where it lives
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from lisalib.cli import add_dataclass_subparsers, from_namespace
from lisalib.zoo import BACKBONES_DIR, ZOO_MODELS, ZooError, load_zoo_model


_ONLY = {"help": "limit to these models (repeatable)", "choices": sorted(ZOO_MODELS), "action": "extend"}


@dataclass
class BuildArgs:
    """``build``: pretrain, measure, save."""

    only: list[str] | None = field(default=None, metadata=_ONLY)
    json: bool = field(default=False, metadata={"help": "print the results as one JSON object"})
    recipe: list[str] | None = field(default=None, metadata={
        "help": "KEY=VALUE overrides of a recipe field, repeatable (needs one --only and --out_dir)",
        "action": "extend"})
    out_dir: str | None = field(default=None, metadata={"help": "save there instead of the package zoo"})
    start_from: str | None = field(default=None, metadata={
        "help": "tiny-llava: run only the recipe's later stages, on this built checkpoint's weights"})


@dataclass
class EvalArgs:
    """``eval``: re-measure the shipped models on held-out data."""

    only: list[str] | None = field(default=None, metadata=_ONLY)
    json: bool = field(default=False, metadata={"help": "print the results as one JSON object"})
    samples: int = field(default=200, metadata={"help": "held-out scenes to evaluate on"})
    update_cards: str | None = field(default=None, metadata={
        "help": "write the new figures into the shipped cards, with this note saying why"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lisalib.zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = add_dataclass_subparsers(parser)
    sub.add_parser("build", help="pretrain and save zoo models", dataclass_types=BuildArgs)
    sub.add_parser("eval", help="measure shipped zoo models", dataclass_types=EvalArgs)
    sub.add_parser("list", help="list zoo models", dataclass_types=[])
    namespace = parser.parse_args(argv)

    if namespace.command == "list":
        for name, family in ZOO_MODELS.items():
            built = (BACKBONES_DIR / name / "config.json").is_file()
            print(f"{name:12s} {family:4s} {'built' if built else 'not built'}  {BACKBONES_DIR / name}")
        return 0
    building = namespace.command == "build"
    args = from_namespace(BuildArgs if building else EvalArgs, namespace)
    names = args.only or list(ZOO_MODELS)
    overrides = {}
    if building and (args.recipe or args.out_dir or args.start_from):
        if len(names) != 1 or (args.recipe and not args.out_dir):
            parser.error("--recipe, --start_from and --out_dir need exactly one --only NAME, and --recipe an --out_dir")
        overrides = recipe_overrides(names[0], args.recipe or [])
    results = {}
    for name in names:
        if building:
            from lisalib.zoo.build import build

            results[name] = build(name, out_dir=args.out_dir, progress=not args.json, start_from=args.start_from,
                                  **overrides)
        else:
            results[name] = evaluate(name, args.samples)
            if args.update_cards:
                from lisalib.zoo.build import update_card

                update_card(name, results[name], args.update_cards)
        if not args.json:
            print(f"{name}: {json.dumps(results[name].get('metrics', results[name]))}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def recipe_overrides(name: str, items: list[str]) -> dict:
    """``["steps=1800", "position_std=2.0"]`` -> typed overrides of ``name``'s recipe; unknown keys are errors."""
    from dataclasses import fields

    from lisalib.zoo.build import _family

    known = {f.name for f in fields(_family(name)[0])}
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ZooError(f"--recipe {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ZooError(f"--recipe {item!r}: the value is not a number, true/false or null") from None
    return overrides


def evaluate(name: str, n_scenes: int) -> dict:
    """Held-out figures of a shipped zoo model, measured as its build measured them."""
    from lisalib.zoo.build import _family

    return _family(name)[2](*load_zoo_model(name), n_scenes=n_scenes)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ZooError as error:
        sys.exit(f"error: {error}")
