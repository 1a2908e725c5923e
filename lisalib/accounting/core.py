"""Parameter accounting: what an architecture *is* versus what PyTorch *reports* once it is loaded.

Every count in this module comes from the real transformers class built on the ``meta`` device (shapes
only: no weights, no download, a 7B model in well under a second), never from a hand-written formula:

* **architecture counts** -- ``sum(p.numel())`` over the meta model, split into named components;
* **quantized counts** -- transformers' own bitsandbytes quantizer (``AutoHfQuantizer.preprocess_model``,
  the call ``from_pretrained`` makes) swaps ``nn.Linear`` for ``Linear4bit``/``Linear8bitLt`` on the
  meta model, skipping what it skips (e.g. ``lm_head``); bitsandbytes' own ``quantize_4bit`` /
  ``int8_vectorwise_quant`` then run on meta tensors and give the stored shapes (two 4-bit values per
  uint8, so ``numel()`` halves) and the quantization statistics (absmax, double-quant constants);
* **trainable counts** -- peft injects LoRA / trainable-token adapters into the meta model;
* **footprints** -- :func:`measure_footprint` quantizes real-size random-weight modules on the CPU
  and compares ``get_memory_footprint()`` with the prediction.

Model configs ship as JSON in ``lisalib/configs`` (hub ``config.json`` contents written out explicitly),
so nothing here needs a network. Run ``python -m lisalib.accounting --help`` for the command line.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from lisalib.cli import format_table  # noqa: F401 (re-exported: notebook 01 prints with acc.format_table)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
QUANTS = ("none", "8bit", "4bit")
MEMORY_FORMATS = ("fp32", "bf16", "int8", "nf4")
GiB = 1024**3

# How each format stores a model: (quant for the Linear weights, dtype for every other floating tensor).
FORMAT_SETTINGS: dict[str, tuple[str, torch.dtype]] = {
    "fp32": ("none", torch.float32),
    "bf16": ("none", torch.bfloat16),
    "int8": ("8bit", torch.bfloat16),
    "nf4": ("4bit", torch.bfloat16),
}


class AccountingError(ValueError):
    """Unknown preset, model, mode or quantization, or a combination that cannot be trained."""


# --------------------------------------------------------------------------------------------------
# Shipped configs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """One shipped architecture: hub id, transformers class, config dict and its published size."""

    name: str
    hub_id: str
    architecture: str
    config: dict
    published_params: int | None  # exact figure when a source states one
    published_approx: float | None  # rounded figure from a model card otherwise
    published_source: str


@lru_cache(maxsize=None)
def _read_config_file(name: str) -> str:
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise AccountingError(f"no shipped config {name!r}; available: {', '.join(available_models())}")
    return path.read_text(encoding="utf-8")


def available_models() -> list[str]:
    """Names of the configs shipped in ``lisalib/configs``."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def model_spec(name: str) -> ModelSpec:
    """The shipped config ``lisalib/configs/<name>.json`` (a fresh copy: callers may edit it)."""
    data = json.loads(_read_config_file(name))
    return ModelSpec(
        name=name,
        hub_id=data["hub_id"],
        architecture=data["architecture"],
        config=data["config"],
        published_params=data.get("published_params"),
        published_approx=data.get("published_approx"),
        published_source=data.get("published_source", ""),
    )


def load_config(name_or_path: str):
    """A transformers config for a shipped name, a zoo name, a local checkpoint directory or a hub id.

    Shipped names never touch the network; hub ids go through ``AutoConfig.from_pretrained`` (the real
    profile on Colab).
    """
    from transformers import AutoConfig

    if (CONFIG_DIR / f"{name_or_path}.json").is_file():
        spec = model_spec(name_or_path)
        raw = dict(spec.config)
        model_type = raw.pop("model_type")
        raw.pop("architectures", None)
        config = AutoConfig.for_model(model_type, **raw)
        config.architectures = [spec.architecture]
        return config
    from lisalib.zoo import ZooError, resolve

    try:
        source = resolve(name_or_path)
    except ZooError as error:
        raise AccountingError(
            f"{name_or_path!r} is neither a shipped config ({', '.join(available_models())}) nor a model the "
            f"zoo can resolve: {error}"
        ) from None
    return AutoConfig.from_pretrained(source)


def model_class(config) -> type:
    """The transformers class named by ``config.architectures`` (what ``from_pretrained`` would build)."""
    import transformers

    names = getattr(config, "architectures", None) or []
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise AccountingError(f"config of type {type(config).__name__} names no transformers class ({names})")


def build_meta_model(config, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Instantiate the real class on the ``meta`` device: every shape, no memory, no weights."""
    with torch.device("meta"):
        return model_class(config)._from_config(config, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# The Modified LISA projection layers
# --------------------------------------------------------------------------------------------------
def projection_layers(vision_dim: int = 1024, llm_dim: int = 4096, sam_dim: int = 256) -> nn.ModuleDict:
    """``vision_to_sam`` and ``seg_token_to_sam`` as design doc 000 specifies (Linear + GELU + LayerNorm):
    the very modules chapter 2's model uses, so the count cannot drift from the model."""
    from lisalib.lisa.modeling import SegTokenToSam, VisionToSam

    return nn.ModuleDict(
        {
            "vision_to_sam": VisionToSam(vision_dim, sam_dim, sam_grid=64),  # the grid size holds no parameters
            "seg_token_to_sam": SegTokenToSam(llm_dim, sam_dim),
        }
    )


def _projection_dims(vlm_config, sam_config) -> tuple[int, int, int]:
    return (
        vlm_config.vision_config.hidden_size,
        vlm_config.text_config.hidden_size,
        sam_config.prompt_encoder_config.hidden_size,
    )


# --------------------------------------------------------------------------------------------------
# Presets: one model, or the Modified LISA (VLM + SAM + projections)
# --------------------------------------------------------------------------------------------------
MODES: dict[str, str] = {
    "frozen": "nothing trains (inference)",
    "projections": "vision_to_sam + seg_token_to_sam",
    "seg": "projections + the <SEG> row of the input embeddings (peft trainable tokens)",
    "lora": "seg + LoRA adapters on the language model (r, alpha, targets)",
    "decoder": "lora + the SAM mask decoder",
    "full": "every parameter",
}
LISA_MODES = tuple(MODES)


@dataclass(frozen=True)
class Preset:
    """What ``python -m lisalib.accounting PRESET`` counts."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (role, model name): role "vlm"/"sam" in a LISA, "model" otherwise
    projections: bool
    modes: tuple[str, ...]
    default_mode: str
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lora_scope: str = ""  # regex prefix limiting LoRA to a sub-module ("" = anywhere)
    description: str = ""


_LM_SCOPE = r"(model\.)?language_model"  # LLaVA's language model (not the CLIP tower, which also has q_proj)


def _single_preset(name: str) -> Preset:
    spec = model_spec(name)
    if spec.architecture == "SamModel":
        modes = ("frozen", "decoder", "full")
    else:
        modes = ("frozen", "lora", "full")
    scope = _LM_SCOPE if spec.architecture == "LlavaForConditionalGeneration" else ""
    targets = ("c_attn",) if spec.config.get("model_type") == "gpt2" else ("q_proj", "v_proj")
    return Preset(name, (("model", name),), False, modes, "frozen", targets, scope, spec.hub_id)


def _lisa_preset(name: str, vlm: str, sam: str, description: str) -> Preset:
    return Preset(name, (("vlm", vlm), ("sam", sam)), True, LISA_MODES, "projections", ("q_proj", "v_proj"),
                  _LM_SCOPE, description)


@lru_cache(maxsize=None)
def presets() -> dict[str, Preset]:
    """All presets: every shipped config, the tiny zoo models, and the Modified LISA combinations (read-only)."""
    table = {name: _single_preset(name) for name in available_models()}
    table["modified-lisa-7b"] = _lisa_preset("modified-lisa-7b", "llava-1.5-7b", "sam-vit-base",
                                             "LLaVA-1.5-7B + SAM ViT-B + projections (design doc 001)")
    table["modified-lisa-13b"] = _lisa_preset("modified-lisa-13b", "llava-1.5-13b", "sam-vit-base",
                                              "LLaVA-1.5-13B + SAM ViT-B + projections")
    for zoo_name, kind in (("tiny-llava", "lora"), ("tiny-sam", "decoder")):
        table[zoo_name] = Preset(zoo_name, (("model", zoo_name),), False, ("frozen", kind, "full"), "frozen",
                                 ("q_proj", "v_proj"), _LM_SCOPE if kind == "lora" else "", "tiny zoo model")
    table["modified-lisa-tiny"] = _lisa_preset("modified-lisa-tiny", "tiny-llava", "tiny-sam",
                                               "tiny-llava + tiny-sam + projections (the CPU stand-in)")
    return table


def get_preset(name: str) -> Preset:
    table = presets()
    if name not in table:
        raise AccountingError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(table))}")
    return table[name]


def check_mode(preset: Preset, mode: str) -> str:
    if mode not in MODES:
        raise AccountingError(f"unknown mode {mode!r}; modes are: {', '.join(MODES)}")
    if mode not in preset.modes:
        raise AccountingError(f"mode {mode!r} is not defined for preset {preset.name!r}; "
                              f"choose one of: {', '.join(preset.modes)}")
    return mode


def check_quant(quant: str) -> str:
    if quant not in QUANTS:
        raise AccountingError(f"unknown quantization {quant!r}; choose one of: {', '.join(QUANTS)}")
    return quant


# --------------------------------------------------------------------------------------------------
# Components: which named sub-modules make up each architecture
# --------------------------------------------------------------------------------------------------
# Ordered (label, parameter-name prefixes). A parameter shared by two components (tied weights) is
# counted once, under the first component that owns it; anything unmatched goes to "other".
COMPONENTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "LlavaForConditionalGeneration": [
        ("vision_tower", ("model.vision_tower",)),
        ("projector", ("model.multi_modal_projector",)),
        ("language_model", ("model.language_model",)),
        ("lm_head", ("lm_head",)),
    ],
    "SamModel": [
        ("vision_encoder", ("vision_encoder",)),
        ("prompt_encoder", ("prompt_encoder", "shared_image_embedding")),
        ("mask_decoder", ("mask_decoder",)),
    ],
    "CLIPModel": [
        ("vision_model", ("vision_model",)),
        ("text_model", ("text_model",)),
        ("projections", ("visual_projection", "text_projection", "logit_scale")),
    ],
    "SiglipModel": [
        ("vision_model", ("vision_model",)),
        ("text_model", ("text_model",)),
        ("logit_scale_bias", ("logit_scale", "logit_bias")),
    ],
    "LlamaForCausalLM": [
        ("embed_tokens", ("model.embed_tokens",)),
        ("decoder_layers", ("model.layers", "model.norm", "model.rotary_emb")),
        ("lm_head", ("lm_head",)),
    ],
    "Qwen3ForCausalLM": [
        ("embed_tokens", ("model.embed_tokens",)),
        ("decoder_layers", ("model.layers", "model.norm", "model.rotary_emb")),
        ("lm_head", ("lm_head",)),
    ],
    "GPT2LMHeadModel": [
        ("embeddings", ("transformer.wte", "transformer.wpe")),
        ("decoder_layers", ("transformer.h", "transformer.ln_f")),
        ("lm_head", ("lm_head",)),
    ],
}


def component_labels(architecture: str) -> list[str]:
    return [label for label, _ in COMPONENTS.get(architecture, [])]


def component_of(architecture: str, name: str) -> str:
    """The component label a parameter/buffer name belongs to (peft's ``base_model.model.`` is ignored)."""
    name = name.removeprefix("base_model.model.")
    for label, prefixes in COMPONENTS.get(architecture, []):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return label
    return "other" if architecture in COMPONENTS else name.split(".")[0]


# --------------------------------------------------------------------------------------------------
# Storage plan: what each tensor becomes after from_pretrained(..., quantization_config=...)
# --------------------------------------------------------------------------------------------------
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


def _nbytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _quantized_storage(weight, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, int, int]:
    """(numel, bytes, statistics bytes) of one weight after bitsandbytes quantizes it, computed on meta."""
    import bitsandbytes as bnb

    if isinstance(weight, bnb.nn.Params4bit):
        return bnb_storage(shape, dtype, "4bit", weight.blocksize, weight.compress_statistics, weight.quant_type,
                            weight.quant_storage)
    return bnb_storage(shape, dtype, "8bit")


@lru_cache(maxsize=None)
def bnb_storage(shape: tuple[int, ...], dtype: torch.dtype, quant: str, blocksize: int = 64,
                 compress_statistics: bool = True, quant_type: str = "nf4",
                 quant_storage: torch.dtype = torch.uint8) -> tuple[int, int, int]:
    """bitsandbytes' own quantizers run on a meta tensor: the stored shapes without touching any data."""
    import bitsandbytes.functional as F

    # bitsandbytes caches its 8-bit "dynamic" code map (used by double quantization) on the device of the
    # first tensor it quantizes. Quantize a real CPU tensor first, so the cache never lives on meta: a
    # meta cache would break every later real load in this process.
    F.quantize_blockwise(torch.zeros(256))
    dense = torch.empty(shape, dtype=dtype, device="meta")
    if quant == "4bit":
        packed, state = F.quantize_4bit(dense, blocksize=blocksize, compress_statistics=compress_statistics,
                                        quant_type=quant_type, quant_storage=quant_storage)
        return packed.numel(), packed.numel() * packed.element_size(), _nbytes(quant_state_tensors(state))
    int8, row_scale, _ = F.int8_vectorwise_quant(dense)
    return int8.numel(), int8.numel() * int8.element_size(), _nbytes([row_scale])


def plan_model(model: nn.Module, quantizer, dtype: torch.dtype, architecture: str | None = None,
               prefix: str = "") -> list[TensorPlan]:
    """Per-tensor storage of a (possibly quantizer-processed) meta model loaded in ``dtype``."""
    architecture = architecture or type(model).__name__
    plans = []
    for name, param in model.named_parameters():  # tied parameters appear once
        shape = tuple(param.shape)
        if quantizer is not None and quantizer.param_needs_quantization(model, name):
            numel, nbytes, state = _quantized_storage(param, shape, dtype)
            quantized = True
        else:
            numel, state, quantized = param.numel(), 0, False
            itemsize = dtype.itemsize if param.is_floating_point() else param.element_size()
            nbytes = numel * itemsize
        plans.append(TensorPlan(prefix + component_of(architecture, name), prefix + name, "param", shape, numel,
                                nbytes, state, quantized))
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


def _skip_for_mode(model: nn.Module, mode: str | None) -> list[str] | None:
    """A part the mode trains must stay unquantized (a 4-bit weight has no gradient): the SAM mask decoder."""
    if mode == "decoder" and hasattr(model, "mask_decoder"):
        return ["mask_decoder"]
    return None


def build_preset(preset: str | Preset, quant: str = "none", dtype: torch.dtype = torch.float32,
                 mode: str | None = None, input_embedding_rows: int | None = None,
                 skip_modules: dict[str, list[str]] | None = None) -> MetaBuild:
    """Meta models for a preset, quantized (on meta) the way ``load_vlm``/``load_sam`` would quantize them.

    ``input_embedding_rows`` resizes only the language model's *input* embeddings, as
    ``model.model.language_model.resize_token_embeddings(n)`` does on LLaVA's head-less LlamaModel (what
    design doc 001's numbers imply its code did with ``n = len(tokenizer)``).
    ``skip_modules`` maps a role to ``llm_int8_skip_modules``; note that giving a list *replaces*
    transformers' default skips (``lm_head``...), it does not add to them.
    """
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
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
        skip = (skip_modules or {}).get(role, _skip_for_mode(model, mode))
        quantizers[role] = quantize_meta_model(model, quant, dtype, skip)
        models[role] = model
        architectures[role] = model_class(config).__name__
    if preset.projections:
        with torch.device("meta"):
            projections = projection_layers(*_projection_dims(configs["vlm"], configs["sam"])).to(dtype)
        models["projections"] = projections
        architectures["projections"] = "projections"
        quantizers["projections"] = None  # built after loading, never quantized
    return MetaBuild(preset, models, architectures, quantizers)


def storage_plan(build: MetaBuild, dtype: torch.dtype) -> list[TensorPlan]:
    """Per-tensor plan of every role; component labels are prefixed with the role in a LISA preset."""
    plans = []
    for role, model in build.models.items():
        if role == "projections":
            for name, param in model.named_parameters():
                plans.append(TensorPlan("projections", f"projections.{name}", "param", tuple(param.shape),
                                        param.numel(), param.numel() * dtype.itemsize, 0, False))
            continue
        prefix = "" if role == "model" else f"{role}."
        plans += plan_model(model, build.quantizers.get(role), dtype, build.architectures[role], prefix)
    return plans


def _component_order(build: MetaBuild) -> list[str]:
    order = []
    for role in build.roles():
        if role == "projections":
            order.append("projections")
            continue
        prefix = "" if role == "model" else f"{role}."
        order += [prefix + label for label in component_labels(build.architectures[role])]
    return order


@dataclass(frozen=True)
class PresetPlan:
    """The storage plan of a whole preset: every tensor, the component order, what the quantizer skipped."""

    tensors: tuple[TensorPlan, ...]
    order: tuple[str, ...]
    skipped: dict[str, list[str]]


def plan_preset(preset: str | Preset, quant: str = "none", dtype: torch.dtype = torch.float32, mode: str | None = None,
                input_embedding_rows: int | None = None,
                skip_modules: dict[str, list[str]] | None = None) -> PresetPlan:
    """:func:`build_preset` + :func:`storage_plan`, cached (the notebook asks for the same plans many times)."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    skip_key = tuple(sorted((role, tuple(mods)) for role, mods in (skip_modules or {}).items()))
    return _plan_preset(preset, quant, dtype, mode, input_embedding_rows, skip_key)


@lru_cache(maxsize=64)
def _plan_preset(preset: Preset, quant: str, dtype: torch.dtype, mode: str | None, input_embedding_rows: int | None,
                 skip_key: tuple) -> PresetPlan:
    skip_modules = {role: list(mods) for role, mods in skip_key} or None
    build = build_preset(preset, quant, dtype, mode, input_embedding_rows, skip_modules)
    skipped = {role: sorted(q.modules_to_not_convert) for role, q in build.quantizers.items() if q is not None}
    return PresetPlan(tuple(storage_plan(build, dtype)), tuple(_component_order(build)), skipped)


def _group(plans: list[TensorPlan], order: list[str], value) -> dict[str, int]:
    totals = {label: 0 for label in order}
    for plan in plans:
        totals[plan.component] = totals.get(plan.component, 0) + value(plan)
    return totals


# --------------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------------
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
    params = [tensor for tensor in plan.tensors if tensor.kind == "param"]
    components = _group(params, plan.order, lambda tensor: tensor.numel)
    name = preset.name if isinstance(preset, Preset) else preset
    return Breakdown(name, quant, components, sum(components.values()),
                     sum(math.prod(tensor.shape) for tensor in params),
                     {role: list(modules) for role, modules in plan.skipped.items()})


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
@dataclass
class Footprint:
    """Bytes of a model after loading: what ``get_memory_footprint()`` reports, and the full storage."""

    footprint: int  # parameters + buffers, the get_memory_footprint() definition
    state: int  # bitsandbytes statistics outside parameters/buffers (absmax, nested absmax, codes, SCB)

    @property
    def total(self) -> int:
        return self.footprint + self.state


def predict_footprint(plans: Iterable[TensorPlan], name_prefix: str = "") -> Footprint:
    chosen = [plan for plan in plans if plan.name.startswith(name_prefix)]
    return Footprint(sum(plan.nbytes for plan in chosen), sum(plan.state_bytes for plan in chosen))


def memory_table(preset: str | Preset, formats: Sequence[str] = MEMORY_FORMATS, mode: str | None = None,
                 input_embedding_rows: int | None = None) -> dict[str, dict[str, int]]:
    """Bytes per component for each storage format (quant statistics included), plus a ``total`` row.

    fp32/bf16: every tensor in that dtype. int8/nf4: the Linear weights transformers quantizes, in
    bitsandbytes' storage (nf4: 4 bits per weight + one absmax per 64 weights, itself 8-bit with fp32
    constants per 256 blocks -- double quantization), every other tensor in bf16.
    """
    table: dict[str, dict[str, int]] = {}
    for fmt in formats:
        if fmt not in FORMAT_SETTINGS:
            raise AccountingError(f"unknown memory format {fmt!r}; choose from {', '.join(FORMAT_SETTINGS)}")
        quant, dtype = FORMAT_SETTINGS[fmt]
        plan = plan_preset(preset, quant, dtype, mode, input_embedding_rows)
        per = _group(plan.tensors, plan.order, lambda tensor: tensor.nbytes + tensor.state_bytes)
        for label, value in per.items():
            table.setdefault(label, {})[fmt] = value
        table.setdefault("total", {})[fmt] = sum(per.values())
    return table


# --------------------------------------------------------------------------------------------------
# Trainable parameters
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    targets: tuple[str, ...] | None = None  # None: the preset's default (q_proj, v_proj; c_attn for GPT-2)
    dropout: float = 0.0
    scope: str | None = None  # regex prefix of the sub-module LoRA may touch; None: the preset's (LLaVA: language model)


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


def lora_config(preset: Preset, lora: LoraSettings, token_rows: list[int] | None = None):
    """The peft ``LoraConfig`` a mode uses; LoRA is confined to the language model in a VLM."""
    from peft import LoraConfig

    targets = tuple(lora.targets or preset.lora_targets)
    if not targets or any(not re.fullmatch(r"[A-Za-z0-9_]+", t) for t in targets):
        raise AccountingError(f"LoRA targets must be module names like q_proj, got {list(targets)}")
    alternatives = "|".join(targets)
    scope = preset.lora_scope if lora.scope is None else lora.scope
    pattern = rf"{scope}\..*\.({alternatives})" if scope else rf"(.*\.)?({alternatives})"
    kwargs = {"trainable_token_indices": {"embed_tokens": token_rows}} if token_rows else {}
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=pattern, **kwargs)


def _seg_row(model: nn.Module) -> int:
    """Row index for the <SEG> token: the last input-embedding row (any index gives the same count)."""
    return model.get_input_embeddings().num_embeddings - 1


def trainable_parameters(preset: str | Preset, mode: str | None = None, lora: LoraSettings = LoraSettings()) -> Trainable:
    """Count what a training mode trains, using peft on the meta model for LoRA and the <SEG> row."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    mode = check_mode(preset, mode or preset.default_mode)
    if lora.r <= 0 or lora.alpha <= 0:
        raise AccountingError(f"LoRA rank and alpha must be positive, got r={lora.r}, alpha={lora.alpha}")
    result = _trainable(preset, mode, lora)
    return Trainable(result.preset, result.mode, dict(result.components), result.trainable, result.total)


@lru_cache(maxsize=64)
def _trainable(preset: Preset, mode: str, lora: LoraSettings) -> Trainable:
    from peft import TrainableTokensConfig, inject_adapter_in_model

    build = build_preset(preset, "none", torch.float32)
    for model in build.models.values():
        model.requires_grad_(mode == "full")
    if preset.projections:  # the Modified LISA: cumulative modes
        vlm, sam = build.models["vlm"], build.models["sam"]
        seg_rows = [_seg_row(vlm)] if mode in ("seg", "lora", "decoder") else None
        if mode in ("lora", "decoder"):
            inject_adapter_in_model(lora_config(preset, lora, seg_rows), vlm)
        elif seg_rows:
            inject_adapter_in_model(TrainableTokensConfig(target_modules=["embed_tokens"], token_indices=seg_rows), vlm)
        build.models["projections"].requires_grad_(mode != "frozen")
        if mode == "decoder":
            sam.mask_decoder.requires_grad_(True)
    elif mode == "lora":
        inject_adapter_in_model(lora_config(preset, lora), build.models["model"])
    elif mode == "decoder":
        build.models["model"].mask_decoder.requires_grad_(True)

    components: dict[str, int] = {}
    total = trainable = 0
    for role, model in build.models.items():
        prefix = "" if role in ("model", "projections") else f"{role}."
        for name, param in model.named_parameters():
            total += param.numel()
            if not param.requires_grad:
                continue
            label = "projections" if role == "projections" else prefix + component_of(build.architectures[role], name)
            if "lora_" in name:
                label += " (LoRA)"
            elif "trainable_tokens" in name:
                label += " (<SEG> row)"
            components[label] = components.get(label, 0) + param.numel()
            trainable += param.numel()
    return Trainable(preset.name, mode, components, trainable, total)


# --------------------------------------------------------------------------------------------------
# Will it fit? weights + gradients + optimizer state + activations
# --------------------------------------------------------------------------------------------------
BYTES_PER_TRAINABLE = {"weight": 4, "gradient": 4, "optimizer": 8}  # fp32 master weight, fp32 grad, AdamW m and v


def saved_activation_bytes(forward, exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes autograd keeps for the backward pass of ``forward()``: unique storages, parameters excluded."""
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(storages.values())


def _activation_setup(mode: str) -> str | None:
    """How gradients flow through the language model in each mode."""
    return {
        "frozen": None,
        "projections": None,  # the LLM output feeds seg_token_to_sam, but nothing upstream trains: no LLM graph
        "seg": "input",  # the <SEG> row sits at the LLM input: backprop through every layer
        "lora": "lora",
        "decoder": "lora",
        "full": "full",
    }[mode]


ACTIVATION_FLOWS = ("input", "lora", "full")


def _set_checkpointing(model, enabled: bool) -> None:
    """Activation (gradient) checkpointing on or off; transformers renamed the methods in 5.x."""
    if hasattr(model, "activation_checkpointing_enable"):
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


@lru_cache(maxsize=4)
def llm_activation_profile(model_name: str, lora_r: int = 16,
                           probe_tokens: int = 2) -> dict[tuple[str, bool], tuple[float, float]]:
    """Measured bf16 activation bytes of a VLM's language model, per gradient flow and checkpointing setting.

    Returns ``{(flow, checkpointing): (bytes per token per decoder layer, bytes per token outside the layers)}``.
    It builds the real-width causal LM with two decoder layers (zero weights, CPU, no initialisation cost) and
    records what autograd saves (:func:`saved_activation_bytes`) on ``probe_tokens`` tokens with one and then
    two layers: the difference is one layer; the rest is the embeddings, final norm, head and the fp32 loss
    over the real vocabulary. Flows: ``"input"`` (only the input embeddings need a gradient: the <SEG> row),
    ``"lora"`` (plus LoRA on q_proj/v_proj), ``"full"`` (every weight). SDPA attention saves O(tokens)
    tensors, so the per-token figures scale linearly to the real sequence length.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    config = copy.deepcopy(load_config(model_name).get_text_config())
    config.num_hidden_layers = 2
    config._attn_implementation = "sdpa"
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    model.train()
    base_params = list(model.parameters())
    labels = torch.zeros(1, probe_tokens, dtype=torch.long)
    layers = model.model.layers

    def measure(needs_input_grad: bool) -> tuple[float, float]:
        embeds = torch.zeros(1, probe_tokens, config.hidden_size, dtype=torch.bfloat16, requires_grad=needs_input_grad)
        measured = []
        for n_layers in (1, 2):
            model.model.layers = layers[:n_layers]
            measured.append(saved_activation_bytes(
                lambda: model(inputs_embeds=embeds, labels=labels, use_cache=False), exclude=model.parameters()))
        model.model.layers = layers
        per_layer = (measured[1] - measured[0]) / probe_tokens
        return per_layer, measured[0] / probe_tokens - per_layer

    profile = {}
    for flow in ACTIVATION_FLOWS:  # "lora" last: it adds adapters to the model
        for param in base_params:
            param.requires_grad_(flow == "full")
        if flow == "lora":
            inject_adapter_in_model(LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=["q_proj", "v_proj"]),
                                    model)
        for checkpointing in (False, True):
            _set_checkpointing(model, checkpointing)
            profile[(flow, checkpointing)] = measure(needs_input_grad=flow != "full")
    return profile


@lru_cache(maxsize=8)
def mask_decoder_activation_bytes(sam_name: str, trainable: bool) -> int:
    """Measured activation bytes of SAM's mask decoder for one mask, with gradients flowing to its inputs.

    In every training mode the projections feed the decoder (image embedding from ``vision_to_sam``,
    sparse prompt from ``seg_token_to_sam``), so autograd keeps the decoder's activations even when the
    decoder itself is frozen. Measured in fp32 on the CPU (bf16 convolutions are slow there): an upper bound
    for a bf16 run.
    """
    from transformers.models.sam.modeling_sam import SamMaskDecoder

    config = load_config(sam_name)
    config.mask_decoder_config._attn_implementation = "sdpa"  # what SamModel selects when it builds the decoder
    decoder = SamMaskDecoder(config.mask_decoder_config)
    decoder.requires_grad_(trainable)
    side = config.vision_config.image_size // config.vision_config.patch_size
    width = config.mask_decoder_config.hidden_size
    image = torch.zeros(1, width, side, side, requires_grad=True)
    sparse = torch.zeros(1, 1, 1, width, requires_grad=True)
    position = dense = torch.zeros(1, width, side, side)
    return saved_activation_bytes(lambda: decoder(image, position, sparse, dense, multimask_output=False),
                                  exclude=decoder.parameters())


@dataclass
class TrainingMemory:
    """Estimated GPU memory of one training step, in bytes, per category."""

    preset: str
    mode: str
    quant: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    reserve: int  # CUDA context + allocator slack (assumed)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.reserve

    def fits(self, budget_bytes: int = 8 * GiB) -> bool:
        return self.total <= budget_bytes


def sequence_tokens(preset: str | Preset, text_tokens: int = 64) -> int:
    """Tokens one training sample puts through the LLM: the image tokens plus ``text_tokens``."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    vlm = dict(preset.parts).get("vlm") or dict(preset.parts).get("model")
    config = load_config(vlm)
    vision = getattr(config, "vision_config", None)
    image_tokens = (vision.image_size // vision.patch_size) ** 2 if vision is not None else 0
    return image_tokens + text_tokens


def training_memory(preset: str | Preset, mode: str | None = None, quant: str = "4bit", text_tokens: int = 64,
                    batch_size: int = 1, gradient_checkpointing: bool = False, lora: LoraSettings = LoraSettings(),
                    reserve_bytes: int = GiB // 2) -> TrainingMemory:
    """Weights + gradients + AdamW state + activations for one step of a Modified LISA training mode.

    Frozen weights are stored as ``quant`` says (bf16 for ``none``); trainable ones in fp32 with an fp32
    gradient and two fp32 AdamW moments (16 bytes each). Activations are *measured*: the language model's
    per token and per layer (:func:`llm_activation_profile`), scaled to the sequence length, and the SAM
    mask decoder's (:func:`mask_decoder_activation_bytes`). Left out: the projections (a few MB) and, in
    ``full`` mode, the vision towers' activations.
    """
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    mode = check_mode(preset, mode or preset.default_mode)
    check_quant(quant)
    if not preset.projections:
        raise AccountingError("training_memory models the Modified LISA modes; use a modified-lisa-* preset")
    if batch_size < 1 or text_tokens < 0:
        raise AccountingError("batch_size must be >= 1 and text_tokens >= 0")
    dtype = torch.bfloat16
    plans = plan_preset(preset, quant, dtype, mode).tensors
    trainable = trainable_parameters(preset, mode, lora)
    frozen_bytes = sum(plan.nbytes + plan.state_bytes for plan in plans)
    # a trained base tensor is held in fp32 instead of its frozen storage
    trained_labels = {label for label in trainable.components if "(" not in label}
    trained_frozen_bytes = sum(plan.nbytes for plan in plans if plan.kind == "param" and (
        mode == "full" or plan.component in trained_labels))
    weights = frozen_bytes - trained_frozen_bytes + trainable.trainable * BYTES_PER_TRAINABLE["weight"]
    gradients = trainable.trainable * BYTES_PER_TRAINABLE["gradient"]
    optimizer = trainable.trainable * BYTES_PER_TRAINABLE["optimizer"]

    flow = _activation_setup(mode)
    activations = 0
    if mode != "frozen":
        activations += batch_size * mask_decoder_activation_bytes(dict(preset.parts)["sam"], mode in ("decoder", "full"))
    if flow is not None:
        vlm_name = dict(preset.parts)["vlm"]
        per_layer, outside = llm_activation_profile(vlm_name, lora.r)[(flow, gradient_checkpointing)]
        layers = load_config(vlm_name).get_text_config().num_hidden_layers
        tokens = sequence_tokens(preset, text_tokens) * batch_size
        activations += int(tokens * (per_layer * layers + outside))
    return TrainingMemory(preset.name, mode, quant, int(weights), int(gradients), int(optimizer), activations,
                          reserve_bytes)


# --------------------------------------------------------------------------------------------------
# Measured footprints of real-size quantized modules
# --------------------------------------------------------------------------------------------------
FOOTPRINT_TARGETS: dict[str, tuple[str, str, str]] = {
    # name: (shipped model, sub-config, sub-module measured)
    "clip-vit-l14-336-vision-tower": ("llava-1.5-7b", "vision_config", ""),
    "llama-7b-decoder-layer": ("llava-1.5-7b", "text_config", "layers.0."),
}


@dataclass
class FootprintCheck:
    target: str
    quant: str
    measured: Footprint
    predicted: Footprint
    reported_params: int
    predicted_params: int

    @property
    def relative_error(self) -> float:
        return abs(self.measured.footprint - self.predicted.footprint) / self.predicted.footprint


def measured_storage(model: nn.Module, name_prefix: str = "") -> tuple[Footprint, int]:
    """(Footprint, parameter count) of a loaded model: get_memory_footprint()'s sum plus bnb statistics."""
    import bitsandbytes as bnb

    params = [(n, p) for n, p in model.named_parameters() if n.startswith(name_prefix)]
    buffers = [b for n, b in model.named_buffers() if n.startswith(name_prefix)]
    footprint = _nbytes(p for _, p in params) + _nbytes(buffers)  # PreTrainedModel.get_memory_footprint's formula
    state = 0
    for _, param in params:
        if isinstance(param, bnb.nn.Params4bit) and param.quant_state is not None:
            state += _nbytes(quant_state_tensors(param.quant_state))
        elif isinstance(param, bnb.nn.Int8Params) and getattr(param, "SCB", None) is not None:
            state += _nbytes([param.SCB])
    return Footprint(footprint, state), sum(p.numel() for _, p in params)


def _host_config(target: str | tuple):
    """Config and measured sub-module prefix for a named target, or ``(config, prefix)`` given directly."""
    if isinstance(target, tuple):
        config, prefix = target
        return copy.deepcopy(config), prefix
    if target not in FOOTPRINT_TARGETS:
        raise AccountingError(f"unknown footprint target {target!r}; choose from {', '.join(FOOTPRINT_TARGETS)}")
    model_name, sub_config, prefix = FOOTPRINT_TARGETS[target]
    config = copy.deepcopy(getattr(load_config(model_name), sub_config))
    if prefix.startswith("layers."):
        config.num_hidden_layers = 1  # one decoder layer ...
        config.vocab_size = 128  # ... and a token table too small to matter (it is not measured)
        config.pad_token_id = None
    return config, prefix


def measure_footprint(target: str | tuple = "llama-7b-decoder-layer", quant: str = "4bit",
                      dtype: torch.dtype = torch.bfloat16, seed: int = 0, device: str = "cpu") -> FootprintCheck:
    """Quantize a random-weight module on the CPU through ``from_pretrained`` and compare with the prediction.

    ``target`` is a name from :data:`FOOTPRINT_TARGETS` (real sizes: the CLIP ViT-L/14-336 tower, one
    LLaMA-7B decoder layer) or ``(config, submodule_prefix)`` for any base-model config (tests use a small one).
    The random weights go in as a ``state_dict``: the same loader and quantizer as a hub checkpoint.
    """
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    check_quant(quant)
    config, prefix = _host_config(target)
    cls = MODEL_MAPPING[type(config)]
    config.architectures = [cls.__name__]
    meta = build_meta_model(config, dtype)
    # Random weights: one seeded N(0, 0.02) pool of 4M values, tiled (drawing 300M fresh values would cost
    # more CPU time than it is worth: the storage does not depend on the values).
    pool = torch.empty(1 << 22, dtype=dtype).normal_(0.0, 0.02, generator=torch.Generator().manual_seed(seed))
    state_dict = {}
    for name, tensor in meta.state_dict().items():
        if tensor.is_floating_point():
            state_dict[name] = pool.repeat(-(-tensor.numel() // pool.numel()))[: tensor.numel()].view(tensor.shape)
        else:
            state_dict[name] = torch.zeros(tensor.shape, dtype=tensor.dtype)
    quantization = make_quantizer(quant, dtype).quantization_config if quant != "none" else None
    model = cls.from_pretrained(None, config=config, state_dict=state_dict, dtype=dtype,
                                quantization_config=quantization, device_map={"": device})
    del state_dict
    measured, reported = measured_storage(model, prefix)

    meta = build_meta_model(config, dtype)
    quantizer = quantize_meta_model(meta, quant, dtype)
    plans = plan_model(meta, quantizer, dtype)
    predicted = predict_footprint(plans, prefix)
    predicted_params = sum(plan.numel for plan in plans if plan.kind == "param" and plan.name.startswith(prefix))
    name = target if isinstance(target, str) else f"{type(config).__name__}:{prefix or 'all'}"
    return FootprintCheck(name, quant, measured, predicted, reported, predicted_params)


@dataclass
class LoadCheck:
    """Prediction from the config on meta versus a real ``load_vlm``/``load_sam`` with bitsandbytes."""

    name: str
    quant: str
    reported_params: int  # sum(p.numel()) of the loaded model
    predicted_params: int
    architecture_params: int
    measured: Footprint
    predicted: Footprint
    skipped: list[str]

    @property
    def exact(self) -> bool:
        return self.reported_params == self.predicted_params and self.measured == self.predicted


def verify_quantized_load(name_or_path: str, quant: str = "4bit", dtype: torch.dtype | str = torch.float32) -> LoadCheck:
    """Load a model for real through lisalib.zoo with bitsandbytes and compare with the meta prediction.

    Works for the tiny zoo models on a CPU and for hub models (e.g. llava-hf/llava-1.5-7b-hf) on a GPU.
    """
    from lisalib.zoo import load_sam, load_vlm

    check_quant(quant)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    loader = load_sam if model_class(load_config(name_or_path)).__name__ == "SamModel" else load_vlm
    model, _ = loader(name_or_path, dtype=dtype, load_in_4bit=quant == "4bit", load_in_8bit=quant == "8bit")
    return compare_loaded(model, name_or_path, quant, dtype)


def compare_loaded(model: nn.Module, name_or_path: str, quant: str, dtype: torch.dtype | str) -> LoadCheck:
    """Compare an already loaded (quantized) model with the prediction made from its config on meta."""
    check_quant(quant)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    config = load_config(name_or_path)
    measured, reported = measured_storage(model)
    meta = build_meta_model(config, dtype)
    architecture = sum(p.numel() for p in meta.parameters())
    quantizer = quantize_meta_model(meta, quant, dtype)
    plans = plan_model(meta, quantizer, dtype)
    predicted = sum(plan.numel for plan in plans if plan.kind == "param")
    skipped = sorted(quantizer.modules_to_not_convert) if quantizer is not None else []
    return LoadCheck(str(name_or_path), quant, reported, predicted, architecture, measured, predict_footprint(plans),
                     skipped)


def explain_design_doc_4bit(preset: str = "modified-lisa-7b", input_embedding_rows: int = 32003,
                            lora: LoraSettings = LoraSettings(r=8, alpha=16)) -> list[tuple[str, int, int]]:
    """Walk from today's 4-bit count of ``preset`` to the one design doc 001 printed, one cause at a time.

    Returns ``[(step, change, running total)]``. Each step is computed with the same machinery as today's
    count, only with the setting the doc's run had: the input embeddings resized to ``len(tokenizer)``; the
    transformers 4.x skip rule for SAM (it kept the module of SAM's *last parameter* unquantized, having
    stripped ``.bias`` from its name; 5.x strips only ``.weight``, so its entry matches no module); SAM's
    point-embedding matrix being a buffer in 4.x; and LoRA adapters attached when the count was taken.
    """
    spec = get_preset(preset)
    steps = []
    total = count_parameters(spec, "4bit").total
    steps.append(("today: transformers + bitsandbytes as installed", 0, total))

    resized = count_parameters(spec, "4bit", input_embedding_rows=input_embedding_rows).total
    steps.append((f"input embeddings resized to {input_embedding_rows:,} rows (lm_head keeps its rows)",
                  resized - total, resized))
    total = resized

    sam_name = dict(spec.parts)["sam"]
    sam = build_meta_model(load_config(sam_name))
    last_module = [name for name, _ in sam.named_parameters()][-1].rsplit(".", 1)[0]
    old_rule = count_parameters(spec, "4bit", input_embedding_rows=input_embedding_rows,
                                skip_modules={"sam": [last_module]}).total
    steps.append((f"transformers 4.x rule: SAM's last module ({last_module}) not quantized", old_rule - total, old_rule))
    total = old_rule

    buffers = -sum(p.numel() for name, p in sam.named_parameters() if name.endswith("positional_embedding"))
    total += buffers
    steps.append(("transformers 4.x: SAM's point-embedding matrix was a buffer, not a parameter", buffers, total))

    adapters = trainable_parameters(dict(spec.parts)["vlm"], "lora", lora).trainable
    total += adapters
    targets = ",".join(lora.targets or spec.lora_targets)
    steps.append((f"LoRA r={lora.r} on {targets} of the language model, counted with the model", adapters, total))
    return steps


# --------------------------------------------------------------------------------------------------
# Tables and the command line
# --------------------------------------------------------------------------------------------------
def summarize(preset: str, quant: str = "none", mode: str | None = None, lora: LoraSettings = LoraSettings(),
              dtype: torch.dtype = torch.bfloat16) -> dict:
    """Everything the CLI prints: counts, trainable count and bytes for one preset/quant/mode."""
    spec = get_preset(preset)
    mode = check_mode(spec, mode or spec.default_mode)
    counts = count_parameters(spec, quant, mode=mode)
    trainable = trainable_parameters(spec, mode, lora)
    footprint = predict_footprint(plan_preset(spec, quant, dtype, mode).tensors)
    return {
        "preset": spec.name,
        "quant": quant,
        "mode": mode,
        "dtype": str(dtype).removeprefix("torch."),
        "total": counts.total,
        "architecture_total": counts.architecture_total,
        "trainable": trainable.trainable,
        "bytes": footprint.total,
        "footprint_bytes": footprint.footprint,
        "components": counts.components,
        "trainable_components": trainable.components,
        "not_quantized_by_default": counts.skipped,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lisalib.accounting",
        description="Count parameters and bytes of an architecture built on the meta device (no download). "
                    "Quantized counts are what PyTorch reports after bitsandbytes loading.",
        epilog="presets:\n  " + ", ".join(sorted(presets())) + "\nmodes (cumulative for modified-lisa-*):\n"
               + "\n".join(f"  {k:12s} {v}" for k, v in MODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", help="e.g. llava-1.5-7b, sam-vit-base, modified-lisa-7b")
    parser.add_argument("--quant", default="none", choices=QUANTS, help="bitsandbytes quantization (default: none)")
    parser.add_argument("--mode", default=None,
                        help="training mode for the trainable count (default: projections for modified-lisa-*, "
                             "frozen otherwise)")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"),
                        help="dtype of every tensor that is not quantized (default: bfloat16)")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default: 32)")
    parser.add_argument("--lora-targets", default=None, help="comma-separated module names (default: q_proj,v_proj)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()) if args.lora_targets else None
    try:
        result = summarize(args.preset, args.quant, args.mode, LoraSettings(args.lora_r, args.lora_alpha, targets),
                           getattr(torch, args.dtype))
    except AccountingError as error:
        parser.error(str(error))  # exits with status 2 and the message on stderr
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [(label, count, 100.0 * count / result["total"]) for label, count in result["components"].items()]
    print(f"{result['preset']}  quant={result['quant']}  mode={result['mode']}  dtype={result['dtype']}")
    print(format_table(rows + [("total", result["total"], 100.0)], ["component", "parameters", "%"]))
    if result["quant"] != "none":
        print(f"architecture (unquantized): {result['architecture_total']:,}")
    print(f"trainable: {result['trainable']:,}  "
          + ", ".join(f"{k}={v:,}" for k, v in result["trainable_components"].items()))
    print(f"bytes: {result['bytes']:,} ({result['bytes'] / GiB:.3f} GiB; get_memory_footprint() would say "
          f"{result['footprint_bytes']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
