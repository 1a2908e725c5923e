"""Caption metrics: pycocoevalcap's pure-Python BLEU-4, ROUGE-L and CIDEr-D behind one documented normaliser.

COCO's evaluation tokenises with the Stanford PTB tokenizer (Java). This chapter runs without Java, so every
caption goes through :func:`normalise` instead: lower-case, punctuation dropped (what PTBTokenizer's
``PUNCTUATIONS`` removal does for the marks the captions use), whitespace collapsed. The scorers are
pycocoevalcap's own classes (``Bleu(4)``, ``Rouge()``, ``Cider()``; its ``Cider`` is CIDEr-D: clipped
counts, a length penalty with sigma 6, x 10). CIDEr-D's idf comes from the evaluated set's references, so a
score depends on the whole split: always score the full split at once, never average per-batch scores.
METEOR (Java) and SPICE (Java + CoreNLP download) are left out.
"""
from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")


def normalise(text: str) -> str:
    """Lower-case, drop punctuation, collapse whitespace: 'Three shapes: a red circle.' -> 'three shapes a red circle'."""
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a string, got {type(text).__name__}")
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def score_captions(references: dict | list, hypotheses: dict | list) -> dict:
    """``{"bleu1".."bleu4", "rouge_l", "cider"}`` of one hypothesis per image against its references.

    ``references``: image id -> list of reference strings (or a list of such lists); ``hypotheses``: image
    id -> one string (or a list). Both must cover the same images; every image needs at least one reference.
    An empty hypothesis scores 0 (pycocoevalcap would reject it, so it is scored as a single out-of-vocabulary
    word that matches nothing).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if isinstance(references, list):
        references = dict(enumerate(references))
    if isinstance(hypotheses, list):
        hypotheses = dict(enumerate(hypotheses))
    if set(references) != set(hypotheses):
        missing = set(references) ^ set(hypotheses)
        raise ValueError(f"references and hypotheses cover different images ({len(missing)} differ, e.g. "
                         f"{sorted(map(str, missing))[:3]})")
    if not references:
        raise ValueError("no images to score")
    gts, res = {}, {}
    for key, refs in references.items():
        if isinstance(refs, str) or not refs:
            raise ValueError(f"image {key!r}: references must be a non-empty list of strings")
        gts[key] = [normalise(r) or "<empty>" for r in refs]
        hyp = hypotheses[key]
        if isinstance(hyp, (list, tuple)):
            if len(hyp) != 1:
                raise ValueError(f"image {key!r}: one hypothesis per image, got {len(hyp)}")
            hyp = hyp[0]
        res[key] = [normalise(hyp) or "<empty>"]  # "<empty>" has no punctuation-free match in any reference
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    out = {f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}
    out.update(rouge_l=float(rouge), cider=float(cider), n_images=len(gts))
    return out


__all__ = ["normalise", "score_captions"]
