"""ReasonSeg evaluation of a trained LISA-style model: gIoU / cIoU under two protocols.

``python -m lisalib.lisa.evaluate --checkpoint RUN --data DIR [--split val] [--json]``

- **teacher-forced** (LISA's ``validate()``): the answer ``"<SEG>."`` is given, one forward pass, the
  mask comes from the forced ``<SEG>``. This measures the mask path alone and is what LISA's tables report.
- **generate**: the model must write its own answer; a ``<SEG>`` in it yields the mask (the first one if
  several), no ``<SEG>`` yields an empty mask. This is what a user of the model gets.

Each sample asks ``text[0]`` with LISA's short/long prompt; predictions are ``logits > 0`` at the
original size; scoring is :mod:`lisalib.reasonseg.metrics` (ignore pixels removed, empty union = 1.0).
"""
from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from lisalib.cli import dataclass_parser, format_table
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.reasonseg.dataset import ReasonSegDataset, eval_answer, question
from lisalib.reasonseg.metrics import ReasonSegMetrics, mean_interval
from lisalib.reasonseg.synth import synth_record
from lisalib.training.checkpoints import CHECKPOINTS_DIR, RUN_FILE, STATE_FILE, TRAINABLE_FILE, checkpoints

PROTOCOLS = ("teacher_forced", "generate")


class CheckpointError(ValueError):
    """A path that is not a training run, its final/ folder or one of its checkpoints."""


# ----- loading -----------------------------------------------------------------------------------
def find_weights(checkpoint: str | Path) -> tuple[Path, dict]:
    """The trainable-weights folder and its run record for a run dir, its ``final/`` or a checkpoint."""
    from lisalib.zoo import RUNS_DIR

    path = Path(checkpoint)
    if not path.exists() and (RUNS_DIR / str(checkpoint) / TRAINABLE_FILE).is_file():
        path = RUNS_DIR / str(checkpoint)  # a shipped run, e.g. "tiny-lisa-vlm"
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (train one with python -m lisalib.lisa.train)")
    if (path / "final" / TRAINABLE_FILE).is_file():
        path = path / "final"
    elif not (path / TRAINABLE_FILE).is_file() and checkpoints(path):
        path = checkpoints(path)[-1]
    if not (path / TRAINABLE_FILE).is_file():
        raise CheckpointError(f"{path}: holds no {TRAINABLE_FILE}; give a run folder, its final/ or one of "
                              f"its {CHECKPOINTS_DIR}/checkpoint_N folders")
    record_file = path / RUN_FILE if (path / RUN_FILE).is_file() else path / STATE_FILE
    if not record_file.is_file():
        raise CheckpointError(f"{path}: {RUN_FILE} or {STATE_FILE} is missing, so the base models are unknown")
    return path, json.loads(record_file.read_text())


def load_trained(checkpoint: str | Path, device: str | None = None) -> LisaForReasoningSegmentation:
    """Rebuild the run's model (same backbones, vision source, LoRA) and load its trained weights."""
    from lisalib.lisa.train import TrainArgs, build_model, fingerprint, load_trainable_state

    folder, record = find_weights(checkpoint)
    known = set(TrainArgs.__dataclass_fields__)
    args = TrainArgs(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["args"].items() if k in known})
    for role, name in (("vlm", args.vlm_name), ("sam", args.sam_name)):
        saved = record.get("base", {}).get(role)
        if saved is not None and fingerprint(name) not in (None, saved):
            warnings.warn(f"{folder}: trained on a different {name!r} (weights {saved}, now {fingerprint(name)}); "
                          "the bridges may not fit it -- retrain with python -m lisalib.lisa.train", stacklevel=2)
    model = build_model(args, device=device)
    load_trainable_state(model, load_file(folder / TRAINABLE_FILE))
    model.requires_grad_(False)
    return model.eval()


# ----- evaluation --------------------------------------------------------------------------------
def open_split(data: str | Path, split: str | None = "val") -> ReasonSegDataset:
    """``DATA/split`` if it exists, else ``DATA`` itself (a folder of samples)."""
    data = Path(data)
    if split and (data / split).is_dir():
        return ReasonSegDataset(data, split, allow_empty=True)
    return ReasonSegDataset(data, allow_empty=True)


@torch.no_grad()
def evaluate(model: LisaForReasoningSegmentation, dataset, protocols: Sequence[str] = PROTOCOLS,
             max_samples: int | None = None, batch_size: int = 8, keep_predictions: bool = False,
             progress: bool = True) -> dict:
    """Score ``model`` on a ReasonSeg dataset; returns overall, per-protocol and per-sample results.

    The top-level ``giou``/``ciou``/``n`` are the teacher-forced protocol's (LISA's). With
    ``keep_predictions`` each sample record carries its mask logits (float16) for browsing.
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown or not protocols:
        raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {list(protocols)}")
    total = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    if total == 0:
        raise ValueError("nothing to evaluate: the dataset is empty (or max_samples is 0)")
    metrics = {p: ReasonSegMetrics() for p in protocols}
    with_seg = 0
    records: list[dict] = []
    seg = model.processor.seg_token
    bar = tqdm(total=total, desc=f"evaluate {model.config.vision_source}", disable=not progress)
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        images = [item["image"] for item in items]
        queries = [question(item["texts"][0], item["is_sentence"], image_token="").strip() for item in items]
        records_batch = [{"index": start + j, "path": item["path"], "query": item["texts"][0],
                          "is_sentence": item["is_sentence"], "query_type": query_type(item["path"]),
                          "n_shapes": scene_size(item["path"])}
                         for j, item in enumerate(items)]
        if "teacher_forced" in protocols:
            results = model.segment(images, queries, answers=[eval_answer(seg)] * len(items))
            for item, result, record in zip(items, results, records_batch):
                score = metrics["teacher_forced"].update(result.masks[0], item["mask"], item["is_sentence"])[0]
                record["iou_teacher_forced"] = score.iou
                if result.points is not None:
                    record.update(point_record(result.points[0], item["mask"]))
                if keep_predictions:
                    record["logits"] = result.mask_logits[0].numpy().astype(np.float16)
        if "generate" in protocols:
            results = model.segment(images, queries)
            for item, result, record in zip(items, results, records_batch):
                has_seg = result.masks.shape[0] > 0
                with_seg += has_seg
                pred = result.masks[0] if has_seg else np.zeros(item["mask"].shape, dtype=bool)
                score = metrics["generate"].update(pred, item["mask"], item["is_sentence"])[0]
                record.update(answer=result.text, has_seg=bool(has_seg), iou_generate=score.iou)
                if keep_predictions and "logits" not in record and has_seg:
                    record["logits"] = result.mask_logits[0].numpy().astype(np.float16)
        records.extend(records_batch)
        bar.update(len(items))
    bar.close()

    by_protocol = {p: metrics[p].compute() for p in protocols}
    if "generate" in protocols:
        by_protocol["generate"]["seg_rate"] = with_seg / total
    pointed = [r for r in records if "point_error" in r]
    if pointed:
        errors = [r["point_error"] for r in pointed if r["point_error"] is not None]
        by_protocol["teacher_forced"]["point"] = {
            "median_error_px": float(np.median(errors)) if errors else float("nan"),
            "mean_error_px": float(np.mean(errors)) if errors else float("nan"),
            "inside_rate": float(np.mean([r["point_inside"] for r in pointed])), "n": len(pointed)}
    headline = by_protocol["teacher_forced" if "teacher_forced" in protocols else "generate"]
    return {"giou": headline["giou"], "ciou": headline["ciou"], "n": headline["n"],
            "vision_source": model.config.vision_source, "protocols": by_protocol, "samples": records}


def query_type(image_path: str | Path) -> str | None:
    """The synthetic set's query type (``referring``, ``roll``, ``most_corners``, ...); None for real ReasonSeg."""
    return synth_record(image_path).get("query_type")


def scene_size(image_path: str | Path) -> int | None:
    """How many shapes the synthetic sample's scene holds (rebuilt from its seed); None for real ReasonSeg."""
    record = synth_record(image_path)
    if "scene_seed" not in record:
        return None
    from lisalib.world import generate_scene

    return len(generate_scene(tuple(record["scene_seed"])).objects)


def point_record(point: np.ndarray, mask: np.ndarray) -> dict:
    """The predicted click against the ground truth: its (x, y), the distance in pixels to the mask's
    inside-centre (None for an empty mask) and whether it lands on a target pixel."""
    from lisalib.constants import MASK_TARGET_VALUE
    from lisalib.reasonseg.masks import centre_point

    target = np.asarray(mask) == MASK_TARGET_VALUE
    x, y = float(point[0]), float(point[1])
    col, row = int(np.clip(np.floor(x), 0, target.shape[1] - 1)), int(np.clip(np.floor(y), 0, target.shape[0] - 1))
    error = None
    if target.any():
        cx, cy = centre_point(target)
        error = float(np.hypot(x - cx, y - cy))
    return {"point": [round(x, 2), round(y, 2)], "point_error": error, "point_inside": bool(target[row, col])}


def breakdown(samples: Sequence[dict], key: str = "query_type", protocol: str = "teacher_forced") -> dict[str, dict]:
    """gIoU per value of ``key`` over evaluated sample records, ``{value: {"giou", "low", "high", "n"}}``
    (low/high: the 95% interval of the mean), largest group first."""
    groups: dict[str, list[float]] = {}
    for sample in samples:
        if f"iou_{protocol}" in sample:
            groups.setdefault(str(sample.get(key)), []).append(sample[f"iou_{protocol}"])
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    result = {}
    for name, ious in ordered:
        mean, low, high = mean_interval(ious)
        result[name] = {"giou": mean, "low": low, "high": high, "n": len(ious)}
    return result


RESULT_HEADERS = ("model", "protocol", "gIoU", "cIoU", "short gIoU", "long gIoU", "n")


def results_rows(results: dict[str, dict], baselines: dict[str, dict] | None = None) -> list[tuple]:
    """One row per model and protocol: gIoU / cIoU overall, gIoU of short and long queries, n; then one row
    per query-blind baseline (:func:`lisalib.reasonseg.baselines.query_blind_scores`), if given."""
    rows = [(name, protocol, m["giou"], m["ciou"], m["short"]["giou"], m["long"]["giou"], m["n"])
            for name, result in results.items() for protocol, m in result["protocols"].items()]
    rows += [(name, "query-blind", m["giou"], m["ciou"], m["short"]["giou"], m["long"]["giou"], m["n"])
             for name, m in (baselines or {}).items()]
    return rows


def results_table(results: dict[str, dict], digits: int = 3, baselines: dict[str, dict] | None = None) -> str:
    """:func:`results_rows` as a Markdown table (what the notebooks print)."""
    lines = ["| " + " | ".join(RESULT_HEADERS) + " |", "|" + "---|" * len(RESULT_HEADERS)]
    for name, protocol, *scores, n in results_rows(results, baselines):
        lines.append("| " + " | ".join([str(name), protocol, *(f"{v:.{digits}f}" for v in scores), str(n)]) + " |")
    return "\n".join(lines)


def json_safe(value, digits: int = 4):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    if isinstance(value, dict):
        return {k: json_safe(v, digits) for k, v in value.items()}
    return value


@dataclass
class EvaluateArgs:
    """The command line of ``python -m lisalib.lisa.evaluate``."""

    checkpoint: str = field(metadata={"help": "a training run folder, its final/, one of its checkpoints, or a "
                                              "shipped run (tiny-lisa-vlm, tiny-lisa-dual)"})
    data: str = field(metadata={"help": "ReasonSeg-format root (with SPLIT/) or a folder of samples"})
    split: str = field(default="val", metadata={"help": "sub-folder of --data to evaluate"})
    protocol: Literal["teacher_forced", "generate", "both"] = field(default="both", metadata={
        "help": "teacher_forced: LISA's validation (answer '<SEG>.' given); generate: the model's own answer"})
    max_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N samples"})
    batch_size: int = field(default=8, metadata={"help": "images per forward pass"})
    json: bool = field(default=False, metadata={"help": "print the figures as JSON"})
    progress: bool = field(default=True, metadata={"help": "a progress bar (--no_progress: none)"})


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(EvaluateArgs, "python -m lisalib.lisa.evaluate", __doc__)
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    try:
        model = load_trained(args.checkpoint)
        dataset = open_split(args.data, args.split)
        result = evaluate(model, dataset, protocols, args.max_samples, args.batch_size, progress=args.progress)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result.pop("samples")
    if args.json:
        print(json.dumps(json_safe(result), indent=2))
    else:
        print(format_table(results_rows({args.checkpoint: result}), RESULT_HEADERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
