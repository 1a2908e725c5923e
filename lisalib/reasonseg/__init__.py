"""Datasets for reasoning segmentation: the ReasonSeg reader and a synthetic set in the same format.

One on-disk format (an image plus a LabelMe-style JSON per sample, as LISA's ReasonSeg ships it) means
one reader serves both the real benchmark and the shapes-world set, so numbers computed on either go
through exactly the same mask semantics.
"""
from lisalib.reasonseg.dataset import (
    ANSWER_TEMPLATES,
    ReasonSegDataset,
    ReasonSegError,
    ReasonSegSample,
    ReasonSegWarning,
    answer_templates,
    eval_answer,
    mask_from_annotation,
    question,
    read_annotation,
    read_sample,
)
from lisalib.reasonseg.raster import paint_shapes, polygon_to_mask

__all__ = [
    "ANSWER_TEMPLATES",
    "ReasonSegDataset",
    "ReasonSegError",
    "ReasonSegSample",
    "ReasonSegWarning",
    "answer_templates",
    "eval_answer",
    "mask_from_annotation",
    "paint_shapes",
    "polygon_to_mask",
    "question",
    "read_annotation",
    "read_sample",
]
