"""Chapter 5 from the command line.

    python -m lisalib.shirg tokens --width W --height H [--pinpoints lavida|stage2] [--json]
        LaViDa's token counts for an image (real so400m layout): views, raw, pooled, LLM-side
    python -m lisalib.shirg select [--scene I] [--selector NAME] [--budget K] [--json]
        one val scene: which tokens each selector keeps for each question, and the target recall
    python -m lisalib.shirg evaluate [--seed S] [--n_scenes N] [--budget K] [--json]
        the shipped tiny-lavida on small-detail questions: every selector, before/after projector LoRA
    python -m lisalib.shirg train [--out_dir DIR] [--json]
        train tiny-lavida (both stages) and save it (default: the package zoo's runs/tiny-lavida)
    python -m lisalib.shirg cost [--json]
        prefill FLOPs and KV cache vs K at LLaDA-8B size, the projector and its LoRA
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from lisalib.cli import add_dataclass_subparsers, format_table, from_namespace

_JSON = {"help": "print one JSON object"}


@dataclass
class TokensArgs:
    width: int = field(default=768, metadata={"help": "image width in pixels"})
    height: int = field(default=768, metadata={"help": "image height in pixels"})
    pinpoints: str = field(default="lavida", metadata={"help": "grid pinpoints", "choices": ["lavida", "stage2"]})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class SelectArgs:
    scene: int = field(default=0, metadata={"help": "index of the val scene"})
    seed: int = field(default=0, metadata={"help": "val split seed (scenes (9100 + seed, i))"})
    selector: str = field(default="text", metadata={"help": "selector", "choices": ["uniform", "random", "saliency",
                                                                                   "text"]})
    budget: int = field(default=80, metadata={"help": "tokens kept (K; pooling keeps 80)"})
    coverage: float = field(default=0.25, metadata={"help": "text selector: share of K spread over the views"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class EvaluateArgs:
    seed: int = field(default=0, metadata={"help": "val split seed (scenes (9100 + seed, i))"})
    n_scenes: int = field(default=300, metadata={"help": "val scenes (about 2.4 questions each)"})
    budget: int = field(default=80, metadata={"help": "tokens kept (K; pooling keeps 80)"})
    coverage: float = field(default=0.25, metadata={"help": "text selector: share of K spread over the views"})
    run: str | None = field(default=None, metadata={"help": "a saved run directory (default: shipped tiny-lavida)"})
    timing: bool = field(default=True, metadata={"help": "also time selection against the encoder"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class TrainArgs:
    out_dir: str | None = field(default=None, metadata={"help": "where to save (default: the zoo's runs/tiny-lavida)"})
    train_scenes: int = field(default=8000, metadata={"help": "training scenes"})
    steps: int = field(default=3000, metadata={"help": "pooled-stage steps"})
    lora_steps: int = field(default=800, metadata={"help": "projector-LoRA steps"})
    detail_steps: int = field(default=5000, metadata={"help": "the tower's detail-stage steps (0: tiny-siglip as is)"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class CostArgs:
    json: bool = field(default=False, metadata=_JSON)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lisalib.shirg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = add_dataclass_subparsers(parser)
    for name, kind in (("tokens", TokensArgs), ("select", SelectArgs), ("evaluate", EvaluateArgs),
                       ("train", TrainArgs), ("cost", CostArgs)):
        sub.add_parser(name, help=(__doc__.split(f"lisalib.shirg {name}")[1].split("\n")[1].strip()),
                       dataclass_types=kind)
    namespace = parser.parse_args(argv)
    command = namespace.command
    args = from_namespace({"tokens": TokensArgs, "select": SelectArgs, "evaluate": EvaluateArgs, "train": TrainArgs,
                           "cost": CostArgs}[command], namespace)
    result = globals()[f"_{command}"](args)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        _print(command, result)
    return 0


def _tokens(args: TokensArgs) -> dict:
    from lisalib.shirg.layout import LAVIDA_PINPOINTS, STAGE2_PINPOINTS, token_counts

    pinpoints = LAVIDA_PINPOINTS if args.pinpoints == "lavida" else STAGE2_PINPOINTS
    return {"width": args.width, "height": args.height, "pinpoints": [list(p) for p in pinpoints],
            **token_counts(args.width, args.height, pinpoints)}


def _select(args: SelectArgs) -> dict:
    from lisalib.shirg.data import GRID, encode_scenes, make_scenes
    from lisalib.shirg.evaluate import selections
    from lisalib.shirg.select import recall
    from lisalib.zoo import load_siglip

    siglip, processor = load_siglip("tiny-siglip")
    scenes = make_scenes(args.scene + 1, args.seed, "val")[args.scene:]
    data = encode_scenes(siglip, processor, scenes, progress=False)
    picks = selections(data, siglip, processor, args.selector, args.budget, args.coverage, args.seed)
    questions = []
    for sample, mask in zip(data.samples, picks):
        views, flat = mask.nonzero()
        questions.append({"question": sample.question, "answer": sample.answer,
                          "recall": recall(mask, sample.target_tokens), "target_tokens": int(sample.target_tokens.sum()),
                          "kept": [[int(v), int(i) // GRID, int(i) % GRID] for v, i in zip(views, flat)]})
    return {"scene": args.scene, "seed": args.seed, "selector": args.selector, "budget": args.budget,
            "questions": questions}


def _evaluate(args: EvaluateArgs) -> dict:
    from lisalib.shirg.data import encode_scenes, make_scenes
    from lisalib.shirg.evaluate import evaluate_run
    from lisalib.shirg.timing import selection_overhead
    from lisalib.shirg.train import load_run
    from lisalib.zoo import load_siglip

    model, tokenizer, run = load_run(args.run)
    siglip, processor = load_siglip("tiny-siglip")
    data = encode_scenes(siglip, processor, make_scenes(args.n_scenes, args.seed, "val"), progress=not args.json)
    result = {"seed": args.seed, **evaluate_run(model, tokenizer, run, siglip, processor, data, args.budget,
                                                args.coverage, args.seed)}
    if args.timing:
        result["timing"] = selection_overhead(model, siglip, processor, data, args.budget)
    return result


def _train(args: TrainArgs) -> dict:
    from lisalib.shirg.train import LavidaRecipe, save_run, train_run
    from lisalib.zoo import RUNS_DIR

    recipe = LavidaRecipe(train_scenes=args.train_scenes, steps=args.steps, lora_steps=args.lora_steps,
                          detail_steps=args.detail_steps)
    model, tokenizer, run = train_run(recipe, progress=not args.json)
    out = args.out_dir or RUNS_DIR / "tiny-lavida"
    run["command"] = "python -m lisalib.shirg train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else ""
    save_run(model, tokenizer, run, out)
    return {"out_dir": str(out), **{k: v for k, v in run.items() if k != "stages"},
            "stages": {k: {a: b for a, b in v.items() if a != "losses"} for k, v in run["stages"].items()}}


def _cost(args: CostArgs) -> dict:
    from lisalib.shirg.cost import cost_table, encoder_flops_per_view, projector_lora_params, projector_params

    return {"table": cost_table(), "projector_params": projector_params(),
            "projector_lora_params": projector_lora_params(), "encoder_flops_per_view": encoder_flops_per_view()}


def _print(command: str, result: dict) -> None:
    if command == "evaluate":
        rows = [(name, row.get("recall"), row["accuracy"], row["accuracy_before_lora"], row["n"])
                for name, row in result["selectors"].items()]
        rows += [(f"baseline: {name}", None, row["accuracy"], None, row["n"]) for name, row in result["baselines"].items()]
        print(format_table(rows, ("selector", "recall", "accuracy", "before LoRA", "n")))
        print("text vs pooled:", result["gain_text_vs_pooled"])
        if "timing" in result:
            print("timing:", result["timing"])
        return
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
