"""Chapter 4's measurement ladder: every rung between "never read the query" and "told where the target is".

One table per design, all rows on the same validation samples:

1. query-blind baselines (every shape, the largest shape, one at random: :mod:`lisalib.reasonseg.baselines`);
2. the frozen LM's ``<SEG>`` state through a fresh projection (:mod:`lisalib.lisa.ceiling`, ``lm_state``);
3. trained models: LISA's ``<SEG>`` embedding, the point route, both (``LisaConfig.seg_prompt``);
4. a click at the target's inside-centre (the ceiling of the design's mask path).

A model that does not clear row 1 by a wide margin has not learnt to read the query.

``python -m lisalib.lisa.ladder --data DIR [--split val] [--json]`` measures it for the shipped runs.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lisalib.cli import dataclass_parser, format_table

PROMPT_RUNS = {"embedding": "LISA's <SEG> embedding", "point": "point route", "both": "embedding + point"}
HEADERS = ("design", "rung", "gIoU", "95% interval", "cIoU", "point error px", "point inside", "n")


def run_label(run: str) -> str:
    """A trained rung's name from its ``run.json``: the ``<SEG>`` prompt and the optimizer steps."""
    from lisalib.lisa.evaluate import find_weights

    record = find_weights(run)[1]
    prompt = record["args"].get("seg_prompt", "embedding")
    return f"{PROMPT_RUNS.get(prompt, prompt)}, {record['total_steps']:,} steps"


def shipped_runs(design: str) -> dict[str, str]:
    """``{label: run}`` of one design's trained rungs, in ladder order: the same-budget companions
    ``tiny-lisa-<design>-<prompt>`` (one per ``<SEG>`` prompt), then the shipped ``tiny-lisa-<design>``."""
    from lisalib.zoo import RUNS_DIR

    names = [f"tiny-lisa-{design}-{prompt}" for prompt in PROMPT_RUNS] + [f"tiny-lisa-{design}"]
    runs = {}
    for name in names:
        if (RUNS_DIR / name).is_dir():
            label = run_label(name) + (" (shipped)" if name == f"tiny-lisa-{design}" else "")
            runs[label] = name
    return runs


def ladder_rows(design: str, baselines: Mapping[str, dict], models: Mapping[str, dict],
                ceilings: Mapping[str, dict]) -> list[tuple]:
    """Rows of :data:`HEADERS` for one design.

    ``baselines``: :func:`lisalib.reasonseg.baselines.query_blind_scores`; ``models``: ``{label:
    lisalib.lisa.evaluate.evaluate(...)}`` in the order to print (:func:`shipped_runs`'s labels);
    ``ceilings``: ``{"lm_state" | "point": mask_path_ceiling(...)}``.
    """
    def interval(m):
        return f"{m['giou_low']:.3f}-{m['giou_high']:.3f}" if "giou_low" in m else "-"

    rows = [(design, f"query-blind: {name}", m["giou"], interval(m), m["ciou"], "-", "-", m["n"])
            for name, m in baselines.items()]
    if "lm_state" in ceilings:
        m = ceilings["lm_state"]
        rows.append((design, "frozen LM state (decoder trained)", m["giou"], interval(m), m["ciou"], "-", "-", m["n"]))
    for label, result in models.items():
        m = result["protocols"]["teacher_forced"]
        point = m.get("point", {})
        rows.append((design, f"trained: {label}", m["giou"], interval(m), m["ciou"],
                     point.get("median_error_px", "-"), point.get("inside_rate", "-"), m["n"]))
    if "point" in ceilings:
        m = ceilings["point"]
        rows.append((design, "centre click (ceiling)", m["giou"], interval(m), m["ciou"], 0.0, 1.0, m["n"]))
    return rows


def ladder_table(rows: Sequence[tuple]) -> str:
    """The rows as a fixed-width table (what the notebook and the CLI print)."""
    return format_table(rows, HEADERS)


def measure(design: str, val_samples: Sequence[dict], ceiling_train: Sequence[dict] | None = None,
            ceiling_steps: int = 500, runs: Mapping[str, str] | None = None, progress: bool = False) -> dict:
    """Everything :func:`ladder_rows` needs for one design, measured on ``val_samples``."""
    from lisalib.lisa.ceiling import mask_path_ceiling
    from lisalib.lisa.evaluate import evaluate, load_trained
    from lisalib.reasonseg.baselines import query_blind_scores

    runs = dict(runs if runs is not None else shipped_runs(design))
    models = {label: evaluate(load_trained(run), val_samples, protocols=("teacher_forced",), progress=progress)
              for label, run in runs.items()}
    ceilings = {}
    if ceiling_train is not None:
        ceilings = {prompt: mask_path_ceiling(design, ceiling_train, val_samples, prompt, steps=ceiling_steps,
                                              progress=progress) for prompt in ("lm_state", "point")}
    return {"baselines": query_blind_scores(val_samples), "models": models, "ceilings": ceilings}


@dataclass
class LadderArgs:
    """The command line of ``python -m lisalib.lisa.ladder``."""

    data: str = field(default="data/reasonseg_synth", metadata={"help": "ReasonSeg-format root with SPLIT/"})
    split: str = field(default="val", metadata={"help": "the split to score"})
    designs: list[str] = field(default_factory=lambda: ["vlm", "dual"], metadata={"help": "designs to measure"})
    ceiling_data: str | None = field(default="data/reasonseg_ceiling", metadata={
        "help": "train split root for the frozen-LM-state and centre-click rungs (written with seed 1 if missing; "
                "'none' skips them)"})
    ceiling_samples: int = field(default=400, metadata={"help": "training samples of those rungs"})
    ceiling_steps: int = field(default=500, metadata={"help": "optimizer steps of those rungs"})
    json: bool = field(default=False, metadata={"help": "print the figures as JSON"})
    progress: bool = field(default=True, metadata={"help": "progress bars (--no_progress: none)"})


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from lisalib.lisa.evaluate import json_safe, open_split
    from lisalib.reasonseg.dataset import ReasonSegDataset
    from lisalib.reasonseg.synth import write_split

    parser = dataclass_parser(LadderArgs, "python -m lisalib.lisa.ladder", __doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    try:
        dataset = open_split(args.data, args.split)
        val = [dataset[i] for i in range(len(dataset))]
        ceiling_train = None
        if args.ceiling_data and args.ceiling_data != "none":
            root = Path(args.ceiling_data)
            if not (root / "train").is_dir():
                write_split(root, "train", args.ceiling_samples, seed=1)
            train = ReasonSegDataset(root, "train")
            ceiling_train = [train[i] for i in range(min(args.ceiling_samples, len(train)))]
        measured = {d: measure(d, val, ceiling_train, args.ceiling_steps, progress=args.progress) for d in args.designs}
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = [row for d, m in measured.items() for row in ladder_rows(d, m["baselines"], m["models"], m["ceilings"])]
    if args.json:
        print(json.dumps([json_safe(dict(zip(HEADERS, row))) for row in rows], indent=2))
    else:
        print(ladder_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
