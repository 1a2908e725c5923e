"""SmolVLM (Idefics3): SigLIP tower, image splitting, pixel-shuffle connector, a LLaMA-style text model.

Vision grid: SigLIP's patch features *before* the pixel shuffle (27 x 27 of width 1152 per 384 px crop
for SmolVLM-Instruct). The pixel shuffle folds each s x s block (s = ``scale_factor``, 3 real, 2 tiny)
into one token of width s^2 * 1152, so the LLM reads (27/3)^2 = 81 tokens per crop. With image splitting
the processor cuts the (padded-square) image into r x r crops plus a downscaled global view; the crops'
grids are stitched in reading order into one (r*27) x (r*27) grid for ``vision_to_sam`` (a 4x finer grid
than the global view's at SmolVLM's 1536 px), and the LLM reads (r*r + 1) * 81 tokens. Without splitting
the grid is the one view's.
"""
from __future__ import annotations

import math

import torch

from lisalib.backbones.base import VlmAdapter, stitch


class SmolVlmAdapter(VlmAdapter):
    family = "smolvlm"
    model_types = ("idefics3", "smolvlm")
    model_class_name = "Idefics3ForConditionalGeneration"
    processor_class_names = ("Idefics3Processor", "SmolVLMProcessor")
    vision_attr = "vision_model"
    projector_attr = "connector"
    language_attr = "text_model"
    extra_keys = ("pixel_attention_mask",)
    connector = "pixel shuffle (s x s patches -> 1 token) + linear"
    grid_meaning = ("SigLIP patches before the pixel shuffle; with image splitting the r x r crops' grids "
                    "stitched in reading order (the global view is left to the LLM)")

    def __init__(self, config=None, crops_per_side: int = 1):
        super().__init__(config)
        self.crops_per_side = crops_per_side

    def vision_grid(self):
        rows, cols = super().vision_grid()
        return rows * self.crops_per_side, cols * self.crops_per_side

    def image_tokens(self) -> int:
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        per_crop = (side // self.config.scale_factor) ** 2
        crops = self.crops_per_side ** 2 + (1 if self.crops_per_side > 1 else 0)
        return crops * per_crop

    def image_arg(self, images):
        return [[image] for image in images]  # one image per sample

    def encode(self, vlm, pixel_values, extras=None):
        mask = (extras or {}).get("pixel_attention_mask")
        out = vlm.model.get_image_features(pixel_values.to(vlm.dtype), mask, return_dict=True)
        side = math.isqrt(out.last_hidden_state.shape[1])
        tokens_per_view = (side // self.config.scale_factor) ** 2
        views = [f.shape[0] // tokens_per_view for f in out.pooler_output]
        grids, start = [], 0
        for n in views:
            crops = out.last_hidden_state[start:start + n]
            start += n
            if n == 1:
                grids.append(crops[0])
            else:
                # r x r crops, then the global view (last)
                crops_side = math.isqrt(n - 1)
                grids.append(stitch(crops[:-1], crops_side, crops_side))
        return torch.stack(list(out.pooler_output)), torch.stack(grids)

    def image_outputs(self, image_features):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=list(image_features))
