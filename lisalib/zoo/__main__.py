"""Command line for the tiny zoo.

    python -m lisalib.zoo build [--only NAME] [--json]   pretrain and save zoo models (minutes on a CPU)
    python -m lisalib.zoo build --only NAME --recipe KEY=VALUE [...] --out_dir DIR
                                                         try a recipe change without touching the zoo
    python -m lisalib.zoo eval [--only NAME] [--json]    re-measure the shipped models on held-out data
    python -m lisalib.zoo list                           what the zoo has and where it lives
"""
from __future__ import annotations

import argparse
import json
import sys

from lisalib.zoo import BACKBONES_DIR, ZOO_MODELS, ZooError, load_sam, load_vlm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lisalib.zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("build", "pretrain and save zoo models"), ("eval", "measure shipped zoo models")):
        p = sub.add_parser(command, help=text)
        p.add_argument("--only", choices=sorted(ZOO_MODELS), action="append", help="limit to this model (repeatable)")
        p.add_argument("--json", action="store_true", help="print the results as one JSON object")
        p.add_argument("--samples", type=int, default=200, help="held-out scenes to evaluate on (eval only)")
    build_parser = sub.choices["build"]
    build_parser.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                              help="override a recipe field (repeatable; needs one --only and --out_dir)")
    build_parser.add_argument("--out_dir", help="save there instead of the package zoo")
    sub.add_parser("list", help="list zoo models")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, family in ZOO_MODELS.items():
            built = (BACKBONES_DIR / name / "config.json").is_file()
            print(f"{name:12s} {family:4s} {'built' if built else 'not built'}  {BACKBONES_DIR / name}")
        return 0
    names = args.only or list(ZOO_MODELS)
    overrides = {}
    if args.command == "build" and (args.recipe or args.out_dir):
        if len(names) != 1 or not args.out_dir:
            parser.error("--recipe and --out_dir need exactly one --only NAME and an --out_dir")
        overrides = recipe_overrides(names[0], args.recipe)
    results = {}
    for name in names:
        if args.command == "build":
            from lisalib.zoo.build import build

            results[name] = build(name, out_dir=args.out_dir, progress=not args.json, **overrides)
        else:
            results[name] = evaluate(name, args.samples)
        if not args.json:
            print(f"{name}: {json.dumps(results[name].get('metrics', results[name]))}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def recipe_overrides(name: str, items: list[str]) -> dict:
    """``["steps=1800", "position_std=2.0"]`` -> typed overrides of ``name``'s recipe; unknown keys are errors."""
    from dataclasses import fields

    from lisalib.zoo.pretrain.sam import SamRecipe
    from lisalib.zoo.pretrain.vlm import VlmRecipe

    known = {f.name for f in fields(VlmRecipe if ZOO_MODELS[name] == "vlm" else SamRecipe)}
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
    if ZOO_MODELS[name] == "vlm":
        from lisalib.zoo.pretrain.vlm import evaluate_vlm

        return evaluate_vlm(*load_vlm(name), n_scenes=n_scenes)
    from lisalib.zoo.pretrain.sam import evaluate_sam

    return evaluate_sam(*load_sam(name), n_scenes=n_scenes)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ZooError as error:
        sys.exit(f"error: {error}")
