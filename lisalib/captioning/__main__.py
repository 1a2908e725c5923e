"""Chapter 6 from the command line.

    python -m lisalib.captioning train [--variants prefix,prefix_pooled,ved_frozen,ved] [--seeds 0,1,2] [--steps N]
                                       [--out_dir DIR] [--export] [--json]
        train variants under the one protocol, score each on val split 0; --export ships seed 0 to the zoo
    python -m lisalib.captioning evaluate [--seed S] [--n_val N] [--runs DIR] [--timing] [--json]
        score the shipped tiny checkpoints and the baselines on val split S; time the variants side by side
    python -m lisalib.captioning tune --specs JSON [--out FILE] [--json]
        short probes of recipe variations, scored on the tuning split (val split 7, never the table's split 0)
    python -m lisalib.captioning compare [--sweep FILE] [--real_size_timing] [--json]
        004's claims next to the real-size parameter counts and the measured figures (3-seed sweep if given);
        --real_size_timing times a real-size training step of the prefix model with and without pooling
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lisalib.cli import add_dataclass_subparsers, format_table, from_namespace

_JSON = {"help": "print one JSON object"}
SWEEP_FILE = "runs/caption/sweep.json"  # what `make caption` writes: every seed's scores


@dataclass
class TrainArgs:
    variants: str = field(default="prefix,prefix_pooled,ved_frozen,ved", metadata={"help": "comma-separated variants"})
    seeds: str = field(default="0", metadata={"help": "comma-separated training seeds"})
    steps: int = field(default=900, metadata={"help": "optimizer steps per run (the same for every variant)"})
    train_images: int = field(default=4000, metadata={"help": "training images"})
    n_val: int = field(default=500, metadata={"help": "val images scored after training (val split 0)"})
    out_dir: str = field(default="runs/caption", metadata={"help": "where runs and sweep.json go"})
    export: bool = field(default=False, metadata={"help": "copy the seed-0 runs into the zoo (tiny-caption-*)"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class EvaluateArgs:
    seed: int = field(default=0, metadata={"help": "val split seed (scenes (62000 + seed, i))"})
    n_val: int = field(default=500, metadata={"help": "val images"})
    runs: str | None = field(default=None, metadata={"help": "folder of tiny-caption-* runs (default: the zoo's)"})
    timing: bool = field(default=True, metadata={"help": "time the variants side by side (train step, decoding)"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class TuneArgs:
    specs: str = field(default="[]", metadata={"help": 'JSON list of {"variant": ..., "tag": ..., <recipe fields>}'})
    out: str = field(default="runs/caption/tune/probes.jsonl", metadata={"help": "JSON lines appended per probe"})
    json: bool = field(default=False, metadata=_JSON)


@dataclass
class CompareArgs:
    sweep: str = field(default=SWEEP_FILE, metadata={"help": "sweep.json of `train --seeds 0,1,2` (optional)"})
    real_size_timing: bool = field(default=False, metadata={
        "help": "time real-size (random-weight) prefix steps at pool factors 1, 2, 7 side by side (~80 s on one CPU thread)"})
    timing_batch: int = field(default=4, metadata={"help": "batch of the real-size timing"})
    json: bool = field(default=False, metadata=_JSON)


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    parser = argparse.ArgumentParser(prog="python -m lisalib.captioning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = add_dataclass_subparsers(parser)
    kinds = {"train": TrainArgs, "evaluate": EvaluateArgs, "tune": TuneArgs, "compare": CompareArgs}
    for name, kind in kinds.items():
        usage = __doc__.split(f"lisalib.captioning {name}")[1].split("\n")[1:]
        sub.add_parser(name, help=next(line.strip() for line in usage if not line.strip().startswith("[")),
                       dataclass_types=kind)
    namespace = parser.parse_args(argv)
    args = from_namespace(kinds[namespace.command], namespace)
    result = globals()[f"_{namespace.command}"](args)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        _print(namespace.command, result)
    return 0


def _train(args: TrainArgs) -> dict:
    from lisalib.captioning.runs import train_sweep

    return train_sweep([v for v in args.variants.split(",") if v], [int(s) for s in args.seeds.split(",") if s],
                       steps=args.steps, train_images=args.train_images, n_val=args.n_val, out_dir=args.out_dir,
                       export=args.export, progress=args.progress and not args.json,
                       command="python -m lisalib.captioning " + " ".join(sys.argv[1:]))


def _evaluate(args: EvaluateArgs) -> dict:
    from lisalib.captioning.runs import evaluate_shipped

    return evaluate_shipped(seed=args.seed, n_val=args.n_val, runs=args.runs, timing=args.timing)


def _tune(args: TuneArgs) -> dict:
    from lisalib.captioning.runs import tune_probes

    specs = json.loads(args.specs)
    if not isinstance(specs, list) or not all(isinstance(s, dict) and "variant" in s for s in specs):
        raise SystemExit('--specs must be a JSON list of objects with a "variant" key')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return {"probes": tune_probes(specs, args.out or None)}


def _compare(args: CompareArgs) -> dict:
    from lisalib.captioning.runs import compare

    return compare(Path(args.sweep) if args.sweep else None, time_real_size=args.real_size_timing,
                   timing_batch=args.timing_batch)


def _print(command: str, result: dict) -> None:
    if command == "evaluate":
        rows = [(n, v["cider"], v["bleu4"], v["rouge_l"], v.get("step_seconds")) for n, v in result["variants"].items()]
        rows += [(f"baseline: {n}", v["cider"], v["bleu4"], v["rouge_l"], None) for n, v in result["baselines"].items()]
        print(format_table(rows, ("variant", "CIDEr-D", "BLEU-4", "ROUGE-L", "s / step")))
        return
    if command == "train":
        rows = [(r["variant"], r["seed"], r["val"]["cider"], r["val"]["bleu4"], r["train_step_seconds"], r["seconds"])
                for r in result["runs"]]
        print(format_table(rows, ("variant", "seed", "CIDEr-D", "BLEU-4", "s / step", "s")))
        return
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
