"""The architectures chapter 1 counts: shipped configs, their transformers classes, meta-device builds.

Each ``lisalib/configs/<name>.json`` holds a hub ``config.json`` written out explicitly, with the hub id
and the size the model card publishes, so counting never needs a network. A model is built on PyTorch's
``meta`` device: every shape, no memory, no weights (a 7B model in well under a second).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GiB = 1024**3


class AccountingError(ValueError):
    """Unknown preset, model, mode or quantization, or a combination that cannot be trained."""


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

    Shipped names never touch the network; anything else goes through ``lisalib.zoo.resolve`` and
    ``AutoConfig.from_pretrained`` (the real profile on Colab).
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


def projection_layers(vision_dim: int = 1024, llm_dim: int = 4096, sam_dim: int = 256) -> nn.ModuleDict:
    """The Modified LISA's two new bridges, ``vision_to_sam`` and ``seg_token_to_sam`` (Linear + GELU +
    LayerNorm each): the very modules chapter 2's model uses, so the count cannot drift from the model."""
    from lisalib.lisa.bridges import SegTokenToSam, VisionToSam

    return nn.ModuleDict(
        {
            "vision_to_sam": VisionToSam(vision_dim, sam_dim, sam_grid=64),  # the grid size holds no parameters
            "seg_token_to_sam": SegTokenToSam(llm_dim, sam_dim),
        }
    )


def projection_dims(vlm_config, sam_config) -> tuple[int, int, int]:
    """(vision width, LLM width, SAM prompt width): the sizes :func:`projection_layers` connects."""
    return (
        vlm_config.vision_config.hidden_size,
        vlm_config.text_config.hidden_size,
        sam_config.prompt_encoder_config.hidden_size,
    )


# Ordered (label, parameter-name prefixes) per architecture. A parameter shared by two components (tied
# weights) is counted once, under the first component that owns it; anything unmatched goes to "other".
COMPONENTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "LlavaForConditionalGeneration": [
        ("vision_tower", ("model.vision_tower",)),
        ("projector", ("model.multi_modal_projector",)),
        ("language_model", ("model.language_model",)),
        ("lm_head", ("lm_head",)),
    ],
    "Idefics3ForConditionalGeneration": [
        ("vision_tower", ("model.vision_model",)),
        ("projector", ("model.connector",)),
        ("language_model", ("model.text_model",)),
        ("lm_head", ("lm_head",)),
    ],
    "Qwen2VLForConditionalGeneration": [
        ("projector", ("model.visual.merger",)),
        ("vision_tower", ("model.visual",)),
        ("language_model", ("model.language_model",)),
        ("lm_head", ("lm_head",)),
    ],
    "PaliGemmaForConditionalGeneration": [
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
    """The component labels of ``architecture`` in table order."""
    return [label for label, _ in COMPONENTS.get(architecture, [])]


def component_of(architecture: str, name: str) -> str:
    """The component label a parameter/buffer name belongs to (peft's ``base_model.model.`` is ignored)."""
    name = name.removeprefix("base_model.model.")
    for label, prefixes in COMPONENTS.get(architecture, []):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return label
    return "other" if architecture in COMPONENTS else name.split(".")[0]
