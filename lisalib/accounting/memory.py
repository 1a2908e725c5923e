"""Bytes: weight memory per storage format, and the memory of one training step (weights, gradients,
AdamW state, measured activations), to answer "does this mode fit on an 8 GB GPU?".
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import torch

from lisalib.accounting.counts import trainable_parameters
from lisalib.accounting.presets import Preset, as_preset, check_mode, check_quant, trained_groups
from lisalib.accounting.registry import AccountingError, GiB, load_config
from lisalib.accounting.storage import plan_preset
from lisalib.training import recipes
from lisalib.training.recipes import LoraDefaults

MEMORY_FORMATS = ("fp32", "bf16", "int8", "nf4")
# How each format stores a model: (quant for the Linear weights, dtype for every other floating tensor).
FORMAT_SETTINGS: dict[str, tuple[str, torch.dtype]] = {
    "fp32": ("none", torch.float32),
    "bf16": ("none", torch.bfloat16),
    "int8": ("8bit", torch.bfloat16),
    "nf4": ("4bit", torch.bfloat16),
}
BYTES_PER_TRAINABLE = {"weight": 4, "gradient": 4, "optimizer": 8}  # fp32 master weight, fp32 grad, AdamW m and v
ACTIVATION_FLOWS = ("input", "lora", "full")


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
        per = plan_preset(preset, quant, dtype, mode, input_embedding_rows).by_component(
            lambda tensor: tensor.nbytes + tensor.state_bytes)
        for label, value in per.items():
            table.setdefault(label, {})[fmt] = value
        table.setdefault("total", {})[fmt] = sum(per.values())
    return table


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


def activation_flow(preset: Preset, mode: str) -> str | None:
    """How gradients flow through the language model: ``None`` (no LLM graph), ``input``, ``lora`` or ``full``.

    Training only the projections needs no LLM graph (nothing upstream of its output trains); the
    ``<SEG>`` row sits at the LLM's input, so training it backpropagates through every layer.
    """
    if mode == "full":
        return "full"
    groups = trained_groups(preset, mode)
    if "lora" in groups:
        return "lora"
    return "input" if "seg_row" in groups else None


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
def llm_activation_profile(model_name: str, lora: LoraDefaults = recipes.LORA_DEFAULTS,
                           probe_tokens: int = 2) -> dict[tuple[str, bool], tuple[float, float]]:
    """Measured bf16 activation bytes of a VLM's language model, per gradient flow and checkpointing setting.

    Returns ``{(flow, checkpointing): (bytes per token per decoder layer, bytes per token outside the layers)}``.
    It builds the real-width causal LM with two decoder layers (zero weights, CPU) and records what autograd
    saves (:func:`saved_activation_bytes`) on ``probe_tokens`` tokens with one and then two layers: the
    difference is one layer; the rest is the embeddings, final norm, head and the fp32 loss over the real
    vocabulary. Flows: ``"input"`` (only the input embeddings need a gradient), ``"lora"`` (plus ``lora``'s
    adapters; a LoRA dropout keeps its masks too), ``"full"`` (every weight). SDPA attention saves
    O(tokens) tensors, so the per-token figures scale linearly to the real sequence length.
    """
    from peft import inject_adapter_in_model
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
    for flow in sorted(ACTIVATION_FLOWS, key=lambda flow: flow == "lora"):  # "lora" last: it adds adapters
        for param in base_params:
            param.requires_grad_(flow == "full")
        if flow == "lora":
            inject_adapter_in_model(recipes.lora_config(lora), model)
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
    preset = as_preset(preset)
    vlm = dict(preset.parts).get("vlm") or dict(preset.parts).get("model")
    vision = getattr(load_config(vlm), "vision_config", None)
    image_tokens = (vision.image_size // vision.patch_size) ** 2 if vision is not None else 0
    return image_tokens + text_tokens


def training_memory(preset: str | Preset, mode: str | None = None, quant: str = "4bit", text_tokens: int = 64,
                    batch_size: int = 1, gradient_checkpointing: bool = False, lora: LoraDefaults | None = None,
                    reserve_bytes: int = GiB // 2) -> TrainingMemory:
    """Weights + gradients + AdamW state + activations for one step of a Modified LISA training mode.

    Frozen weights are stored as ``quant`` says (bf16 for ``none``); trainable ones in fp32 with an fp32
    gradient and two fp32 AdamW moments (16 bytes each). Activations are *measured*: the language model's
    per token and per layer (:func:`llm_activation_profile`), scaled to the sequence length, and the SAM
    mask decoder's (:func:`mask_decoder_activation_bytes`). Left out: the projections (a few MB) and, in
    ``full`` mode, the vision towers' activations.
    """
    preset = as_preset(preset)
    mode = check_mode(preset, mode or preset.default_mode)
    check_quant(quant)
    lora = lora or preset.lora
    if not preset.projections:
        raise AccountingError("training_memory models the Modified LISA modes; use a modified-lisa-* preset")
    if batch_size < 1 or text_tokens < 0:
        raise AccountingError("batch_size must be >= 1 and text_tokens >= 0")
    plans = plan_preset(preset, quant, torch.bfloat16, mode).tensors
    trainable = trainable_parameters(preset, mode, lora)
    frozen_bytes = sum(plan.nbytes + plan.state_bytes for plan in plans)
    # a trained base tensor is held in fp32 instead of its frozen storage
    trained_labels = {label for label in trainable.components if "(" not in label}
    trained_frozen_bytes = sum(plan.nbytes for plan in plans if plan.kind == "param" and (
        mode == "full" or plan.component in trained_labels))
    weights = frozen_bytes - trained_frozen_bytes + trainable.trainable * BYTES_PER_TRAINABLE["weight"]
    gradients = trainable.trainable * BYTES_PER_TRAINABLE["gradient"]
    optimizer = trainable.trainable * BYTES_PER_TRAINABLE["optimizer"]

    parts = dict(preset.parts)
    activations = 0
    if mode != "frozen":
        decoder_trains = mode == "full" or "mask_decoder" in trained_groups(preset, mode)
        activations += batch_size * mask_decoder_activation_bytes(parts["sam"], decoder_trains)
    flow = activation_flow(preset, mode)
    if flow is not None:
        per_layer, outside = llm_activation_profile(parts["vlm"], lora)[(flow, gradient_checkpointing)]
        layers = load_config(parts["vlm"]).get_text_config().num_hidden_layers
        tokens = sequence_tokens(preset, text_tokens) * batch_size
        activations += int(tokens * (per_layer * layers + outside))
    return TrainingMemory(preset.name, mode, quant, int(weights), int(gradients), int(optimizer), activations,
                          reserve_bytes)
