"""What each notebook costs on a free Colab T4 in the real profile: an estimate from FLOPs and bandwidth.

Colab gives a few hours on a T4 (65 TFLOP/s fp16 tensor-core peak, 320 GB/s, about 15 GiB usable) and
drops idle sessions. Before a learner starts a long cell the notebook says what it will cost, computed
from the profile's budgets and the FLOPs chapter 2 counts on the meta device:

* a prefill or training pass is compute-bound: FLOPs / (peak x ``efficiency``), the efficiency being an
  assumption (bitsandbytes dequantises NF4 weights before each fp16 matmul);
* a decode step is bandwidth-bound: the 4-bit weights are read once per generated token;
* a training micro-batch runs the LLM forward, again in backward with gradient checkpointing, and a
  backward that costs about two forwards (activation gradients + LoRA), plus the frozen encoders' forward;
* loading reads the fp16 checkpoint (13.5 GB for LLaVA-1.5-7B) at ``load_bytes_per_second``.

Peak memory is chapter 1's :func:`lisalib.accounting.memory.training_memory`. Measured figures, where an
accelerator was lent, are in ``docs/results.md`` (``python -m lisalib.bench.gpu_check``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

GiB = 2**30


@dataclass(frozen=True)
class Gpu:
    name: str
    fp16_flops: float  # tensor-core peak, FLOP/s
    bandwidth: float  # bytes/s
    memory: float  # usable bytes
    efficiency: float = 0.35  # assumed share of the peak reached by NF4 prefill/training matmuls
    load_bytes_per_second: float = 150e6  # assumed: Colab's first hub download of the fp16 shards
    cached_bytes_per_second: float = 500e6  # assumed: a later load from the local cache


T4 = Gpu("Tesla T4", 65e12, 320e9, 15.0 * GiB)
CHECKPOINT_BYTES = {"llava-hf/llava-1.5-7b-hf": 13.5e9, "facebook/sam-vit-base": 0.375e9}
NF4_WEIGHT_BYTES = 3.8 * GiB  # chapter 1: LLaVA-1.5-7B in NF4 + double quant, the vision tower in fp16


@lru_cache(maxsize=None)
def forward_flops(vision_source: str) -> dict[str, int]:
    """One teacher-forced forward of the real Modified LISA (meta device, chapter 2's count)."""
    from lisalib.bench.vision import end_to_end_flops, meta_model

    return end_to_end_flops(meta_model(vision_source, sam="base"))


def _compute(flops: float, gpu: Gpu) -> float:
    return flops / (gpu.fp16_flops * gpu.efficiency)


def load_seconds(gpu: Gpu = T4, loads: int = 1, models: tuple[str, ...] = tuple(CHECKPOINT_BYTES)) -> float:
    """The first load downloads (or reads a cold cache), the ``loads - 1`` after it read the local cache."""
    size = sum(CHECKPOINT_BYTES[m] for m in models)
    return size / gpu.load_bytes_per_second + (loads - 1) * size / gpu.cached_bytes_per_second


def micro_batch_seconds(vision_source: str, gpu: Gpu = T4, gradient_checkpointing: bool = True) -> float:
    """One training micro-batch of one image: encoders forward, LLM forward (+ recompute) + backward."""
    f = forward_flops(vision_source)
    llm_passes = 1 + (1 if gradient_checkpointing else 0) + 2
    weights = (2 + (1 if gradient_checkpointing else 0)) * NF4_WEIGHT_BYTES / gpu.bandwidth
    return max(_compute(f["vision"] + llm_passes * f["llm"] + 3 * f["mask_decoder"], gpu), weights)


def inference_seconds(vision_source: str, new_tokens: int = 0, gpu: Gpu = T4) -> float:
    """One image: teacher-forced forward, plus ``new_tokens`` decode steps if generating."""
    f = forward_flops(vision_source)
    return _compute(f["total"], gpu) + new_tokens * NF4_WEIGHT_BYTES / gpu.bandwidth


def notebook_budgets(profile, gpu: Gpu = T4) -> list[dict]:
    """Rows ``{notebook, work, minutes, peak_gib}`` for the real profile's budgets on ``gpu``."""
    from lisalib.accounting.memory import training_memory

    def load(n=1):
        return load_seconds(gpu, n)

    train_peak = training_memory("modified-lisa-7b", mode="decoder", gradient_checkpointing=True).total / GiB
    infer_peak = training_memory("modified-lisa-7b", mode="frozen").total / GiB
    steps, accum, n_eval = profile.train_steps, profile.grad_accum * profile.train_batch_size, profile.eval_samples
    train = sum(steps * accum * micro_batch_seconds(s, gpu) for s in ("vlm", "dual"))
    evaluate = sum(n_eval * (inference_seconds(s) + inference_seconds(s, profile.max_new_tokens * 2))
                   for s in ("vlm", "dual"))
    ceilings = 2 * sum((profile.ceiling_samples + n_eval) * inference_seconds(s) for s in ("vlm", "dual"))
    questions = 46 * inference_seconds("vlm", profile.max_new_tokens)
    rows = [
        ("00_tour", "load LLaVA-7B (NF4) + SAM-B, 46 questions, SAM clicks", load() + questions, infer_peak),
        ("01_parameter_accounting", "meta-device counts, one NF4 load", load(), infer_peak),
        ("02_single_pass_vision_encoding", "three loads (one per design), a few forwards, GPU timing",
         load(3), infer_peak),
        ("03_projection_training", f"2 designs x {steps} steps x {accum} micro-batches, 32-sample check",
         load(6) + train + 2 * 32 * inference_seconds("dual"), train_peak),
        ("04_reasonseg_eval", f"{n_eval} samples x 2 designs x 2 protocols, 4 ceiling runs",
         load(7) + evaluate + ceilings, infer_peak),
        ("04_reasonseg_eval, fresh session", "the above + chapter 3's two runs", load(9) + evaluate + ceilings
         + train, train_peak),
    ]
    return [{"notebook": n, "work": w, "minutes": round(s / 60, 1), "peak_gib": round(p, 1)} for n, w, s, p in rows]


def format_budgets(rows: list[dict], gpu: Gpu = T4) -> str:
    from lisalib.cli import format_table

    header = (f"estimated on a {gpu.name} ({gpu.fp16_flops / 1e12:.0f} TFLOP/s x {gpu.efficiency:.0%} assumed, "
              f"{gpu.bandwidth / 1e9:.0f} GB/s, loads at {gpu.load_bytes_per_second / 1e6:.0f} MB/s)")
    table = format_table([(r["notebook"], r["work"], r["minutes"], r["peak_gib"]) for r in rows],
                         ("notebook", "work", "minutes", "peak GiB"))
    return f"{header}\n{table}"


def main(argv: list[str] | None = None) -> int:
    """``python -m lisalib.bench.budget [--json]``: the table for the real profile's budgets on a T4."""
    import argparse
    import json
    import os

    from lisalib.profile import HUB_MAP_ENV, get_profile

    parser = argparse.ArgumentParser(prog="python -m lisalib.bench.budget", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    os.environ.pop(HUB_MAP_ENV, None)  # the real budgets, not the miniatures' smoke ones
    rows = notebook_budgets(get_profile("real", require_gpu=False))  # only the budgets are read
    print(json.dumps(rows, indent=2) if args.json else format_budgets(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
