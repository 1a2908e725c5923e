"""Side-by-side cost of the variants: train step, generation latency and throughput, peak memory.

Every figure is measured in one run with the variants interleaved (:mod:`lisalib.bench.timing`), so that
background load on a shared machine hits them alike and their ratios hold even when absolute times drift.
A train step is forward, backward and an AdamW step at learning rate 0 (the full cost; the weights stay
as they are). Latency at batch 1 splits into time to the first token (vision + prefill + one token) and the
time per further token (``min_new_tokens`` forces the length); throughput is captions per second at batch
32 with greedy decoding to the caption cap. Peak memory is CUDA's allocator peak (``None`` on a CPU).
"""
from __future__ import annotations

import numpy as np
import torch

from lisalib.bench.timing import interleaved_samples, medians
from lisalib.captioning.data import encode_captions, pixel_values
from lisalib.captioning.modeling import PrefixCaptioner
from lisalib.captioning.train import loss_of


def _variant_of(model) -> str:
    return "prefix" if isinstance(model, PrefixCaptioner) else "ved"


def train_step_fn(model, tokenizer, processor, images: np.ndarray, texts: list[str], max_tokens: int = 30):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.0, weight_decay=0.0)
    device = next(model.parameters()).device
    ids, mask = encode_captions(tokenizer, texts, max_tokens)
    ids, mask, pixels = ids.to(device), mask.to(device), pixel_values(images, processor).to(device)
    variant = _variant_of(model)

    def step():
        model.train()
        loss = loss_of(model, variant, pixels, ids, mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.eval()
    return step


def _generate_fn(model, tokenizer, processor, images, new_tokens: int):
    pixels = pixel_values(images, processor).to(next(model.parameters()).device)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    extra = {"min_new_tokens": new_tokens} if new_tokens else {}
    limit = new_tokens or 31

    def run():
        if isinstance(model, PrefixCaptioner):
            model.generate(pixels, bos, tokenizer.eos_token_id, tokenizer.pad_token_id, max_new_tokens=limit, **extra)
        else:
            model.generate(pixel_values=pixels, do_sample=False, max_new_tokens=limit, **extra)
    return run


def benchmark(bundles: dict, images: np.ndarray, texts: list[str], batch_size: int = 32, repeats: int = 5,
              per_token_tokens: int = 16) -> dict:
    """``{variant: {step_seconds, samples_per_second, first_token_seconds, per_token_seconds,
    captions_per_second, peak_memory_mb}}`` for ``bundles`` = ``{name: (model, tokenizer, processor)}``."""
    batch, batch_texts = images[:batch_size], texts[:batch_size]
    steps = {n: train_step_fn(m, t, p, batch, batch_texts) for n, (m, t, p) in bundles.items()}
    step = medians(interleaved_samples(steps, repeats=repeats, warmup=2, inference=False))
    one = images[:1]
    first = {n: _generate_fn(m, t, p, one, 1) for n, (m, t, p) in bundles.items()}
    longer = {n: _generate_fn(m, t, p, one, per_token_tokens) for n, (m, t, p) in bundles.items()}
    full = {n: _generate_fn(m, t, p, batch, 0) for n, (m, t, p) in bundles.items()}
    t_first = medians(interleaved_samples(first, repeats=repeats, warmup=1))
    t_long = medians(interleaved_samples(longer, repeats=repeats, warmup=1))
    t_full = medians(interleaved_samples(full, repeats=max(2, repeats // 2), warmup=1))
    out = {}
    for name in bundles:
        peak = None
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            steps[name]()
            peak = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        out[name] = {"step_seconds": round(step[name], 5), "samples_per_second": round(len(batch) / step[name], 2),
                     "first_token_seconds": round(t_first[name], 5),
                     "per_token_seconds": round((t_long[name] - t_first[name]) / (per_token_tokens - 1), 6),
                     "captions_per_second": round(len(batch) / t_full[name], 2), "peak_memory_mb": peak,
                     "batch_size": len(batch)}
    return out


def pooling_step_times(factors=(1, 2, 4), recipe=None, batch_size: int = 32, repeats: int = 10) -> dict:
    """``{s: seconds}``: the train step of freshly built prefix models whose prefix is pixel-shuffled by ``s``
    (1 = every patch), timed side by side (step time does not depend on the weights, so no training is needed)."""
    from dataclasses import replace

    from lisalib.captioning.data import shapes_split
    from lisalib.captioning.train import CaptionRecipe, build_variant

    recipe = recipe or CaptionRecipe()
    data, steps = None, {}
    for s in factors:
        variant = "prefix" if s == 1 else "prefix_pooled"
        model, tokenizer, processor = build_variant(variant, replace(recipe, pool_factor=max(s, 1)))
        if data is None:  # scenes drawn at the tower's own input size (64 px tiny, 224 px SigLIP base/16)
            data = shapes_split(batch_size, "train", size=processor.image_processor.size["height"])
            texts = [r[0] for r in data.refs]
        steps[s] = train_step_fn(model, tokenizer, processor, data.images, texts)
    return medians(interleaved_samples(steps, repeats=repeats, warmup=2, inference=False))


def real_size_step_times(factors=(1, 2), batch_size: int = 4, repeats: int = 3, caption_tokens: int = 31,
                         seed: int = 0) -> dict:
    """``{s: seconds}``: one training step of real-size prefix models (SigLIP-B/16 tower + SmolLM-135M with
    LoRA on every linear layer, random weights from the shipped configs: step time does not depend on the
    weights), pixel-shuffled by ``s`` (1 = all 196 patches), timed side by side on whatever device is there.
    At the tiny size the frozen tower, the optimizer and the 31 caption tokens are a large fixed share of a
    step; this measures the ratio at the size the chapter's claim is about."""
    from lisalib.captioning.configuration import PrefixCaptionerConfig
    from lisalib.captioning.counts import ALL_LINEAR, real_configs
    from lisalib.captioning.modeling import PrefixCaptioner

    vision, lm, _ = real_configs()
    vision.vision_use_head = False
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch_size, 3, vision.image_size, vision.image_size, generator=generator).to(device)
    ids = torch.randint(0, lm.vocab_size, (batch_size, caption_tokens), generator=generator).to(device)
    mask = torch.ones_like(ids)
    steps = {}
    for s in factors:
        options = {"prefix_pooling": "pixel_shuffle", "pool_factor": s} if s > 1 else {}
        torch.manual_seed(seed)
        model = PrefixCaptioner(PrefixCaptionerConfig(vision_config=vision, text_config=lm, lora_targets=ALL_LINEAR,
                                                      **options)).to(device)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0, weight_decay=0.0)

        def step(model=model, optimizer=optimizer):
            model.train()
            model(pixels, ids, mask, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        steps[s] = step
    return medians(interleaved_samples(steps, repeats=repeats, warmup=1, inference=False))


__all__ = ["benchmark", "pooling_step_times", "real_size_step_times", "train_step_fn"]
