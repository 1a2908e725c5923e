"""PaliGemma: SigLIP + linear projector + Gemma, with a prefix-LM attention mask.

Vision grid: SigLIP's last-layer patch features (no CLS token exists), 16 x 16 of width 1152 at 224 px /
patch 14, the same 256 tokens the projector maps into Gemma's width one by one -- so grid and LLM tokens
coincide, as in LLaVA. The prompt has no chat template: the processor writes ``<image>``*256, ``<bos>``,
the question and ``\\n``; the answer is the *suffix* (``token_type_ids`` 1). Image and question attend to
each other both ways (prefix-LM), the answer causally; ``language_forward`` passes ``token_type_ids`` so
the model builds that mask, and positions start at 1 as PaliGemma's do.
"""
from __future__ import annotations

import torch

from lisalib.backbones.base import VlmAdapter


class PaliGemmaAdapter(VlmAdapter):
    family = "paligemma"
    model_types = ("paligemma",)
    model_class_name = "PaliGemmaForConditionalGeneration"
    processor_class_names = ("PaliGemmaProcessor",)
    extra_keys = ("token_type_ids",)
    connector = "one linear layer (SigLIP width -> Gemma width)"
    grid_meaning = "SigLIP's last-layer patch grid (16 x 16 at 224 px), token for token what the LLM reads"

    def prompt(self, processor, question: str) -> str:
        # no chat template: "<image>" marks where the processor expands the image tokens; it adds <bos> after
        # them and "\n" after the question
        return processor.image_token + question

    def text_batch(self, processor, images, prompts, answers, eos):
        kwargs = {} if answers is None else {"suffix": list(answers)}  # the processor appends eos itself
        full = processor(images=images, text=prompts, padding=True, return_tensors="pt", **kwargs)
        full.pop("labels", None)  # LisaProcessor labels the suffix itself (token_type_ids == 1)
        return full, None

    def encode(self, vlm, pixel_values, extras=None):
        tower = vlm.model.vision_tower
        out = vlm.model.get_image_features(pixel_values.to(tower.dtype), return_dict=True)
        return out.pooler_output, out.last_hidden_state

    def positions(self, vlm, input_ids, attention_mask, extras):
        positions = super().positions(vlm, input_ids, attention_mask, extras)
        return None if positions is None else positions + 1  # PaliGemma's positions are 1-indexed

    def language_kwargs(self, extras):
        return {"token_type_ids": extras["token_type_ids"]} if "token_type_ids" in extras else {}

    def generate(self, vlm, input_ids, attention_mask, image_features, extras, **kwargs):
        extras = dict(extras or {})
        extras.setdefault("token_type_ids", torch.zeros_like(input_ids))
        return super().generate(vlm, input_ids, attention_mask, image_features, extras, **kwargs)
