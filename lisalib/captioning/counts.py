"""Real-size parameter counts of both architectures, built on the ``meta`` device from the shipped configs.

No weights, no download: ``google/siglip-base-patch16-224``'s vision tower, ``HuggingFaceTB/SmolLM-135M`` and
GPT-2 small from ``lisalib/configs``. At 004's settings (the tower keeps its attention-pooling head, which
prefix captioning computes and discards) the VED has 245,690,880 parameters (004: "~203M") and the prefix
model 229,685,376 of which 2,286,144 train (004: "~221M / 2.2M"). Dropping the unused head removes
7,087,104 from both; the pooled prefix's projection reads 4 x 768 channels.
"""
from __future__ import annotations

import torch

from lisalib.accounting.registry import load_config


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # chapter 6's recipe


def real_configs(vision: str = "siglip-base-patch16-224", prefix_lm: str = "smollm-135m", ved_lm: str = "gpt2"):
    return load_config(vision).vision_config, load_config(prefix_lm), load_config(ved_lm)


def _split(model, prefixes: dict[str, tuple[str, ...]]) -> dict[str, int]:
    out = {k: 0 for k in prefixes}
    for name, p in model.named_parameters():
        for label, starts in prefixes.items():
            if name.startswith(starts):
                out[label] += p.numel()
                break
    return out


def prefix_counts(vision_use_head: bool = True, **options) -> dict:
    """Total / trainable and per part of a real-size :class:`PrefixCaptioner` (``options``: config fields)."""
    from lisalib.captioning.configuration import PrefixCaptionerConfig
    from lisalib.captioning.modeling import PrefixCaptioner

    vision, lm, _ = real_configs()
    vision.vision_use_head = vision_use_head
    config = PrefixCaptionerConfig(vision_config=vision, text_config=lm, **options)
    with torch.device("meta"):
        model = PrefixCaptioner(config)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith("vision_tower.vision_model.head.")
               or n.startswith("vision_tower.head."))
    return {"total": total, "trainable": trainable, "vision": sum(p.numel() for p in model.vision_tower.parameters()),
            "vision_head": head, "projection": sum(p.numel() for p in model.projection.parameters()), "lora": lora,
            "language_model": sum(p.numel() for p in model.language_model.parameters()) - lora,
            "prefix_tokens": config.prefix_tokens}


def ved_counts(vision_use_head: bool = True, freeze_encoder: bool = False) -> dict:
    """Total / trainable and per part of a real-size SigLIP + GPT-2 ``VisionEncoderDecoderModel``."""
    from transformers import VisionEncoderDecoderModel

    from lisalib.captioning.ved import ved_config_on_meta

    vision, _, gpt2 = real_configs()
    vision.vision_use_head = vision_use_head
    config = ved_config_on_meta(vision, gpt2)
    with torch.device("meta"):
        model = VisionEncoderDecoderModel(config=config)
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    cross = sum(p.numel() for n, p in model.decoder.named_parameters() if "crossattention" in n or "ln_cross_attn" in n)
    head = sum(p.numel() for n, p in model.encoder.named_parameters() if ".head." in f".{n}")
    return {"total": total, "trainable": total - encoder if freeze_encoder else total, "vision": encoder,
            "vision_head": head, "cross_attention": cross, "decoder": total - encoder}


def count_table() -> list[dict]:
    """One row per architecture: 004's settings (with the head) and this chapter's (headless, pooled too)."""
    rows = [("VED, all trainable (004's old run)", ved_counts(True, False)),
            ("VED, frozen encoder", ved_counts(True, True)),
            ("prefix + LoRA (004's new run)", prefix_counts(True)),
            ("prefix, headless tower", prefix_counts(False)),
            ("prefix pooled (pixel shuffle 2), headless", prefix_counts(False, prefix_pooling="pixel_shuffle")),
            ("VED frozen, headless", ved_counts(False, True)),
            ("prefix, LoRA on every linear layer, headless", prefix_counts(False, lora_targets=ALL_LINEAR))]
    return [{"model": name, **counts} for name, counts in rows]





# ----- training-step FLOPs at real size -------------------------------------------------------------------
def _counted_step(model, step) -> int:
    """FLOPs (torch's counter: matmuls and attention, forward and backward) of ``step()`` on a meta model."""
    from torch.utils.flop_counter import FlopCounterMode

    for part in model.modules():
        if hasattr(part, "config") and hasattr(part.config, "_attn_implementation") and hasattr(part, "set_attn_implementation"):
            try:
                part.set_attn_implementation("eager")  # torch has no FLOP formula for CPU flash attention
            except (ValueError, AttributeError):
                pass
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def train_step_flops(batch: int = 1, caption_tokens: int = 31) -> dict:
    """FLOPs of one real-size training step per image (forward + backward of what trains, the frozen tower's
    forward included) for the prefix model (196 tokens), its pooled variants and the VEDs, on ``meta``.

    ``caption_tokens``: the text sequence (``bos`` + 30 caption tokens; the VED reads the same 31 and predicts
    the next). The optimizer's element-wise update is not counted (torch counts matmuls and attention only)."""
    from transformers import VisionEncoderDecoderModel

    from lisalib.captioning.configuration import PrefixCaptionerConfig
    from lisalib.captioning.modeling import PrefixCaptioner
    from lisalib.captioning.ved import freeze_ved, ved_config_on_meta

    vision, lm, gpt2 = real_configs()
    vision.vision_use_head = False
    side = vision.image_size
    rows = {}
    for name, options in (("prefix", {}), ("prefix_pooled_s2", {"prefix_pooling": "pixel_shuffle", "pool_factor": 2}),
                          ("prefix_pooled_s7", {"prefix_pooling": "pixel_shuffle", "pool_factor": 7})):
        config = PrefixCaptionerConfig(vision_config=vision, text_config=lm, **options)
        with torch.device("meta"):
            model = PrefixCaptioner(config).train()
            pixels = torch.zeros(batch, 3, side, side)
            ids = torch.zeros(batch, caption_tokens, dtype=torch.long)
            mask = torch.ones(batch, caption_tokens, dtype=torch.long)
        tower = _counted_step(model, lambda: model.vision_tower(pixel_values=pixels))
        total = _counted_step(model, lambda: model(pixels, ids, mask, labels=ids).loss.backward())
        rows[name] = {"total": total // batch, "vision_tower": tower // batch, "prefix_tokens": config.prefix_tokens}
    for name, frozen in (("ved_frozen", True), ("ved", False)):
        with torch.device("meta"):
            model = VisionEncoderDecoderModel(config=ved_config_on_meta(vision, gpt2)).train()
            pixels = torch.zeros(batch, 3, side, side)
            ids = torch.zeros(batch, caption_tokens + 1, dtype=torch.long)
        freeze_ved(model, frozen)
        from lisalib.captioning.ved import ved_loss

        tower = _counted_step(model, lambda: model.encoder(pixel_values=pixels))
        total = _counted_step(model, lambda: ved_loss(model, pixels, ids, torch.ones_like(ids)).backward())
        rows[name] = {"total": total // batch, "vision_tower": tower // batch, "prefix_tokens": 0}
    base = rows["prefix"]["total"]
    for row in rows.values():
        row["prefix_over_this"] = round(base / row["total"], 3)
    return rows
__all__ = ["count_table", "prefix_counts", "real_configs", "train_step_flops", "ved_counts"]
