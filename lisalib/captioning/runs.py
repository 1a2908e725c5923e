"""What the CLI's subcommands do: the seed sweep that builds the shipped runs, scoring them, 004's comparison.

``train_sweep`` writes each finished run (and ``sweep.json``) as soon as it ends and skips runs already there,
so an interrupted ``make caption`` resumes where it stopped. Seed 0's runs are the shipped
``lisalib/zoo/checkpoints/runs/tiny-caption-<variant>``; seeds 1 and 2 give the spread in ``docs/results.md``.
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from lisalib.captioning.data import shapes_split
from lisalib.captioning.evaluate import score_variant
from lisalib.captioning.train import VARIANTS, CaptionRecipe, load_variant, save_variant, train_variant

METRICS = ("cider", "bleu4", "rouge_l")
SWEEP_RUN = "tiny-caption-sweep"  # lisalib/zoo/checkpoints/runs/tiny-caption-sweep/sweep.json
CLAIMS_004 = {  # docs/architecture-comparison.md of distilvit2, as 004 states them
    "ved_total_parameters": "~203M", "ved_trainable_parameters": "~203M (100%)",
    "prefix_total_parameters": "~221M", "prefix_trainable_parameters": "2.2M (1%)",
    "projection_parameters": "~350K", "speedup": "5.7x (62 min -> 11 min; 0.797 -> 4.577 samples/s)",
    "ved_batch_max_length": "batch 50, 128 tokens", "prefix_batch_max_length": "batch 4 x 16, 30 tokens",
    "final_loss": "VED 0.749, prefix 10.968 (ln 49152 = 10.80: worse than uniform)",
    "captions": "VED '!!!!...', prefix empty strings"}


def run_name(variant: str, seed: int | None = None) -> str:
    base = f"tiny-caption-{variant.replace('_', '-')}"
    return base if seed is None else f"{base}-s{seed}"


def _summary(runs: list[dict]) -> dict:
    out = {}
    for variant in VARIANTS:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        out[variant] = {"seeds": [r["seed"] for r in rows],
                        "train_step_seconds": round(statistics.mean(r["train_step_seconds"] for r in rows), 4)}
        for metric in METRICS:
            values = [r["val"][metric] for r in rows]
            out[variant][metric] = round(statistics.mean(values), 4)
            out[variant][f"{metric}_sd"] = round(statistics.stdev(values), 4) if len(values) > 1 else None
            out[variant][f"{metric}_all"] = [round(v, 4) for v in values]
    return out


def train_sweep(variants: list[str], seeds: list[int], steps: int = 900, train_images: int = 4000, n_val: int = 500,
                out_dir="runs/caption", export: bool = False, progress: bool = True, command: str = "") -> dict:
    """Train every (seed, variant), score it on val split 0, save it; returns the sweep summary."""
    from lisalib.zoo import RUNS_DIR

    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train = shapes_split(train_images, "train")
    val = shapes_split(n_val, "val", seed=0)
    runs = []
    for seed in seeds:
        for variant in variants:
            folder = out / run_name(variant, seed)
            recipe = CaptionRecipe(steps=steps, train_images=train_images, seed=seed)
            done = folder / "run.json"
            record = json.loads(done.read_text()) if done.is_file() else None
            # a field added since the run was saved counts as its default (the run predates it, so it used none)
            same = record is not None and {k: v for k, v in {**asdict(CaptionRecipe()), **record["recipe"]}.items()
                                           if k != "device"} == {k: v for k, v in asdict(recipe).items() if k != "device"}
            if not same or "val" not in record:
                model, tokenizer, processor, record = train_variant(variant, train, recipe, progress=progress)
                scores = score_variant(model, tokenizer, processor, val)
                record.update(seed=seed, command=command, val={
                    **{k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}, "n_images": len(val),
                    "split_seed": 0, "examples": scores["captions"][:8]})
                save_variant(model, record, folder)
            runs.append(record)
            if export and seed == 0:
                target = RUNS_DIR / run_name(variant)
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(folder, target)
            sweep = {"command": command, "runs": [{k: v for k, v in r.items() if k != "losses"} for r in runs],
                     "summary": _summary(runs), "seconds": round(time.perf_counter() - start, 1)}
            (out / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    if export:  # the spread behind docs/results.md, shipped next to the seed-0 runs for notebook 06
        (RUNS_DIR / SWEEP_RUN).mkdir(parents=True, exist_ok=True)
        (RUNS_DIR / SWEEP_RUN / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    return sweep


TUNE_SEED = 7  # tuning probes are scored on val split 7 (scenes (62007, i)), never on split 0 of the table


def tune_probes(specs: list[dict], out_file=None, n_tune: int = 300, train_images: int = 4000,
                progress: bool = False) -> list[dict]:
    """Short runs of recipe variations (``specs``: ``{"variant": ..., "tag": ..., <CaptionRecipe fields>}``),
    each scored on the tuning split; one JSON line per probe appended to ``out_file`` as it ends."""
    train = shapes_split(train_images, "train")
    tune = shapes_split(n_tune, "val", seed=TUNE_SEED)
    rows = []
    for spec in specs:
        spec = dict(spec)
        variant, tag = spec.pop("variant"), spec.pop("tag", "")
        recipe = CaptionRecipe(train_images=train_images, **spec)
        model, tokenizer, processor, record = train_variant(variant, train, recipe, progress=progress)
        scores = score_variant(model, tokenizer, processor, tune)
        row = {"tag": tag, "variant": variant, "trainable": record["trainable_parameters"],
               "seconds": record["seconds"], "step": record["train_step_seconds"], "loss": record["final_loss"],
               **{k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}, "tune_split_seed": TUNE_SEED,
               "recipe": {k: v for k, v in asdict(recipe).items() if k != "device"}}
        rows.append(row)
        if out_file:
            with open(out_file, "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def load_shipped(runs=None) -> dict:
    """``{variant: (model, tokenizer, processor, record)}`` of the shipped runs (or those in ``runs``)."""
    from lisalib.zoo import RUNS_DIR

    folder = Path(runs) if runs else RUNS_DIR
    found = {}
    for variant in VARIANTS:
        path = folder / run_name(variant)
        if not path.is_dir():
            seeded = sorted(folder.glob(run_name(variant) + "-s0"))
            if not seeded:
                raise FileNotFoundError(f"no {run_name(variant)} run in {folder}; build them: make caption")
            path = seeded[0]
        found[variant] = load_variant(path)
    return found


def evaluate_shipped(seed: int = 0, n_val: int = 500, runs=None, timing: bool = True, bundles: dict | None = None,
                     train=None, val=None) -> dict:
    """Scores of the shipped runs and the baselines on val split ``seed``; with ``timing``, the side-by-side
    benchmark (:func:`lisalib.captioning.timing.benchmark`) adds step and decoding costs to each variant."""
    from lisalib.captioning.baselines import baseline_scores
    from lisalib.zoo import load_siglip

    bundles = bundles or load_shipped(runs)
    record0 = next(iter(bundles.values()))[3]
    train = train if train is not None else shapes_split(record0["train_images"], "train")
    val = val if val is not None else shapes_split(n_val, "val", seed=seed)
    variants, samples = {}, {}
    for name, (model, tokenizer, processor, record) in bundles.items():
        scores = score_variant(model, tokenizer, processor, val)
        samples[name] = scores["captions"][:6]
        variants[name] = {**{k: round(v, 4) for k, v in scores.items() if isinstance(v, float)},
                          "empty": scores["empty"], "trainable_parameters": record["trainable_parameters"],
                          "parameters": record["parameters"], "train_steps": record["steps"],
                          "train_step_seconds_logged": record["train_step_seconds"], "step_seconds": None}
    siglip, processor = load_siglip(record0["recipe"]["vision"])
    baselines = {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in row.items()}
                 for k, row in baseline_scores(siglip, processor, train, val).items()}
    result = {"seed": seed, "n_val": len(val), "n_references": len(val.refs[0]), "variants": variants,
              "baselines": baselines, "samples": samples, "references": [r[0] for r in val.refs[:6]]}
    if timing:
        from lisalib.captioning.timing import benchmark

        costs = benchmark({k: v[:3] for k, v in bundles.items()}, train.images, [r[0] for r in train.refs])
        for name, row in costs.items():
            variants[name].update(row)
        step = {k: v["step_seconds"] for k, v in costs.items()}
        result["ratios"] = {
            "pooled_speedup_vs_prefix": round(step["prefix"] / step["prefix_pooled"], 3),
            "ved_over_prefix": round(step["ved"] / step["prefix"], 3),
            "ved_frozen_over_prefix": round(step["ved_frozen"] / step["prefix"], 3),
            "ved_over_ved_frozen": round(step["ved"] / step["ved_frozen"], 3),
            "pooled_cider_change": (round(variants["prefix_pooled"]["cider"] / variants["prefix"]["cider"] - 1, 4)
                                    if variants["prefix"]["cider"] > 0 else None)}
    return result


def real_size_timing(batch_size: int = 4, factors=(1, 2, 7), repeats: int = 3) -> dict:
    """Measured real-size step times (:func:`lisalib.captioning.timing.real_size_step_times`) and the speed-up of
    each pool factor over the all-patches prefix, with the machine they were measured on."""
    import platform

    import torch

    from lisalib.captioning.timing import real_size_step_times

    seconds = real_size_step_times(factors=factors, batch_size=batch_size, repeats=repeats)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    return {"batch_size": batch_size, "device": device, "threads": torch.get_num_threads(),
            "step_seconds": {f"s{s}": round(t, 4) for s, t in seconds.items()},
            "speedup_vs_prefix": {f"s{s}": round(seconds[factors[0]] / t, 3) for s, t in seconds.items()}}


def compare(sweep_path: Path | None = None, time_real_size: bool = False, timing_batch: int = 4) -> dict:
    """004's claims, the real-size counts and training-step FLOPs (meta), optionally the measured real-size
    step times, and, when the sweep file exists, the 3-seed figures."""
    from lisalib.captioning.counts import count_table, train_step_flops

    result = {"claims_004": CLAIMS_004, "counts": count_table(), "train_step_flops": train_step_flops()}
    if time_real_size:
        result["real_size_timing"] = real_size_timing(batch_size=timing_batch)
    if sweep_path is not None and Path(sweep_path).is_file():
        sweep = json.loads(Path(sweep_path).read_text())
        result["sweep"] = {"command": sweep["command"], "summary": sweep["summary"]}
    return result


__all__ = ["CLAIMS_004", "TUNE_SEED", "compare", "evaluate_shipped", "load_shipped", "real_size_timing", "run_name", "train_sweep", "tune_probes"]
