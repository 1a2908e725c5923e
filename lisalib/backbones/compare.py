"""Chapter 7's result: the Modified LISA trained on two backbone families under one recipe, scored side by side.

The two shipped runs are ``tiny-lisa-vlm-point`` (the zoo's pretrained ``tiny-llava``, VLM mode: its projector
was aligned in pretraining) and ``tiny-lisa-traditional-point`` (002's traditional mode from the zoo's
pretrained ``tiny-siglip`` + ``tiny-lm``, joined by a new projector that trains with the bridges). Both:
4,000 steps of 8 on chapter 4's 10,000 training samples, point route, LoRA, seed 0, one thread
(``make lisa-ladder`` / ``make backbones``; the command is in each ``run.json``). :func:`compare` scores them
teacher-forced on one validation split next to the query-blind baselines, with 95% intervals, and says
where each run's clicks land (:func:`click_hits`): on the asked shape, or on some shape of the scene.

``python -m lisalib.backbones compare --data DIR --json`` prints the same figures.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

RUNS = {"llava": "tiny-lisa-vlm-point", "traditional": "tiny-lisa-traditional-point"}
HEADERS = ("family", "run / baseline", "gIoU", "95% interval", "cIoU", "click inside", "n")


def training_facts(run: str) -> dict:
    """What a run's ``run.json`` says about its training: base, budget, time per step, trainable counts."""
    from lisalib.lisa.evaluate import find_weights

    record = find_weights(run)[1]
    summary = record.get("summary", {})
    return {"vlm": record["args"]["vlm_name"], "steps": record["total_steps"], "samples": record["samples"],
            "batch_size": record["args"]["batch_size"], "seg_prompt": record["args"]["seg_prompt"],
            "seconds_per_step": summary.get("seconds_per_step"), "train_seconds": summary.get("train_seconds"),
            "threads": summary.get("threads"), "trainable": record.get("trainable_parameters", {}),
            "trainable_total": summary.get("trainable_total"), "command": record.get("command")}


def loss_curve(run: str, key: str = "loss", window: int = 100) -> tuple[list[int], list[float]]:
    """``(steps, running mean of key over window steps)`` from a run's ``log.jsonl`` (shipped with the run)."""
    import numpy as np

    from lisalib.lisa.evaluate import find_weights
    from lisalib.training.loop import read_log

    folder = find_weights(run)[0]
    rows = read_log(folder if (folder / "log.jsonl").is_file() else folder.parent)
    values = np.array([row[key] for row in rows], dtype=float)
    kernel = np.ones(window) / window
    smooth = np.convolve(values, kernel, mode="valid")
    return [rows[i + window - 1]["step"] for i in range(len(smooth))], smooth.tolist()


def compare(val_samples: Sequence[dict], runs: Mapping[str, str] = RUNS, batch_size: int = 8,
            progress: bool = False) -> dict:
    """``{"baselines", "best_blind", "models": {family: {"scores", "margin", "training"}}}`` on ``val_samples``."""
    import gc

    from lisalib.lisa.evaluate import evaluate, load_trained
    from lisalib.reasonseg.baselines import query_blind_scores

    baselines = query_blind_scores(val_samples)
    best_name = max(baselines, key=lambda name: baselines[name]["giou"])
    models = {}
    for family, run in runs.items():
        model = load_trained(run)
        out = evaluate(model, val_samples, protocols=("teacher_forced",), batch_size=batch_size, progress=progress)
        del model
        gc.collect()
        scores = out["protocols"]["teacher_forced"]
        models[family] = {"run": run, "scores": scores, "margin": scores["giou"] - baselines[best_name]["giou"],
                          "clicks": click_hits(out["samples"], val_samples),
                          "above_blind_interval": scores["giou_low"] > baselines[best_name]["giou_high"],
                          "training": training_facts(run)}
    return {"baselines": baselines, "best_blind": {"name": best_name, **baselines[best_name]}, "models": models}


def click_hits(records: Sequence[dict], val_samples: Sequence[dict]) -> dict:
    """Where the point route's clicks land: on the asked shape, on any shape of the scene (the query-blind
    "every shape" mask), and on the asked shape for short and long queries. A click on *a* shape but not the
    asked one has found objects without reading the question."""
    import numpy as np

    from lisalib.reasonseg.baselines import query_blind_masks

    hits: dict[str, list[bool]] = {"on_target": [], "on_a_shape": [], "short_on_target": [], "long_on_target": []}
    for record in records:
        if "point" not in record:
            continue
        sample = val_samples[record["index"]]
        shapes = np.asarray(query_blind_masks(sample)["every shape"]).astype(bool)
        height, width = shapes.shape[-2:]
        col = int(np.clip(np.floor(record["point"][0]), 0, width - 1))
        row = int(np.clip(np.floor(record["point"][1]), 0, height - 1))
        hits["on_target"].append(record["point_inside"])
        hits["on_a_shape"].append(bool(shapes.reshape(height, width)[row, col]))
        hits["long_on_target" if sample["is_sentence"] else "short_on_target"].append(record["point_inside"])
    return {key: float(np.mean(values)) if values else None for key, values in hits.items()} | {
        "n": len(hits["on_target"]), "n_short": len(hits["short_on_target"]), "n_long": len(hits["long_on_target"])}


def compare_rows(result: dict) -> list[tuple]:
    """Rows of :data:`HEADERS`: the query-blind baselines, then each trained run."""
    def interval(m):
        return f"{m['giou_low']:.3f}-{m['giou_high']:.3f}" if "giou_low" in m else "-"

    rows = [("-", f"query-blind: {name}", round(m["giou"], 3), interval(m), round(m["ciou"], 3), "-", m["n"])
            for name, m in result["baselines"].items()]
    for family, entry in result["models"].items():
        m = entry["scores"]
        inside = m.get("point", {}).get("inside_rate", "-")
        rows.append((family, entry["run"], round(m["giou"], 3), interval(m), round(m["ciou"], 3), inside, m["n"]))
    return rows


__all__ = ["HEADERS", "RUNS", "click_hits", "compare", "compare_rows", "loss_curve", "training_facts"]
