"""Qwen2-VL: dynamic resolution, 2 x 2 patch merger, M-RoPE.

Vision grid: the ViT's 14 px patches *before* the merger (width ``embed_dim``, 1280 real), h x w of them
at the image's own resolution (rounded to multiples of 28; a still image is two identical temporal
frames). The processor orders patches merge-window by merge-window (each 2 x 2 block contiguous) so the
merger can concatenate them; the adapter undoes that order to a row-major h x w grid for
``vision_to_sam``. The LLM reads (h/2) x (w/2) merged tokens, with 3-D rotary positions (temporal, row,
column) over the image and ordinary positions over the text (M-RoPE): ``language_forward`` computes them
with the model's own ``get_rope_index``. Because the grid would otherwise change with every image's
size, the ``vlm`` design fixes the view at ``view_side`` px (448 real: 32 x 32 patches, 256 tokens).
"""
from __future__ import annotations

import math

import torch
from PIL import Image

from lisalib.backbones.base import VlmAdapter


class Qwen2VlAdapter(VlmAdapter):
    family = "qwen2_vl"
    model_types = ("qwen2_vl",)
    model_class_name = "Qwen2VLForConditionalGeneration"
    processor_class_names = ("Qwen2VLProcessor", "Qwen2VLImageProcessorOnly")
    vision_attr = "visual"
    language_attr = "language_model"
    extra_keys = ("image_grid_thw", "mm_token_type_ids")
    connector = "patch merger: 2 x 2 neighbouring patches concatenated -> LayerNorm + MLP"
    grid_meaning = ("ViT patches before the 2 x 2 merger, un-permuted from merge-window order to row-major, "
                    "at the fixed vlm view (dynamic resolution otherwise changes the grid per image)")

    @property
    def vision_dim(self) -> int:
        return self.config.vision_config.embed_dim

    def projector(self, vlm):
        return vlm.model.visual.merger

    def quant_skip(self) -> list[str]:
        return ["visual", "lm_head"]

    def view_side(self, processor) -> int:
        """The fixed square side of the vlm view: the processor's largest area, floored to a merge multiple."""
        factor = processor.image_processor.patch_size * processor.image_processor.merge_size
        side = math.isqrt(int(processor.image_processor.size["longest_edge"]))
        return max(factor, side // factor * factor)

    def vlm_view(self, image, processor):
        side = self.view_side(processor)
        return super().vlm_view(image, processor).resize((side, side), Image.BICUBIC)

    def vision_grid(self, view_side: int = 448):
        """(rows, cols) of patches at a ``view_side`` px square view (448: Qwen2-VL-2B at 256 LLM tokens)."""
        side = view_side // self.config.vision_config.patch_size
        return side, side

    def image_tokens(self, view_side: int = 448) -> int:
        rows, cols = self.vision_grid(view_side)
        return rows * cols // self.config.vision_config.spatial_merge_size ** 2

    def encode(self, vlm, pixel_values, extras=None):
        grid_thw = extras["image_grid_thw"]
        visual = vlm.model.visual
        out = vlm.model.get_image_features(pixel_values.to(visual.dtype), grid_thw, return_dict=True)
        m = self.config.vision_config.spatial_merge_size
        grids, start = [], 0
        for t, h, w in grid_thw.tolist():
            patches = out.last_hidden_state[start:start + t * h * w][: h * w]  # a still image: first frame
            start += t * h * w
            grid = patches.reshape(h // m, w // m, m, m, -1).permute(0, 2, 1, 3, 4).reshape(h * w, -1)
            grids.append(grid)
        return torch.stack(list(out.pooler_output)), torch.stack(grids)

    def positions(self, vlm, input_ids, attention_mask, extras):
        positions, _ = vlm.model.get_rope_index(input_ids, extras["mm_token_type_ids"],
                                                image_grid_thw=extras["image_grid_thw"], attention_mask=attention_mask)
        return positions

    def load_processor(self, path):
        return load_qwen2_vl_processor(path)

    def dual_view(self, image, processor):
        side = self.view_side(processor)
        return image.resize((side, side), Image.BICUBIC)  # a fixed grid, so the batch's image tokens stack

    def image_outputs(self, image_features):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=tuple(image_features))


def _image_only_processor_class():
    """``Qwen2VLProcessor`` without its video processor (which needs torchvision, absent here): still images
    are all the Modified LISA feeds it. Built lazily so importing this module stays light."""
    from transformers import ProcessorMixin, Qwen2VLProcessor

    class Qwen2VLImageProcessorOnly(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"  # Qwen2-VL's placeholders
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            self.video_processor = None

    return Qwen2VLImageProcessorOnly


def qwen2_vl_processor(image_processor, tokenizer, chat_template=None):
    """A Qwen2-VL processor for images: the stock class where torchvision is installed, else image-only."""
    return _image_only_processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                         chat_template=chat_template)


def load_qwen2_vl_processor(path):
    return _image_only_processor_class().from_pretrained(path)
