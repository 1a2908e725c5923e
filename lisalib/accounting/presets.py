"""What ``python -m lisalib.accounting PRESET`` counts: one shipped model, a tiny zoo model, or a Modified
LISA (VLM + SAM + the two projections), and the training modes each can be counted in.

The modes and their trainable groups are chapter 3's (:mod:`lisalib.training.recipes`), so chapter 1
counts exactly what chapter 3 trains. A group only applies where its part exists: a lone SAM has no
language model to put LoRA on, a lone VLM no ``<SEG>`` token.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from lisalib.accounting.registry import AccountingError, available_models, model_spec
from lisalib.training.recipes import LM_SCOPE, LORA_DEFAULTS, MODES, TRAINABLE_GROUPS, LoraDefaults

QUANTS = ("none", "8bit", "4bit")
# LoRA's scope in the other VLM families' checkpoints: their language model (lisalib.backbones' lm_scope)
VLM_SCOPES = {"Idefics3ForConditionalGeneration": r"(model\.)?text_model",
              "Qwen2VLForConditionalGeneration": r"(model\.)?language_model",
              "PaliGemmaForConditionalGeneration": r"(model\.)?language_model"}
LISA_MODES = tuple(MODES)


@dataclass(frozen=True)
class Preset:
    """One countable setup: its parts, the modes it can train in, and where LoRA goes by default."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (role, model name): role "vlm"/"sam" in a LISA, "model" otherwise
    projections: bool
    modes: tuple[str, ...]
    default_mode: str
    groups: tuple[str, ...]  # the trainable groups this preset has parts for
    lora_targets: tuple[str, ...] = LORA_DEFAULTS.targets
    lora_scope: str = ""  # regex prefix limiting LoRA to a sub-module ("" = anywhere)
    description: str = ""

    @property
    def lora(self) -> LoraDefaults:
        """LISA's LoRA setting on this preset's default target modules."""
        return replace(LORA_DEFAULTS, targets=self.lora_targets)


def _single_preset(name: str, architecture: str, model_type: str = "", description: str = "") -> Preset:
    if architecture == "SamModel":
        return Preset(name, (("model", name),), False, ("frozen", "decoder", "full"), "frozen", ("mask_decoder",),
                      description=description)
    scope = LM_SCOPE if architecture == "LlavaForConditionalGeneration" else VLM_SCOPES.get(architecture, "")
    targets = ("c_attn",) if model_type == "gpt2" else LORA_DEFAULTS.targets
    return Preset(name, (("model", name),), False, ("frozen", "lora", "full"), "frozen", ("lora", "llm"),
                  targets, scope, description)


def _lisa_preset(name: str, vlm: str, sam: str, description: str) -> Preset:
    return Preset(name, (("vlm", vlm), ("sam", sam)), True, LISA_MODES, "projections", tuple(TRAINABLE_GROUPS),
                  LORA_DEFAULTS.targets, LM_SCOPE, description)


@lru_cache(maxsize=None)
def presets() -> dict[str, Preset]:
    """All presets: every shipped config, the tiny zoo models, and the Modified LISA combinations (read-only)."""
    table = {}
    for name in available_models():
        spec = model_spec(name)
        table[name] = _single_preset(name, spec.architecture, spec.config.get("model_type", ""), spec.hub_id)
    table["modified-lisa-7b"] = _lisa_preset("modified-lisa-7b", "llava-1.5-7b", "sam-vit-base",
                                             "LLaVA-1.5-7B + SAM ViT-B + projections")
    table["modified-lisa-13b"] = _lisa_preset("modified-lisa-13b", "llava-1.5-13b", "sam-vit-base",
                                              "LLaVA-1.5-13B + SAM ViT-B + projections")
    table["tiny-llava"] = _single_preset("tiny-llava", "LlavaForConditionalGeneration", description="tiny zoo model")
    table["tiny-sam"] = _single_preset("tiny-sam", "SamModel", description="tiny zoo model")
    table["modified-lisa-tiny"] = _lisa_preset("modified-lisa-tiny", "tiny-llava", "tiny-sam",
                                               "tiny-llava + tiny-sam + projections (the CPU stand-in)")
    return table


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or an :class:`AccountingError` listing them all."""
    table = presets()
    if name not in table:
        raise AccountingError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(table))}")
    return table[name]


def as_preset(preset: str | Preset) -> Preset:
    """A preset given by name or as itself."""
    return preset if isinstance(preset, Preset) else get_preset(preset)


def check_mode(preset: Preset, mode: str) -> str:
    """``mode`` if it is one of chapter 3's modes and defined for ``preset``."""
    if mode not in MODES:
        raise AccountingError(f"unknown mode {mode!r}; modes are: {', '.join(MODES)}")
    if mode not in preset.modes:
        raise AccountingError(f"mode {mode!r} is not defined for preset {preset.name!r}; "
                              f"choose one of: {', '.join(preset.modes)}")
    return mode


def check_quant(quant: str) -> str:
    """``quant`` if it is ``none``, ``8bit`` or ``4bit``."""
    if quant not in QUANTS:
        raise AccountingError(f"unknown quantization {quant!r}; choose one of: {', '.join(QUANTS)}")
    return quant


def trained_groups(preset: Preset, mode: str | None) -> tuple[str, ...]:
    """The groups ``mode`` trains that ``preset`` has parts for (``full`` trains every parameter besides)."""
    if mode is None:
        return ()
    return tuple(group for group in MODES[check_mode(preset, mode)] if group in preset.groups)


def describe_mode(mode: str, preset: str | Preset | None = None) -> str:
    """A mode in words: its trainable groups joined by ``+`` (only those ``preset`` has parts for, if given)."""
    if mode not in MODES:
        raise AccountingError(f"unknown mode {mode!r}; modes are: {', '.join(MODES)}")
    if mode == "full":
        return "every parameter"
    groups = MODES[mode] if preset is None else trained_groups(as_preset(preset), mode)
    return " + ".join(groups) or "nothing (inference)"
