"""What each tensor becomes after ``from_pretrained(..., quantization_config=BitsAndBytesConfig(...))``,
worked out on the meta device by the libraries themselves.

Two steps, as in a real load: transformers' bitsandbytes quantizer (``AutoHfQuantizer.preprocess_model``,
``transformers/quantizers/quantizer_bnb_4bit.py``) swaps ``nn.Linear`` for ``Linear4bit``/``Linear8bitLt``,
skipping what ``get_keys_to_not_convert`` returns (``lm_head``, tied weights, the last module); then
bitsandbytes' own ``quantize_4bit`` / ``int8_vectorwise_quant`` run on meta tensors and give the stored
shapes (two 4-bit values per uint8, so ``numel()`` halves) and the size of the statistics kept beside them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

import torch
from torch import nn

from lisalib.accounting.presets import Preset, as_preset, check_mode, check_quant, trained_groups
from lisalib.accounting.registry import (AccountingError, build_meta_model, component_labels, component_of,
                                         load_config, model_class, projection_dims, projection_layers)


@dataclass(frozen=True)
class TensorPlan:
    """One parameter or buffer as it will be stored after loading."""

    component: str
    name: str
    kind: str  # "param" or "buffer"
    shape: tuple[int, ...]  # architecture shape
    numel: int  # what PyTorch reports after loading (halved, packed, for 4-bit weights)
    nbytes: int  # bytes of the stored tensor (what get_memory_footprint() adds up)
    state_bytes: int  # bitsandbytes statistics kept beside it (absmax, double-quant constants, int8 row scales)
    quantized: bool


@dataclass
class Footprint:
    """Bytes of a model after loading: what ``get_memory_footprint()`` reports, and the full storage."""

    footprint: int  # parameters + buffers, the get_memory_footprint() definition
    state: int  # bitsandbytes statistics outside parameters/buffers (absmax, nested absmax, codes, SCB)

    @property
    def total(self) -> int:
        return self.footprint + self.state


def predict_footprint(plans: Iterable[TensorPlan], name_prefix: str = "") -> Footprint:
    """The :class:`Footprint` of the planned tensors whose names start with ``name_prefix``."""
    chosen = [plan for plan in plans if plan.name.startswith(name_prefix)]
    return Footprint(sum(plan.nbytes for plan in chosen), sum(plan.state_bytes for plan in chosen))


def make_quantizer(quant: str, dtype: torch.dtype, skip_modules: list[str] | None = None):
    """The transformers quantizer ``from_pretrained`` would use with lisalib's BitsAndBytesConfig."""
    check_quant(quant)
    if quant == "none":
        return None
    from transformers.quantizers import AutoHfQuantizer

    from lisalib.zoo import quantization_config

    config = quantization_config(load_in_4bit=quant == "4bit", load_in_8bit=quant == "8bit",
                                 compute_dtype=dtype, skip_modules=skip_modules)
    return AutoHfQuantizer.from_config(config, pre_quantized=False)


def quantize_meta_model(model: nn.Module, quant: str, dtype: torch.dtype, skip_modules: list[str] | None = None):
    """Apply transformers' replacement rule to a meta model, exactly as ``from_pretrained`` does.

    Returns the quantizer (``None`` for ``quant="none"``); ``quantizer.modules_to_not_convert`` lists what
    it skipped by default (the output embeddings, the module of the last parameter, tied weights).
    """
    quantizer = make_quantizer(quant, dtype, skip_modules)
    if quantizer is not None:
        quantizer.preprocess_model(model=model, dtype=dtype, device_map={"": "cpu"}, checkpoint_files=None,
                                   use_kernels=False)
    return quantizer


def quant_state_tensors(quant_state) -> list[torch.Tensor]:
    """The tensors a bitsandbytes 4-bit ``QuantState`` keeps: absmax, code, and the nested (double-quant) ones."""
    tensors = [quant_state.absmax, quant_state.code]
    if getattr(quant_state, "nested", False) or quant_state.state2 is not None:
        tensors += [quant_state.offset, quant_state.state2.absmax, quant_state.state2.code]
    return [t for t in tensors if isinstance(t, torch.Tensor)]


def nbytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the given tensors' elements."""
    return sum(t.numel() * t.element_size() for t in tensors)


@lru_cache(maxsize=None)
def bnb_storage(shape: tuple[int, ...], dtype: torch.dtype, quant: str, blocksize: int = 64,
                compress_statistics: bool = True, quant_type: str = "nf4",
                quant_storage: torch.dtype = torch.uint8) -> tuple[int, int, int]:
    """(numel, bytes, statistics bytes) of one weight after bitsandbytes quantizes it, computed on meta."""
    import bitsandbytes.functional as F

    # bitsandbytes caches its 8-bit "dynamic" code map (used by double quantization) on the device of the
    # first tensor it quantizes. Quantize a real CPU tensor first, so the cache never lives on meta: a
    # meta cache would break every later real load in this process.
    F.quantize_blockwise(torch.zeros(256))
    dense = torch.empty(shape, dtype=dtype, device="meta")
    if quant == "4bit":
        packed, state = F.quantize_4bit(dense, blocksize=blocksize, compress_statistics=compress_statistics,
                                        quant_type=quant_type, quant_storage=quant_storage)
        return packed.numel(), packed.numel() * packed.element_size(), nbytes(quant_state_tensors(state))
    int8, row_scale, _ = F.int8_vectorwise_quant(dense)
    return int8.numel(), int8.numel() * int8.element_size(), nbytes([row_scale])


def _quantized_storage(weight, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, int, int]:
    import bitsandbytes as bnb

    if isinstance(weight, bnb.nn.Params4bit):
        return bnb_storage(shape, dtype, "4bit", weight.blocksize, weight.compress_statistics, weight.quant_type,
                           weight.quant_storage)
    return bnb_storage(shape, dtype, "8bit")


def plan_model(model: nn.Module, quantizer, dtype: torch.dtype, architecture: str | None = None,
               prefix: str = "") -> list[TensorPlan]:
    """Per-tensor storage of a (possibly quantizer-processed) meta model loaded in ``dtype``."""
    architecture = architecture or type(model).__name__
    plans = []
    for name, param in model.named_parameters():  # tied parameters appear once
        shape = tuple(param.shape)
        if quantizer is not None and quantizer.param_needs_quantization(model, name):
            numel, size, state = _quantized_storage(param, shape, dtype)
            quantized = True
        else:
            numel, state, quantized = param.numel(), 0, False
            size = numel * (dtype.itemsize if param.is_floating_point() else param.element_size())
        plans.append(TensorPlan(prefix + component_of(architecture, name), prefix + name, "param", shape, numel,
                                size, state, quantized))
    for name, buffer in model.named_buffers():
        plans.append(TensorPlan(prefix + component_of(architecture, name), prefix + name, "buffer",
                                tuple(buffer.shape), buffer.numel(), buffer.numel() * buffer.element_size(), 0, False))
    return plans


@dataclass
class MetaBuild:
    """The meta models of a preset, keyed by role, plus the quantizer applied to each."""

    preset: Preset
    models: dict[str, nn.Module]
    architectures: dict[str, str]
    quantizers: dict[str, object] = field(default_factory=dict)

    def roles(self) -> list[str]:
        return list(self.models)


def _skip_for_mode(preset: Preset, model: nn.Module, mode: str | None) -> list[str] | None:
    """A part the mode trains must stay unquantized (a 4-bit weight has no gradient): the SAM mask decoder."""
    if "mask_decoder" in trained_groups(preset, mode) and hasattr(model, "mask_decoder"):
        return ["mask_decoder"]
    return None


def build_preset(preset: str | Preset, quant: str = "none", dtype: torch.dtype = torch.float32,
                 mode: str | None = None, input_embedding_rows: int | None = None,
                 skip_modules: dict[str, list[str]] | None = None) -> MetaBuild:
    """Meta models for a preset, quantized (on meta) the way ``load_vlm``/``load_sam`` would quantize them.

    ``input_embedding_rows`` resizes only the language model's *input* embeddings, as
    ``model.model.language_model.resize_token_embeddings(n)`` does on LLaVA's head-less ``LlamaModel``.
    ``skip_modules`` maps a role to ``llm_int8_skip_modules``; note that giving a list *replaces*
    transformers' default skips (``lm_head``...), it does not add to them.
    """
    preset = as_preset(preset)
    check_quant(quant)
    if mode is not None:
        check_mode(preset, mode)
        if mode == "full" and quant != "none":
            raise AccountingError("mode 'full' trains every weight, and bitsandbytes-quantized weights cannot be "
                                  "trained; use --quant none")
    models, architectures, quantizers, configs = {}, {}, {}, {}
    for role, name in preset.parts:
        config = load_config(name)
        configs[role] = config
        model = build_meta_model(config, dtype)
        if input_embedding_rows is not None and isinstance(getattr(model, "model", None), nn.Module) \
                and hasattr(model.model, "language_model"):
            model.model.language_model.resize_token_embeddings(input_embedding_rows, mean_resizing=False)
        skip = (skip_modules or {}).get(role, _skip_for_mode(preset, model, mode))
        quantizers[role] = quantize_meta_model(model, quant, dtype, skip)
        models[role] = model
        architectures[role] = model_class(config).__name__
    if preset.projections:
        with torch.device("meta"):
            projections = projection_layers(*projection_dims(configs["vlm"], configs["sam"])).to(dtype)
        models["projections"] = projections
        architectures["projections"] = "projections"
        quantizers["projections"] = None  # built after loading, never quantized
    return MetaBuild(preset, models, architectures, quantizers)


def role_prefix(role: str) -> str:
    """The label prefix of a role: none for a single model or the projections, ``vlm.``/``sam.`` in a LISA."""
    return "" if role in ("model", "projections") else f"{role}."


def storage_plan(build: MetaBuild, dtype: torch.dtype) -> list[TensorPlan]:
    """Per-tensor plan of every role; component labels are prefixed with the role in a LISA preset."""
    plans = []
    for role, model in build.models.items():
        if role == "projections":
            for name, param in model.named_parameters():
                plans.append(TensorPlan("projections", f"projections.{name}", "param", tuple(param.shape),
                                        param.numel(), param.numel() * dtype.itemsize, 0, False))
            continue
        plans += plan_model(model, build.quantizers.get(role), dtype, build.architectures[role], role_prefix(role))
    return plans


def _component_order(build: MetaBuild) -> list[str]:
    order = []
    for role in build.roles():
        if role == "projections":
            order.append("projections")
        else:
            order += [role_prefix(role) + label for label in component_labels(build.architectures[role])]
    return order


@dataclass(frozen=True)
class PresetPlan:
    """The storage plan of a whole preset: every tensor, the component order, what the quantizer skipped."""

    tensors: tuple[TensorPlan, ...]
    order: tuple[str, ...]
    skipped: dict[str, list[str]]

    def by_component(self, value: Callable[[TensorPlan], int], kind: str | None = None) -> dict[str, int]:
        """``value`` summed per component (in table order), over the tensors of ``kind`` (all if ``None``)."""
        totals = {label: 0 for label in self.order}
        for tensor in self.tensors:
            if kind is None or tensor.kind == kind:
                totals[tensor.component] = totals.get(tensor.component, 0) + value(tensor)
        return totals


def plan_preset(preset: str | Preset, quant: str = "none", dtype: torch.dtype = torch.float32, mode: str | None = None,
                input_embedding_rows: int | None = None,
                skip_modules: dict[str, list[str]] | None = None) -> PresetPlan:
    """:func:`build_preset` + :func:`storage_plan`, cached (the notebook asks for the same plans many times)."""
    skip_key = tuple(sorted((role, tuple(mods)) for role, mods in (skip_modules or {}).items()))
    return _plan_preset(as_preset(preset), quant, dtype, mode, input_embedding_rows, skip_key)


@lru_cache(maxsize=64)
def _plan_preset(preset: Preset, quant: str, dtype: torch.dtype, mode: str | None, input_embedding_rows: int | None,
                 skip_key: tuple) -> PresetPlan:
    skip_modules = {role: list(mods) for role, mods in skip_key} or None
    build = build_preset(preset, quant, dtype, mode, input_embedding_rows, skip_modules)
    skipped = {role: sorted(q.modules_to_not_convert) for role, q in build.quantizers.items() if q is not None}
    return PresetPlan(tuple(storage_plan(build, dtype)), tuple(_component_order(build)), skipped)
