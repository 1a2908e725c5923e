"""Chapter 6: prefix-conditioning captioning (frozen SigLIP -> projection -> decoder-only LM + LoRA) against a
cross-attention ``VisionEncoderDecoderModel``, built correctly and compared under one protocol.

Modules: :mod:`.metrics` (pycocoevalcap's BLEU/ROUGE-L/CIDEr-D), :mod:`.data` (references, splits),
:mod:`.baselines` (most frequent caption, nearest neighbour), :mod:`.modeling` (``PrefixCaptioner``),
:mod:`.ved` (the cross-attention baseline), :mod:`.train` (the protocol), :mod:`.evaluate`, :mod:`.timing`,
:mod:`.counts` (real-size parameters on ``meta``), :mod:`.runs` (the CLI's work), :mod:`.viz`.
"""
from lisalib.captioning.configuration import PrefixCaptionerConfig
from lisalib.captioning.modeling import PrefixCaptioner

__all__ = ["PrefixCaptioner", "PrefixCaptionerConfig"]
