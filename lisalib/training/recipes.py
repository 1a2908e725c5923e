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

MODES: dict[str, tuple[str, ...]] = {  # chapter 1's modes, each the groups it trains
    "frozen": (),
    "projections": ("projections",),
    "seg": ("projections", "seg_row"),
    "lora": ("projections", "seg_row", "lora"),
    "decoder": ("projections", "seg_row", "lora", "mask_decoder"),
    "full": tuple(TRAINABLE_GROUPS),  # every parameter
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
