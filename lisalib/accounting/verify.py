"""Predictions against real loads: the meta-device plan must match what bitsandbytes really stores.

:func:`verify_quantized_load` loads a model through ``lisalib.zoo`` with bitsandbytes and compares
``sum(p.numel())`` and the bytes with the prediction from its config; :func:`measure_footprint` does the
same for real-size modules with random weights. :func:`explain_design_doc_4bit` walks from today's 4-bit
count to the seed design's printed one, one cause at a time.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from lisalib.accounting.counts import count_parameters, trainable_parameters
from lisalib.accounting.presets import check_quant, get_preset
from lisalib.accounting.registry import AccountingError, build_meta_model, load_config, model_class
from lisalib.accounting.storage import (Footprint, make_quantizer, nbytes, plan_model, predict_footprint,
                                        quant_state_tensors, quantize_meta_model)
from lisalib.training.recipes import LORA_DEFAULTS, LoraDefaults

FOOTPRINT_TARGETS: dict[str, tuple[str, str, str]] = {
    # name: (shipped model, sub-config, sub-module measured)
    "clip-vit-l14-336-vision-tower": ("llava-1.5-7b", "vision_config", ""),
    "llama-7b-decoder-layer": ("llava-1.5-7b", "text_config", "layers.0."),
}


@dataclass
class FootprintCheck:
    """Measured against predicted bytes and parameter count of one quantized module."""

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
    footprint = nbytes(p for _, p in params) + nbytes(buffers)  # PreTrainedModel.get_memory_footprint's formula
    state = 0
    for _, param in params:
        if isinstance(param, bnb.nn.Params4bit) and param.quant_state is not None:
            state += nbytes(quant_state_tensors(param.quant_state))
        elif isinstance(param, bnb.nn.Int8Params) and getattr(param, "SCB", None) is not None:
            state += nbytes([param.SCB])
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
    """Quantize a random-weight module through ``from_pretrained`` and compare with the prediction.

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
    # Random weights: one seeded N(0, 0.02) pool of 4M values, tiled (the storage does not depend on the
    # values, and drawing 300M fresh ones would cost more CPU time than the quantization).
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
    plans = plan_model(meta, quantize_meta_model(meta, quant, dtype), dtype)
    predicted_params = sum(plan.numel for plan in plans if plan.kind == "param" and plan.name.startswith(prefix))
    name = target if isinstance(target, str) else f"{type(config).__name__}:{prefix or 'all'}"
    return FootprintCheck(name, quant, measured, predict_footprint(plans, prefix), reported, predicted_params)


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


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def verify_quantized_load(name_or_path: str, quant: str = "4bit", dtype: torch.dtype | str = torch.float32) -> LoadCheck:
    """Load a model for real through lisalib.zoo with bitsandbytes and compare with the meta prediction.

    Works for LLaVA and SAM models: the tiny zoo's on a CPU and hub models (e.g. llava-hf/llava-1.5-7b-hf)
    on a GPU.
    """
    from lisalib.zoo import load_sam, load_vlm

    check_quant(quant)
    dtype = _dtype(dtype)
    architecture = model_class(load_config(name_or_path)).__name__
    loaders = {"SamModel": load_sam, "LlavaForConditionalGeneration": load_vlm}
    if architecture not in loaders:  # a Llava loader on another config would build a model of the wrong shape
        raise AccountingError(f"{name_or_path}: {architecture} is not a LLaVA or SAM model; verify_quantized_load "
                              "checks the parts of a Modified LISA")
    model, _ = loaders[architecture](name_or_path, dtype=dtype, load_in_4bit=quant == "4bit", load_in_8bit=quant == "8bit")
    return compare_loaded(model, name_or_path, quant, dtype)


def compare_loaded(model: nn.Module, name_or_path: str, quant: str, dtype: torch.dtype | str) -> LoadCheck:
    """Compare an already loaded (quantized) model with the prediction made from its config on meta."""
    check_quant(quant)
    dtype = _dtype(dtype)
    measured, reported = measured_storage(model)
    meta = build_meta_model(load_config(name_or_path), dtype)
    architecture = sum(p.numel() for p in meta.parameters())
    quantizer = quantize_meta_model(meta, quant, dtype)
    plans = plan_model(meta, quantizer, dtype)
    predicted = sum(plan.numel for plan in plans if plan.kind == "param")
    skipped = sorted(quantizer.modules_to_not_convert) if quantizer is not None else []
    return LoadCheck(str(name_or_path), quant, reported, predicted, architecture, measured, predict_footprint(plans),
                     skipped)


def explain_design_doc_4bit(preset: str = "modified-lisa-7b", input_embedding_rows: int = 32003,
                            lora: LoraDefaults = LORA_DEFAULTS) -> list[tuple[str, int, int]]:
    """Walk from today's 4-bit count of ``preset`` to the one the seed design printed, one cause at a time.

    Returns ``[(step, change, running total)]``. Each step is computed with the same machinery as today's
    count, only with the setting that run had: the input embeddings resized to ``len(tokenizer)``; the
    transformers 4.x skip rule for SAM (``get_keys_to_not_convert``, then in ``transformers/integrations/
    bitsandbytes.py``, kept the module of SAM's *last parameter* unquantized, having stripped ``.bias`` from
    its name; 5.x's, in ``transformers/quantizers/base.py``, strips only ``.weight``, so its entry matches no
    module); SAM's point-embedding matrix
    being a buffer in 4.x; and LoRA adapters (``lora``, LISA's r=8 by default) counted with the model.
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
    steps.append((f"LoRA r={lora.r} on {','.join(lora.targets)} of the language model, counted with the model",
                  adapters, total))
    return steps
