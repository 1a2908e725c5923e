"""``PrefixCaptionerConfig``: frozen SigLIP vision tower -> projection (-> token pooling) -> decoder-only LM + LoRA.

004's ``PrefixConditioningVLM`` config, fixed: its ``projection_dim`` was never used (dropped), its
``max_length`` broke ``save_pretrained`` (it is ``max_caption_tokens`` here, not a generation parameter), and
the pooled prefix is new: ``prefix_pooling="pixel_shuffle"`` (SmolVLM's connector: s x s neighbouring
patches concatenated, N / s^2 tokens of s^2 D channels) or ``"avg"`` (s x s average pooling).
"""
from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig, SiglipVisionConfig
from transformers.configuration_utils import SubConfigSpec

PROJECTION_TYPES = ("linear", "mlp")
POOLINGS = ("none", "pixel_shuffle", "avg")


class PrefixCaptionerConfig(PreTrainedConfig):
    """Vision tower config, text model config, and the bridge between them (see the module docstring)."""

    model_type = "lisalib_prefix_captioner"
    sub_configs_defaults = {"vision_config": SiglipVisionConfig,
                            "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projection_type: str = "linear"  # 004: Linear(768, 576)
    mlp_hidden_dim: int = 2048  # 004's "mlp": Linear -> GELU -> Dropout(0.1) -> Linear
    prefix_pooling: str = "none"  # none: every patch is a prefix token (004: 196)
    pool_factor: int = 2  # s: 14 x 14 -> 7 x 7 = 49 tokens (real), 8 x 8 -> 4 x 4 = 16 (tiny)
    freeze_vision: bool = True
    freeze_language_model: bool = True  # False: the LM trains whole (ClipCap's "GPT-2 tuning"; a diagnostic here)
    lora_r: int = 16  # 004: r 16, alpha 16, dropout 0.1, bias none; 0 = no LoRA (the LM frozen)
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list | None = None  # None: 004's auto targets (llama q,k,v,o; gpt2 c_attn,c_proj; else q,v)
    max_caption_tokens: int = 30  # 004's max_length: caption tokens before eos, in training and generation
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.projection_type not in PROJECTION_TYPES:
            raise ValueError(f"projection_type must be one of {PROJECTION_TYPES}, got {self.projection_type!r}")
        if self.prefix_pooling not in POOLINGS:
            raise ValueError(f"prefix_pooling must be one of {POOLINGS}, got {self.prefix_pooling!r}")
        if self.prefix_pooling != "none" and self.grid % self.pool_factor:
            raise ValueError(f"a {self.grid} x {self.grid} patch grid cannot be pooled by {self.pool_factor}")

    @property
    def grid(self) -> int:
        return self.vision_config.image_size // self.vision_config.patch_size

    @property
    def prefix_tokens(self) -> int:
        """Prefix length the LM reads: every patch, or (grid / s)^2 after pooling."""
        if self.prefix_pooling == "none":
            return self.grid ** 2
        return (self.grid // self.pool_factor) ** 2

    @property
    def prefix_width(self) -> int:
        """Channels entering the projection: D, or s^2 D after pixel shuffle."""
        d = self.vision_config.hidden_size
        return d * self.pool_factor ** 2 if self.prefix_pooling == "pixel_shuffle" else d

    def lora_target_modules(self) -> list[str]:
        if self.lora_targets:
            return list(self.lora_targets)
        model_type = self.text_config.model_type
        if model_type in ("llama", "mistral"):
            return ["q_proj", "v_proj", "k_proj", "o_proj"]
        if model_type == "gpt2":
            return ["c_attn", "c_proj"]
        return ["q_proj", "v_proj"]
