"""``LavidaConfig``: a LaViDa-style VLM's vision tower, language model and the multi-view layout between them.

LaViDa (a diffusion VLM) reads SigLIP so400m's ``hidden_states[-2]`` of five views through an ``mlp2x_gelu``
projector, pools each view's grid by bilinear resize to half its side, and lays the tokens out as
LLaVA-NeXT's ``spatial_unpad`` does (global view first, the crops tiled into one map, a newline token after
each row). The tiny model keeps all of that and swaps the LLM for an autoregressive one: selection happens
before the LLM, so what the chapter measures does not depend on how the LLM decodes.
"""
from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig, SiglipVisionConfig
from transformers.configuration_utils import SubConfigSpec

PROJECTOR_TYPES = ("mlp2x_gelu", "linear")


class LavidaConfig(PreTrainedConfig):
    """Vision tower (already truncated: LaViDa deletes SigLIP's last layer and its head), text model, layout."""

    model_type = "lisalib_lavida"
    sub_configs_defaults = {"vision_config": SiglipVisionConfig, "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = "mlp2x_gelu"
    n_views: int = 5  # global view + 2 x 2 crops (LaViDa's [(768, 768)] pinpoint)
    crop_rows: int = 2
    crop_cols: int = 2
    pool_stride: int = 2  # bilinear resize of each view's grid to ceil(grid / stride)
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.projector_type not in PROJECTOR_TYPES:
            raise ValueError(f"projector_type must be one of {PROJECTOR_TYPES}, got {self.projector_type!r}")
        if self.n_views != 1 + self.crop_rows * self.crop_cols:
            raise ValueError(f"n_views {self.n_views} != 1 global + {self.crop_rows} x {self.crop_cols} crops")

    @property
    def grid(self) -> int:
        """Tokens per side of one view (8 tiny, 27 for so400m at 384 px)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    @property
    def pooled_grid(self) -> int:
        return -(-self.grid // self.pool_stride)
