"""``LisaConfig``: the two backbone configs plus the choices chapters 2-4 compare.

``vision_source`` says where the image features come from (``dual``: CLIP for the LLM and SAM's ViT for
the mask, as LISA; ``vlm``: one CLIP pass for both; ``sam``: one SAM pass for both). ``seg_hidden_state``
says which hidden state prompts SAM: the token *preceding* ``<SEG>`` (LISA: the state that decided to emit
``<SEG>``) or ``<SEG>``'s own position (Sa2VA's choice, which also reads the learned ``<SEG>`` row).
``seg_prompt`` says how that state reaches SAM's decoder: as one learned prompt token (``embedding``,
LISA), as a click at a point predicted from it and embedded by SAM's own prompt encoder (``point``), or
both tokens together; the point is trained by an extra L1 loss towards the mask's inside-centre.
"""
from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig, SamConfig
from transformers.configuration_utils import SubConfigSpec

from lisalib.lisa.losses import LossWeights
from lisalib.lisa.processing import VISION_SOURCES

SEG_HIDDEN_STATES = ("preceding", "seg")
SEG_PROJECTIONS = ("seg_token_to_sam", "text_hidden_fcs")
SEG_PROMPTS = ("embedding", "point", "both")


class LisaConfig(PreTrainedConfig):
    """The two backbone configs plus the choices this chapter compares."""

    model_type = "lisa"
    # the VLM config of any family (lisalib.backbones), by its model_type; LLaVA when none is given
    sub_configs_defaults = {"vlm_config": SubConfigSpec(config_class=AutoConfig, model_type="llava"),
                            "sam_config": SamConfig}

    vlm_config: dict | PreTrainedConfig | None = None
    sam_config: dict | PreTrainedConfig | None = None
    vision_source: str = "dual"  # "dual" (LISA), "vlm" or "sam" (single pass)
    seg_token_id: int | None = None
    seg_hidden_state: str = "preceding"  # "preceding" (LISA) or "seg" (the <SEG> position itself)
    seg_projection: str = "seg_token_to_sam"  # seed's Linear-GELU-LayerNorm, or LISA's "text_hidden_fcs"
    seg_prompt: str = "embedding"  # "embedding" (LISA), "point" (a click predicted from the state) or "both"
    location_loss_weight: float = 1.0  # L1 of the predicted point against the mask's inside-centre
    ce_loss_weight: float = 1.0
    bce_loss_weight: float = 2.0
    dice_loss_weight: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name, value, allowed in (("vision_source", self.vision_source, VISION_SOURCES),
                                     ("seg_hidden_state", self.seg_hidden_state, SEG_HIDDEN_STATES),
                                     ("seg_projection", self.seg_projection, SEG_PROJECTIONS),
                                     ("seg_prompt", self.seg_prompt, SEG_PROMPTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        adapter = self.backbone
        adapter.check_config()
        if self.vision_source not in adapter.vision_sources:
            raise ValueError(f"vision_source={self.vision_source!r} is not available for the {adapter.family} family "
                             f"(it has: {', '.join(adapter.vision_sources)})")

    @property
    def backbone(self):
        """The VLM family's adapter (:mod:`lisalib.backbones`), chosen by ``vlm_config.model_type``."""
        from lisalib.backbones import adapter_for

        return adapter_for(self.vlm_config)

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(self.ce_loss_weight, self.bce_loss_weight, self.dice_loss_weight,
                           self.location_loss_weight if self.seg_prompt != "embedding" else 0.0)

    @property
    def vlm_grid(self) -> int:
        """Side of the VLM's vision grid (CLIP: 24 for ViT-L/14 at 336 px, 8 for the tiny tower)."""
        return self.backbone.vision_grid()[0]

    @property
    def sam_grid(self) -> int:
        """Side of SAM's image embedding (64 at 1024 px, 16 for tiny SAM)."""
        return self.sam_config.prompt_encoder_config.image_embedding_size

    @property
    def sam_channels(self) -> int:
        return self.sam_config.mask_decoder_config.hidden_size
