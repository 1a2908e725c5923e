"""Captioning a split and scoring it next to the two captions that need no learning.

:func:`caption_images` decodes deterministically (greedy by default; ``num_beams`` for beam search) for both
architectures; :func:`score_variant` scores the whole split at once (CIDEr-D's idf is the split's).
Baselines (:mod:`lisalib.captioning.baselines`) go through the same scorer.
"""
from __future__ import annotations

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


def score_variant(model, tokenizer, processor, data: CaptionSet, num_beams: int = 1) -> dict:
    """BLEU-1..4, ROUGE-L, CIDEr-D of the model's captions of ``data`` and the captions themselves."""
    captions = caption_images(model, tokenizer, processor, data.images, num_beams=num_beams)
    scores = score_captions(data.refs, captions)
    return {**scores, "captions": captions, "empty": sum(not c for c in captions)}


__all__ = ["caption_images", "score_variant"]
