"""One interface over every VLM family: what the Modified LISA needs from a backbone, nothing more.

002's wrapper has ``encode_image``, ``encode_text`` and ``forward``; the Modified LISA also needs the
*vision grid* (the spatial patch features ``vision_to_sam`` lays out for SAM's decoder), the vision and
text widths, where the image tokens sit in the sequence, and the family's own attention/position rules
(Qwen2-VL's M-RoPE, PaliGemma's prefix-LM mask). An adapter is stateless apart from the VLM config and
holds no weights: ``lisalib.lisa.modeling`` calls it where it used to reach into LLaVA's internals.

Adapters are chosen by ``config.model_type`` (:func:`lisalib.backbones.adapter_for`). Processor-side
methods (prompts, views, text batches) work without a config, so ``LisaProcessor`` can use them too.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from PIL import Image


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pad bottom/right to a square, as SAM does, so that the vision grid covers SAM's frame exactly."""
    side = max(image.size)
    if image.width == image.height:
        return image
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, (0, 0))
    return canvas


class VlmAdapter:
    """Defaults follow the ``model.model.<vision> / <projector> / <language>`` layout of transformers' VLMs."""

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    model_class_name: ClassVar[str] = ""
    processor_class_names: ClassVar[tuple[str, ...]] = ()
    vision_attr: ClassVar[str] = "vision_tower"
    projector_attr: ClassVar[str] = "multi_modal_projector"
    language_attr: ClassVar[str] = "language_model"
    vision_sources: ClassVar[tuple[str, ...]] = ("dual", "vlm")
    connector: ClassVar[str] = ""  # in words, for the notebook's side-by-side table
    grid_meaning: ClassVar[str] = ""  # what "the vision grid" is for vision_to_sam

    def __init__(self, config=None):
        self.config = config

    # ----- sizes -------------------------------------------------------------------------------------
    @property
    def vision_dim(self) -> int:
        """Width of the patch features ``vision_to_sam`` reads."""
        return self.config.vision_config.hidden_size

    @property
    def text_dim(self) -> int:
        return self.config.text_config.hidden_size

    @property
    def image_token_id(self) -> int:
        return self.config.image_token_id

    def vision_grid(self) -> tuple[int, int]:
        """(rows, cols) of the patch grid ``vision_to_sam`` reads at the view the processor makes."""
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        return side, side

    def image_tokens(self) -> int:
        """LLM tokens one image becomes (at the processor's view)."""
        rows, cols = self.vision_grid()
        return rows * cols

    @property
    def lm_scope(self) -> str:
        """Regex prefix of the language model's modules (LoRA stays out of the vision tower)."""
        return rf"(model\.)?{self.language_attr}"

    def quant_skip(self) -> list[str]:
        """Modules kept out of 4-bit/8-bit quantization: the vision side and ``lm_head`` (LISA's chat.py)."""
        return [self.vision_attr, self.projector_attr, "lm_head"]

    def check_config(self) -> None:
        """Raise ValueError for a config the Modified LISA cannot use."""

    # ----- modules -----------------------------------------------------------------------------------
    def vision_tower(self, vlm):
        return getattr(vlm.model, self.vision_attr)

    def drop_vision_tower(self, vlm) -> None:
        setattr(vlm.model, self.vision_attr, None)

    def projector(self, vlm):
        return getattr(vlm.model, self.projector_attr)

    def language_model(self, vlm):
        return getattr(vlm.model, self.language_attr)

    def trains_projector(self) -> bool:
        """True when the image -> text connector is new and trains with the bridges (traditional mode)."""
        return False

    # ----- processing --------------------------------------------------------------------------------
    def prompt(self, processor, question: str) -> str:
        """The family's first user turn with one image, through the processor's chat template."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def pad_fill(self, processor) -> tuple[int, int, int]:
        return tuple(int(round(255 * m)) for m in processor.image_processor.image_mean)

    def vlm_view(self, image: Image.Image, processor) -> Image.Image:
        """What the VLM sees in the ``vlm`` design: the image padded bottom/right to a square, so the vision
        grid covers SAM's frame; families with a dynamic resolution also get a fixed side."""
        return pad_to_square(image, self.pad_fill(processor))

    def dual_view(self, image: Image.Image, processor) -> Image.Image:
        """What the VLM sees in the ``dual`` design (its processor's own view of the image)."""
        return image

    def text_batch(self, processor, images, prompts, answers, eos: str):
        """``(processor output, prompt_only)``: prompt + answer + eos tokenized with the images, and (for the
        labels) the prompts alone; ``prompt_only`` is None where the output carries ``token_type_ids``."""
        texts = prompts if answers is None else [f"{p} {a}{eos}" for p, a in zip(prompts, answers)]
        full = processor(images=self.image_arg(images), text=texts, padding=True, return_tensors="pt")
        prompt_only = None
        if answers is not None:
            prompt_only = processor(images=self.image_arg(images), text=prompts, padding=True, return_tensors="pt")
        return full, prompt_only

    def image_arg(self, images):
        return images

    extra_keys: ClassVar[tuple[str, ...]] = ()

    def extras(self, batch) -> dict:
        """The family's tensors the model needs besides ids and pixels (``vlm_inputs`` of the batch)."""
        return {key: batch[key] for key in self.extra_keys if key in batch}

    # ----- model -------------------------------------------------------------------------------------
    def encode(self, vlm, pixel_values: torch.Tensor, extras: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """One vision pass: LLM image tokens ``[B, T, D_llm]`` and the row-major patch grid ``[B, r*c, D_vis]``."""
        raise NotImplementedError

    def embed(self, vlm, input_ids: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the image placeholders replaced by the image features (in order)."""
        embeds = vlm.get_input_embeddings()(input_ids)
        mask = (input_ids == self.image_token_id)[..., None].to(embeds.device)
        if int(mask.sum()) * embeds.shape[-1] != image_features.numel():
            raise ValueError(f"{int(mask.sum())} image tokens in the text but {image_features.shape[:-1]} features")
        return embeds.masked_scatter(mask, image_features.to(embeds.device, embeds.dtype))

    def positions(self, vlm, input_ids, attention_mask, extras) -> torch.Tensor | None:
        """Position ids; with left padding the same as ``generate()`` uses."""
        if attention_mask is None:
            return None
        return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)

    def language_kwargs(self, extras: dict) -> dict:
        return {}

    def language_forward(self, vlm, inputs_embeds, attention_mask, input_ids, extras) -> torch.Tensor:
        """Last-layer hidden states after the final norm (what LISA reads)."""
        out = vlm.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                        position_ids=self.positions(vlm, input_ids, attention_mask, extras or {}), use_cache=False,
                        **self.language_kwargs(extras or {}))
        return out.last_hidden_state

    def image_outputs(self, image_features: torch.Tensor):
        """The image features in the shape the family's ``forward`` takes as ``mm_encoder_outputs['image']``."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=image_features)

    def extend_extras(self, extras: dict | None, n_new: int) -> dict | None:
        """``extras`` for the prompt followed by ``n_new`` generated tokens (text tokens, in the suffix)."""
        if not extras:
            return extras
        out = dict(extras)
        for key, value in (("mm_token_type_ids", 0), ("token_type_ids", 1)):
            if key in out:
                ids = out[key]
                out[key] = torch.cat([ids, ids.new_full((ids.shape[0], n_new), value)], dim=1)
        return out

    def load_processor(self, path):
        """The family's processor from a ``save_pretrained`` folder."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)

    def generate_kwargs(self, extras: dict) -> dict:
        return dict(extras)

    def generate(self, vlm, input_ids, attention_mask, image_features, extras, **kwargs) -> torch.Tensor:
        """Greedy answer tokens (prompt excluded), reusing the encoded image through ``mm_encoder_outputs``
        so the vision tower does not run again."""
        out = vlm.generate(input_ids=input_ids, attention_mask=attention_mask,
                           mm_encoder_outputs={"image": self.image_outputs(image_features)},
                           **self.generate_kwargs(extras or {}), **kwargs)
        return out[:, input_ids.shape[1]:]


def stitch(grids: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``[rows*cols, g*g, D]`` crop grids (row-major crops, row-major patches) -> one ``[rows*g * cols*g, D]``."""
    n, length, dim = grids.shape
    side = math.isqrt(length)
    x = grids.reshape(rows, cols, side, side, dim).permute(0, 2, 1, 3, 4)
    return x.reshape(rows * side * cols * side, dim)
