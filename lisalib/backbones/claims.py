"""002's numeric claims, each measured: parameter printouts on the meta device, memory by chapter 1's machinery.

Counts come from the real transformers classes built on ``meta`` from the shipped configs
(``lisalib/configs``) with peft's LoRA injected exactly as training injects it (r=16, alpha=32, q_proj and
v_proj, as 002's printouts say). Memory is chapter 1's ``memory_table``: the bytes of every weight in each
storage format (bitsandbytes' int8 / NF4 layouts included) -- a lower bound on 002's "VRAM usage", which
adds activations (and, when training, gradients and optimizer state of what trains).
"""
from __future__ import annotations

import torch

from lisalib.accounting.registry import GiB

R16 = dict(r=16, alpha=32, dropout=0.1)
TRADITIONAL = ("clip-vit-base-patch16", "qwen3-0.6b-base")
# 002's memory table (GB, batch 1): (preset, chapter 1 format, claimed GB)
MEMORY_CLAIMS = [
    ("llava-1.5-7b", "fp32", 28), ("llava-1.5-7b", "bf16", 14), ("llava-1.5-7b", "int8", 7),
    ("llava-1.5-7b", "nf4", 4), ("smolvlm-instruct", "bf16", 6), ("qwen2-vl-2b-instruct", "bf16", 8),
    ("paligemma-3b-pt-224", "bf16", 6),
]
TOLERANCE = 0.15  # a rounded "~N GB" holds within 15 % of the measured figure


def _lora_count(model: torch.nn.Module, scope: str, r: int = 16) -> tuple[int, int]:
    """(trainable, all) after injecting LoRA r=16 on q_proj/v_proj under ``scope`` (peft's printout)."""
    from peft import inject_adapter_in_model

    from lisalib.training.recipes import LoraDefaults, lora_config

    lora = LoraDefaults(r=r, alpha=R16["alpha"], dropout=R16["dropout"])
    inject_adapter_in_model(lora_config(lora, scope=scope), model)
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return trainable, sum(p.numel() for p in model.parameters())


def traditional_meta(image_encoder: str = TRADITIONAL[0], text_llm: str = TRADITIONAL[1]):
    """002's traditional pair on ``meta``: (vision model, LLM, composite with its new projector)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlavaConfig, LlavaForConditionalGeneration

    from lisalib.accounting.registry import build_meta_model, load_config

    clip, llm_config = load_config(image_encoder), load_config(text_llm)
    with torch.device("meta"):
        vision = CLIPVisionModel(CLIPVisionConfig(**clip.vision_config.to_dict()))
        composite = LlavaForConditionalGeneration(LlavaConfig(vision_config=clip.vision_config.to_dict(),
                                                              text_config=llm_config.to_dict(),
                                                              tie_word_embeddings=llm_config.tie_word_embeddings))
    return vision, build_meta_model(llm_config), composite


def measure_claims() -> dict:
    """Every claim with its measured figure and ``holds`` (see the module docstring)."""
    from lisalib.accounting import count_parameters, memory_table, trainable_parameters
    from lisalib.accounting.registry import build_meta_model, load_config
    from lisalib.backbones import adapter_for
    from lisalib.training.recipes import LM_SCOPE, LoraDefaults

    claims = []

    def claim(name, claimed, measured, holds, note=""):
        claims.append({"claim": name, "claimed": claimed, "measured": measured, "holds": bool(holds), "note": note})

    llava = load_config("llava-1.5-7b")
    adapter = adapter_for(llava)
    claim("LLaVA-1.5-7B: Vision dim 1024, Text dim 4096", [1024, 4096], [adapter.vision_dim, adapter.text_dim],
          [adapter.vision_dim, adapter.text_dim] == [1024, 4096])
    trainable, total = _lora_count(build_meta_model(llava), LM_SCOPE)
    claim("LLaVA-1.5-7B + LoRA r=16: trainable params", 8_388_608, trainable, trainable == 8_388_608,
          "32 layers x (q_proj + v_proj) x 16 x (4096 + 4096)")
    lisa = trainable_parameters("modified-lisa-7b", "lora", lora=LoraDefaults(r=16, alpha=32, dropout=0.1))
    claim("LLaVA-1.5-7B + LoRA r=16: all params", 7_109_234_688, total, total == 7_109_234_688,
          f"the VLM + adapters; the whole Modified LISA (+ SAM ViT-B, bridges, <SEG> rows) is {lisa.total:,}; "
          f"neither is 002's figure (difference {7_109_234_688 - total:+,} from the VLM)")
    claim("LoRA reduces trainable parameters by ~98%", 0.98, 1 - trainable / total, 1 - trainable / total >= 0.98,
          f"trainable share {100 * trainable / total:.2f}%, as 002's own printout (0.12%) says")

    vision, llm, composite = traditional_meta()
    claim("Traditional: CLIP embedding dim 768", 768, vision.config.hidden_size, vision.config.hidden_size == 768)
    claim("Traditional: LLM (Qwen3-0.6B-Base) embedding dim 2048", 2048, llm.config.hidden_size,
          llm.config.hidden_size == 2048, "2048 is Qwen3-1.7B's width; 0.6B's is 1024")
    v_train, v_total = _lora_count(vision, "")
    l_train, l_total = _lora_count(llm, "")
    projector = sum(p.numel() for p in composite.model.multi_modal_projector.parameters())
    sam = count_parameters("sam-vit-base").total
    t_train, t_total = v_train + l_train + projector, v_total + l_total + projector
    claim("Traditional + LoRA r=16 (CLIP and LLM): trainable params", 27_308_160, t_train, t_train == 27_308_160,
          f"LoRA {v_train:,} (CLIP) + {l_train:,} (LLM) + new projector {projector:,}")
    claim("Traditional: all params", 1_442_657_456, t_total, t_total == 1_442_657_456,
          f"CLIP-B/16 vision {v_total - v_train:,} + Qwen3-0.6B {l_total - l_train:,} (+ SAM ViT-B {sam:,} "
          f"would give {t_total + sam:,})")
    claim("Traditional mode is smaller (~1-2B total) than VLM mode (~2-13B)", "1-2B", t_total,
          1e9 <= t_total <= 2e9, "0.6B-class LLM + ViT-B: under 1B")

    memory = []
    for preset, fmt, gb in MEMORY_CLAIMS:
        weights = memory_table(preset, formats=(fmt,))["total"][fmt]
        holds = abs(gb * 1e9 - weights) <= TOLERANCE * weights
        memory.append({"model": preset, "format": fmt, "claimed_gb": gb, "weights_gb": round(weights / 1e9, 2),
                       "weights_gib": round(weights / GiB, 2), "holds_as_weight_memory": bool(holds)})
        claim(f"{preset} {fmt}: ~{gb} GB", gb, round(weights / 1e9, 2), holds, "weights only (a lower bound)")
    return {"claims": claims, "memory": memory, "held": sum(c["holds"] for c in claims), "of": len(claims)}


def format_claims(result: dict) -> str:
    from lisalib.cli import format_table

    rows = [(c["claim"], c["claimed"], c["measured"], "holds" if c["holds"] else "FAILS") for c in result["claims"]]
    return format_table(rows, ("002 says", "claimed", "measured", "")) + f"\n{result['held']} of {result['of']} hold"
