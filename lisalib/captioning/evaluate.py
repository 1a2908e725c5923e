"""Captioning a split and scoring it next to the two captions that need no learning.

:func:`caption_images` decodes deterministically (greedy by default; ``num_beams`` for beam search) for both
architectures; :func:`score_variant` scores the whole split at once (CIDEr-D's idf is the split's).
Baselines (:mod:`lisalib.captioning.baselines`) go through the same scorer.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from lisalib.captioning.data import CaptionSet, pixel_values
from lisalib.captioning.metrics import score_captions
from lisalib.captioning.modeling import PrefixCaptioner
from lisalib.captioning.ved import ved_generate


def caption_images(model, tokenizer, processor, images, num_beams: int = 1, batch_size: int = 64,
                   max_new_tokens: int = 31) -> list[str]:
    """Captions of uint8 images [N, H, W, 3] (already at the encoder's size)."""
    captions = []
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            pixels = pixel_values(images[start:start + batch_size], processor).to(next(model.parameters()).device)
            if isinstance(model, PrefixCaptioner):
                ids = model.generate(pixels, bos, tokenizer.eos_token_id, tokenizer.pad_token_id, num_beams=num_beams,
                                     max_new_tokens=max_new_tokens)
            else:
                ids = ved_generate(model, pixels, num_beams=num_beams, max_new_tokens=max_new_tokens)
            captions += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return captions


@contextmanager
def image_blind(model):
    """The image ablation: inside the block the vision tower's patch features are zeros, so whatever the text
    side reads (prefix = the projection's bias; cross-attention keys and values) carries no image. A captioner
    that scores as well blind has learnt a caption prior, not to read the image."""
    tower = model.vision_tower if isinstance(model, PrefixCaptioner) else model.encoder

    def zero(module, args, output):
        output.last_hidden_state = torch.zeros_like(output.last_hidden_state)
        return output
    handle = tower.register_forward_hook(zero)
    try:
        yield model
    finally:
        handle.remove()


def score_variant(model, tokenizer, processor, data: CaptionSet, num_beams: int = 1, blind: bool = False) -> dict:
    """BLEU-1..4, ROUGE-L, CIDEr-D of the model's captions of ``data`` and the captions themselves
    (``blind``: under :func:`image_blind`)."""
    if blind:
        with image_blind(model):
            return score_variant(model, tokenizer, processor, data, num_beams=num_beams)
    captions = caption_images(model, tokenizer, processor, data.images, num_beams=num_beams)
    scores = score_captions(data.refs, captions)
    return {**scores, "captions": captions, "empty": sum(not c for c in captions)}


__all__ = ["caption_images", "image_blind", "score_variant"]
