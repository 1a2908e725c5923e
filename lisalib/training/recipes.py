"""What trains: one set of trainable-group names, shared by chapter 1's accounting and chapter 3's training.

A *group* is a named set of parameters a run unfreezes; a *mode* (chapter 1's word) is a cumulative
set of groups, the way the Modified LISA's recipe grows from "only the new projections" to "everything".
``LORA_DEFAULTS`` is LISA's own LoRA setting (``train_ds.py``: ``--lora_r 8 --lora_alpha 16
--lora_dropout 0.05 --lora_target_modules q_proj,v_proj``); chapters that measure another setting (the
seed designs' r=16) pass it explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINABLE_GROUPS: dict[str, str] = {
    "projections": "the new bridges: vision_to_sam, seg_token_to_sam (and vision_to_vlm for the sam source)",
    "seg_row": "the <SEG> row of the input embeddings and of lm_head (peft trainable tokens)",
    "lora": "LoRA adapters on the language model's attention projections (peft)",
    "mask_decoder": "SAM's mask decoder (LISA trains it fully)",
    "llm": "the whole language model (an ablation, not LISA's recipe)",
}
DEFAULT_GROUPS: tuple[str, ...] = ("projections", "seg_row", "mask_decoder")  # LISA's set, LoRA added by --use_lora

MODES: dict[str, tuple[str, ...]] = {  # chapter 1's modes, each the groups it trains ("full" is none of them)
    "frozen": (),
    "projections": ("projections",),
    "seg": ("projections", "seg_row"),
    "lora": ("projections", "seg_row", "lora"),
    "decoder": ("projections", "seg_row", "lora", "mask_decoder"),
    "full": (),  # every weight of every model, with no adapters: not a union of groups, so callers test for it
}


@dataclass(frozen=True)
class LoraDefaults:
    """LISA's LoRA setting; the one default of every chapter."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "v_proj")


LORA_DEFAULTS = LoraDefaults()


def check_groups(groups) -> tuple[str, ...]:
    """The groups as a tuple, or a ValueError naming the unknown ones."""
    groups = tuple(groups)
    unknown = sorted(set(groups) - set(TRAINABLE_GROUPS))
    if unknown:
        raise ValueError(f"unknown trainable group(s) {unknown}; choose from {', '.join(TRAINABLE_GROUPS)}")
    return groups


SEG_ROW_MODULES = ("embed_tokens", "lm_head")
LM_SCOPE = r"(model\.)?language_model"  # a LLaVA's language model: LoRA stays out of CLIP, which also has q_proj  # the <SEG> row must be read (input) and written (output)


def seg_row_config(token_id: int):
    """peft trainable tokens for the ``<SEG>`` row of the input embeddings and of ``lm_head``: gradients
    and optimizer state exist for those two rows only (not for the whole 32k x 4096 matrices)."""
    from peft import TrainableTokensConfig

    return TrainableTokensConfig(target_modules=list(SEG_ROW_MODULES), token_indices=[int(token_id)])


def lora_config(lora: LoraDefaults = LORA_DEFAULTS, scope: str = "", seg_token_id: int | None = None,
                targets: tuple[str, ...] | None = None):
    """peft's ``LoraConfig`` for ``lora`` on modules named ``targets`` under the regex prefix ``scope`` (a
    VLM's language model, not its vision tower); with ``seg_token_id`` the ``<SEG>`` rows train alongside as
    trainable tokens, exactly as :func:`seg_row_config` trains them without LoRA."""
    import re

    from peft import LoraConfig

    targets = tuple(targets or lora.targets)
    if not targets or any(not re.fullmatch(r"[A-Za-z0-9_]+", t) for t in targets):
        raise ValueError(f"LoRA targets must be module names like q_proj, got {list(targets)}")
    alternatives = "|".join(targets)
    pattern = rf"{scope}\..*\.({alternatives})" if scope else rf"(.*\.)?({alternatives})"
    tokens = {"trainable_token_indices": {m: [int(seg_token_id)] for m in SEG_ROW_MODULES}} if seg_token_id is not None else {}
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=pattern,
                      bias="none", **tokens)
