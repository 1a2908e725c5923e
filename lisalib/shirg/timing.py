"""What selection costs next to the encoder, measured on this machine at tiny size (medians of repeats).

The encoder row is the truncated tower on one image's five views; the selectors' rows are what each adds:
text relevance (the question's phrases through SigLIP's text tower, every token through the pooling head's
per-token map, the dot products, the budgeted top-K), the same with the phrase embeddings cached (this
world's names are a closed set), and saliency (SigLIP's deleted last layer and its head, which the probe
needs). At real size the same parts are counted in :func:`lisalib.shirg.cost.encoder_flops_per_view`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from lisalib.shirg.data import EncodedScenes, probe_attention, query_texts
from lisalib.shirg.select import relevance, saliency_selection, text_selection
from lisalib.zoo.pretrain.siglip import _project_patches, text_embeddings


def _median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@torch.no_grad()
def selection_overhead(model, siglip, processor, data: EncodedScenes, budget: int = 80, repeats: int = 30) -> dict:
    """Median seconds of the encoder and of each selector for one image and question, and their ratios."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    sample = data.samples[0]
    pixels = data.pixel_values([sample.scene_index])
    phrases = query_texts(sample.question)
    encoded = {}

    def encode():
        encoded["features"] = base.encode_views(pixels)

    encode()
    features = encoded["features"]
    cached = text_embeddings(siglip, processor, phrases)
    head = siglip.vision_model.head

    def text(queries=None):
        queries = text_embeddings(siglip, processor, phrases) if queries is None else queries
        tokens = torch.nn.functional.normalize(_project_patches(siglip, features), dim=-1)
        text_selection(relevance(tokens, queries), budget)

    def saliency():
        last = siglip.vision_model.encoder.layers[-1](features, attention_mask=None)
        hidden = last[0] if isinstance(last, tuple) else last
        saliency_selection(probe_attention(head, siglip.vision_model.post_layernorm(hidden)).numpy(), budget)

    seconds = {"encoder": _median_seconds(encode, repeats), "text": _median_seconds(text, repeats),
               "text_cached_phrases": _median_seconds(lambda: text(cached), repeats),
               "saliency": _median_seconds(saliency, repeats)}
    ratios = {f"{k}_vs_encoder": round(v / seconds["encoder"], 4) for k, v in seconds.items() if k != "encoder"}
    return {"seconds": {k: round(v, 6) for k, v in seconds.items()}, **ratios, "repeats": repeats,
            "threads": torch.get_num_threads()}
