"""Chapter 7: the Modified LISA on any VLM family, and 002's traditional CLIP + LLM mode.

One adapter per family (:mod:`.llava`, :mod:`.smolvlm`, :mod:`.qwen2_vl`, :mod:`.paligemma`, and the
traditional composite of :mod:`.traditional`) behind :class:`.base.VlmAdapter`; :func:`adapter_for` picks
one from a config's ``model_type`` (or a processor's class). ``lisalib.lisa`` calls the adapter wherever
it needs a backbone's internals. ``python -m lisalib.backbones check --json`` runs the end-to-end test.
"""
from __future__ import annotations

from lisalib.backbones.base import VlmAdapter, pad_to_square
from lisalib.backbones.llava import LlavaAdapter, TraditionalAdapter
from lisalib.backbones.paligemma import PaliGemmaAdapter
from lisalib.backbones.qwen2_vl import Qwen2VlAdapter
from lisalib.backbones.smolvlm import SmolVlmAdapter
from lisalib.backbones.traditional import FAMILY_KEY

ADAPTERS: dict[str, type[VlmAdapter]] = {cls.family: cls for cls in (
    LlavaAdapter, SmolVlmAdapter, Qwen2VlAdapter, PaliGemmaAdapter, TraditionalAdapter)}
FAMILIES = tuple(ADAPTERS)


class BackboneError(ValueError):
    """A config or processor of a family no adapter covers."""


def family_of(config) -> str:
    """The family of a VLM config (``traditional`` for a composite :func:`.traditional.assemble` built)."""
    marked = getattr(config, FAMILY_KEY, None)
    if marked in ADAPTERS:
        return marked
    model_type = getattr(config, "model_type", None)
    for family, cls in ADAPTERS.items():
        if model_type in cls.model_types:
            return family
    raise BackboneError(f"no backbone adapter for model_type {model_type!r}; supported: "
                        f"{', '.join(t for cls in ADAPTERS.values() for t in cls.model_types)}")


def adapter_for(config=None, processor=None) -> VlmAdapter:
    """The adapter of a VLM config, or (config-free, for processing only) of a processor."""
    if config is not None:
        return ADAPTERS[family_of(config)](config)
    name = type(processor).__name__
    for cls in ADAPTERS.values():
        if name in cls.processor_class_names:
            return cls()
    raise BackboneError(f"no backbone adapter for processor {name}")


__all__ = ["ADAPTERS", "BackboneError", "FAMILIES", "LlavaAdapter", "PaliGemmaAdapter", "Qwen2VlAdapter",
           "SmolVlmAdapter", "TraditionalAdapter", "VlmAdapter", "adapter_for", "family_of", "pad_to_square"]
