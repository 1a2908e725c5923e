"""LLaVA-1.5 (and LLaVA-NeXT, and 002's traditional composite, which is built as a LLaVA).

Vision grid: CLIP's patch features of ``vision_feature_layer`` (-2) without CLS -- exactly what the
projector reads -- on a g x g grid (24 x 24 for ViT-L/14 at 336 px, 8 x 8 for tiny-llava). The prompt is
LLaVA-1.5's ``USER: <image>\\n{question} ASSISTANT:``, rendered by the processor's chat template when it
ships one (llava-hf does) and typed from :mod:`lisalib.constants` otherwise (tiny-llava ships none).

LLaVA-NeXT's anyres changes the grid: the LLM reads the 336 px base view (24 x 24) *plus* the tiles of the
best-fitting ``image_grid_pinpoints`` resolution (each 24 x 24, unpadded, one newline token per row), so
its token count depends on the image's shape (:func:`llava_next_tokens`). ``vision_to_sam`` reads the
base view's 24 x 24 grid, the only one that covers the whole (padded-square) frame SAM's masks live in.
"""
from __future__ import annotations

import torch

from lisalib.backbones.base import VlmAdapter


class LlavaAdapter(VlmAdapter):
    family = "llava"
    model_types = ("llava",)
    model_class_name = "LlavaForConditionalGeneration"
    processor_class_names = ("LlavaProcessor",)
    vision_sources = ("dual", "vlm", "sam")
    connector = "2-layer MLP (GELU) on CLIP layer -2 patches, no CLS"
    grid_meaning = "CLIP's g x g patch grid of layer -2 without CLS (24 x 24 at 336 px), what the projector reads"

    def check_config(self) -> None:
        if not isinstance(self.config.vision_feature_layer, int):
            raise ValueError("vision_feature_layer must be a single layer index for the CLIP -> SAM bridge")

    def prompt(self, processor, question: str) -> str:
        from lisalib.constants import chat_prompt

        if getattr(processor, "chat_template", None):
            return super().prompt(processor, question)
        return chat_prompt(question)

    def load_processor(self, path):
        from transformers import LlavaProcessor

        return LlavaProcessor.from_pretrained(path)

    def encode(self, vlm, pixel_values, extras=None):
        """One CLIP pass: LLM image tokens ``[B, g*g, D_llm]`` and the patch features they came from
        (``[B, g*g, D_clip]``, LLaVA's selected layer without CLS: what its projector saw)."""
        tower = vlm.model.vision_tower
        clip = vlm.model.get_image_features(pixel_values=pixel_values.to(tower.device, tower.dtype), return_dict=True)
        patches = clip.hidden_states[self.config.vision_feature_layer]
        if self.config.vision_feature_select_strategy == "default":
            patches = patches[:, 1:]
        return torch.stack(list(clip.pooler_output)), patches

    def embed(self, vlm, input_ids, image_features):
        embeds = vlm.get_input_embeddings()(input_ids)
        mask = vlm.model.get_placeholder_mask(input_ids, inputs_embeds=embeds, image_features=image_features)
        return embeds.masked_scatter(mask, image_features.to(embeds.device, embeds.dtype))

    def generate(self, vlm, input_ids, attention_mask, image_features, extras, **kwargs):
        return vlm.generate(inputs_embeds=self.embed(vlm, input_ids, image_features), attention_mask=attention_mask,
                            **kwargs)


class TraditionalAdapter(LlavaAdapter):
    """002's traditional mode: separately pretrained image encoder + text LLM as a LLaVA with a new projector."""

    family = "traditional"
    connector = "new 2-layer MLP (image -> text space), trained with the bridges"
    grid_meaning = "the image encoder's own patch grid (14 x 14 for CLIP ViT-B/16 at 224 px), layer -2, no CLS"

    def trains_projector(self) -> bool:
        return True


def llava_next_tokens(config, height: int, width: int) -> int:
    """LLM tokens LLaVA-NeXT makes of a ``height x width`` image: base view + unpadded anyres tiles + newlines."""
    from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

    vision = config.vision_config
    side = vision.image_size // vision.patch_size
    rows, cols = get_anyres_image_grid_shape((height, width), config.image_grid_pinpoints, vision.image_size)
    grid = torch.zeros(1, rows * side, cols * side)
    unpadded = unpad_image(grid, (height, width))
    return side * side + unpadded.shape[1] * (unpadded.shape[2] + 1)
