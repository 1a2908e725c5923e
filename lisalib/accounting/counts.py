"""Parameter counts: what ``sum(p.numel())`` reports after loading, and what each training mode trains.

Trainable counts come from peft itself, applied to the meta model with chapter 3's own configs
(:func:`lisalib.training.recipes.lora_config`, :func:`~lisalib.training.recipes.seg_row_config`): LoRA
adapters, and the ``<SEG>`` row as peft trainable tokens on both ``embed_tokens`` and ``lm_head``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from lisalib.accounting.presets import Preset, as_preset, check_mode, trained_groups
from lisalib.accounting.registry import AccountingError, component_of
from lisalib.accounting.storage import build_preset, plan_preset, role_prefix
from lisalib.training import recipes
from lisalib.training.recipes import LoraDefaults


@dataclass
class Breakdown:
    """Parameter counts per component, as ``sum(p.numel())`` would report them after loading."""

    preset: str
    quant: str
    components: dict[str, int]
    total: int
    architecture_total: int  # the same model unquantized
    skipped: dict[str, list[str]]  # role -> modules the quantizer left unquantized

    def share(self, label: str) -> float:
        return self.components[label] / self.total


def count_parameters(preset: str | Preset, quant: str = "none", input_embedding_rows: int | None = None,
                     skip_modules: dict[str, list[str]] | None = None, mode: str | None = None) -> Breakdown:
    """Per-component parameter counts that PyTorch reports for ``preset`` loaded with ``quant``."""
    plan = plan_preset(preset, quant, torch.bfloat16, mode, input_embedding_rows, skip_modules)  # counts ignore dtype
    components = plan.by_component(lambda tensor: tensor.numel, kind="param")
    architecture_total = sum(math.prod(tensor.shape) for tensor in plan.tensors if tensor.kind == "param")
    name = preset.name if isinstance(preset, Preset) else preset
    return Breakdown(name, quant, components, sum(components.values()), architecture_total,
                     {role: list(modules) for role, modules in plan.skipped.items()})


@dataclass
class Trainable:
    """Trainable parameters of one mode, per component (adapters labelled separately)."""

    preset: str
    mode: str
    components: dict[str, int]
    trainable: int
    total: int  # all parameters including adapters (what peft's print_trainable_parameters calls "all params")

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total


def seg_row(model: nn.Module) -> int:
    """Row index for the <SEG> token: the last input-embedding row (any index gives the same count)."""
    return model.get_input_embeddings().num_embeddings - 1


def trainable_parameters(preset: str | Preset, mode: str | None = None, lora: LoraDefaults | None = None,
                         scope: str | None = None) -> Trainable:
    """Count what a training mode trains, using peft on the meta model for LoRA and the <SEG> rows.

    ``lora`` defaults to LISA's setting on the preset's target modules (:attr:`Preset.lora`); ``scope`` is
    the regex prefix of the sub-module LoRA may touch (default: the preset's, a VLM's language model).
    """
    preset = as_preset(preset)
    mode = check_mode(preset, mode or preset.default_mode)
    lora = lora or preset.lora
    if lora.r <= 0 or lora.alpha <= 0:
        raise AccountingError(f"LoRA rank and alpha must be positive, got r={lora.r}, alpha={lora.alpha}")
    result = _trainable(preset, mode, lora, preset.lora_scope if scope is None else scope)
    return Trainable(result.preset, result.mode, dict(result.components), result.trainable, result.total)


def _inject(config_factory, model: nn.Module) -> None:
    from peft import inject_adapter_in_model

    try:
        inject_adapter_in_model(config_factory(), model)
    except ValueError as error:  # bad target names (recipes) or targets the model does not have (peft)
        raise AccountingError(str(error)) from None


@lru_cache(maxsize=64)
def _trainable(preset: Preset, mode: str, lora: LoraDefaults, scope: str) -> Trainable:
    build = build_preset(preset, "none", torch.float32)
    for model in build.models.values():
        model.requires_grad_(mode == "full")
    groups = () if mode == "full" else trained_groups(preset, mode)  # full: every weight, no adapters
    lm = build.models.get("vlm", build.models.get("model"))
    seg_token = seg_row(lm) if "seg_row" in groups else None
    if "lora" in groups:
        _inject(lambda: recipes.lora_config(lora, scope=scope, seg_token_id=seg_token), lm)
    elif seg_token is not None:
        _inject(lambda: recipes.seg_row_config(seg_token), lm)
    if "projections" in groups:
        build.models["projections"].requires_grad_(True)
    if "mask_decoder" in groups:
        build.models.get("sam", build.models.get("model")).mask_decoder.requires_grad_(True)

    components: dict[str, int] = {}
    total = trainable = 0
    for role, model in build.models.items():
        for name, param in model.named_parameters():
            total += param.numel()
            if not param.requires_grad:
                continue
            label = "projections" if role == "projections" else \
                role_prefix(role) + component_of(build.architectures[role], name)
            if "lora_" in name:
                label += " (LoRA)"
            elif "trainable_tokens" in name:
                label += " (<SEG> row)"
            components[label] = components.get(label, 0) + param.numel()
            trainable += param.numel()
    return Trainable(preset.name, mode, components, trainable, total)
