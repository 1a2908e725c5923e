"""What a visual token costs LaViDa: LLM prefill FLOPs, KV-cache bytes, projector FLOPs and parameters.

Token selection only pays if it shrinks what the 8B LLM processes; the SigLIP encoder runs on every view
whatever K is. Formulas (forward pass, one image, multiply-add = 2 FLOPs):
prefill = 2 N (4 d^2 + 3 d f) L (QKV/O projections, gated MLP) + 4 N^2 d L (scores and weighted sum);
KV cache = N L 2 d bytes-per-value (K and V per layer); projector ``mlp2x_gelu`` = 2 N (1152 d + d d).
"""
from __future__ import annotations

LLADA_8B = dict(d_model=4096, mlp=12288, layers=32, heads=32, max_seq=4096)
VISION_WIDTH = 1152  # SigLIP so400m
GiB = 1024**3
TABLE_TOKENS = (245, 490, 980, 1960, 3645)  # 980 = LaViDa's pooled budget, 3645 = its raw 5 x 729


def prefill_flops(n: int, d: int = LLADA_8B["d_model"], f: int = LLADA_8B["mlp"],
                  layers: int = LLADA_8B["layers"]) -> dict:
    """FLOPs of one prefill over ``n`` tokens: ``dense`` (linear layers), ``attention`` (QK^T and AV), ``total``."""
    if n < 0:
        raise ValueError(f"token count must be >= 0, got {n}")
    dense = 2 * n * (4 * d * d + 3 * d * f) * layers
    attention = 4 * n * n * d * layers
    return {"dense": dense, "attention": attention, "total": dense + attention}


def kv_cache_bytes(n: int, d: int = LLADA_8B["d_model"], layers: int = LLADA_8B["layers"], bytes: int = 2) -> int:
    """Bytes of the Prefix-DLM cache for ``n`` tokens: K and V of width ``d`` per layer (bf16 by default)."""
    return n * layers * 2 * d * bytes


def projector_params(vision: int = VISION_WIDTH, d: int = LLADA_8B["d_model"]) -> int:
    """Parameters of ``mlp2x_gelu``: Linear(vision, d) + GELU + Linear(d, d), biases included (21,504,000)."""
    return vision * d + d + d * d + d


def projector_lora_params(r: int = 64, vision: int = VISION_WIDTH, d: int = LLADA_8B["d_model"]) -> int:
    """LoRA parameters on both projector linears (``mm_projector.0`` and ``.2``): r (in + out) each (860,160)."""
    return r * (vision + d) + r * (d + d)


def lora_scale(alpha: float = 16, r: int = 64) -> float:
    """LoRA's update scale alpha / r: 0.25 for the seed plan's r 64 / alpha 16 (the fork's 64 / 128: 2.0)."""
    return alpha / r


def projector_flops(n: int, vision: int = VISION_WIDTH, d: int = LLADA_8B["d_model"]) -> int:
    """Projector FLOPs for ``n`` tokens (LaViDa projects all tokens before pooling)."""
    return 2 * n * (vision * d + d * d)


def cost_table(ns=TABLE_TOKENS) -> list[dict]:
    """One row per token count: prefill TFLOP (total and attention part), projector GFLOP, KV GiB."""
    rows = []
    for n in ns:
        prefill = prefill_flops(n)
        rows.append({"tokens": n, "prefill_tflop": prefill["total"] / 1e12,
                     "attention_tflop": prefill["attention"] / 1e12, "projector_gflop": projector_flops(n) / 1e9,
                     "kv_gib": kv_cache_bytes(n) / GiB, "projector_share": projector_flops(n) / prefill["total"]})
    return rows


def encoder_flops_per_view(config=None, truncated: bool = True, include_head: bool = False) -> dict:
    """FLOPs of one SigLIP view, from the config: 2 x (weights per token) x tokens per linear layer, plus
    4 N^2 d per layer for attention, plus the patch embedding (and, optionally, the MAP head).

    ``truncated`` counts LaViDa's tower (last layer deleted); K-independent: every view runs in full.
    """
    if config is None:
        from lisalib.shirg.layout import so400m_vision_config

        config = so400m_vision_config()
    d, f = config.hidden_size, config.intermediate_size
    grid = config.image_size // config.patch_size
    n = grid * grid
    layers = config.num_hidden_layers - (1 if truncated else 0)
    per_token = 4 * d * d + 2 * d * f  # q, k, v, o + fc1, fc2 (multiply-adds per token per layer)
    dense = 2 * n * per_token * layers
    attention = 4 * n * n * d * layers
    patch_embed = 2 * n * (config.num_channels * config.patch_size**2) * d
    head = 0
    if include_head and not truncated:  # one probe query: k, v over n tokens, q, o and the MLP on one token
        head = 2 * n * 2 * d * d + 2 * (2 * d * d + 2 * d * f) + 4 * n * d
    total = dense + attention + patch_embed + head
    return {"tokens": n, "layers": layers, "dense": dense, "attention": attention, "patch_embed": patch_embed,
            "head": head, "total": total, "tflop": total / 1e12}



def selection_flops(n_views: int = 5, text_tokens: int = 64, config=None, text_layers: int | None = None) -> dict:
    """What each selector adds to LaViDa's encoder, counted at so400m size (FLOPs, and the share of the five
    views' truncated-tower FLOPs).

    ``text``: the question's phrase through SigLIP's text tower (``text_tokens`` positions, as many layers as
    the vision tower), every token through the pooling head's per-token map (value and output projections,
    the head's MLP) and one dot product each; ``saliency``: the deleted 27th layer over every view plus the
    head's single-query attention; top-K is negligible.
    """
    if config is None:
        from lisalib.shirg.layout import so400m_vision_config

        config = so400m_vision_config()
    d, f = config.hidden_size, config.intermediate_size
    per_view = encoder_flops_per_view(config)
    n = per_view["tokens"] * n_views
    encoder = per_view["total"] * n_views
    layers = text_layers if text_layers is not None else config.num_hidden_layers
    text_tower = 2 * text_tokens * (4 * d * d + 2 * d * f) * layers + 4 * text_tokens ** 2 * d * layers
    head_map = 2 * n * (2 * d * d + 2 * d * f) + 2 * n * d
    last_layer = encoder_flops_per_view(config, truncated=False)["total"] - per_view["total"]
    head = encoder_flops_per_view(config, truncated=False, include_head=True)["head"]
    saliency = n_views * (last_layer + head)
    rows = {"text": text_tower + head_map, "text_cached_phrases": head_map, "saliency": saliency}
    return {"encoder": encoder, **rows, **{f"{k}_vs_encoder": v / encoder for k, v in rows.items()}}
