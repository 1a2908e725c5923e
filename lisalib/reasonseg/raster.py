"""Polygons to masks with the very OpenCV calls LISA's ``get_mask_from_json`` makes (``utils/data_processing.py``
in https://github.com/dvlab-research/LISA).

One rasteriser for everything: ReasonSeg ground truth (real or synthetic) and the shapes world's own
masks (:mod:`lisalib.world.scenes`) both come from :func:`polygon_to_mask`, so the masks a model trains
on are the masks it is scored against. LISA's rules:

* points are converted to int32 (truncation toward zero, as ``np.array(points, dtype=np.int32)``);
* each polygon is ``cv2.polylines(m, [pts], True, 1, 1)`` (closed, 8-connected, thickness 1) followed
  by ``cv2.fillPoly(m, [pts], 1)``; parts outside the image are clipped by OpenCV itself;
* shapes are painted in the order ``np.argsort(areas)[::-1]`` of their own rasterised areas (uint64
  sums, as LISA's ``mask.sum()``): largest first, so small shapes end on top; ties come out in whatever
  order numpy's default (unstable) argsort gives, which is why the same call is made on the same dtype;
* the value is 255 where the label contains ``ignore`` (matched case-insensitively here), else 1.

Checking labels (``flag``), points and empty masks is the reader's job (:mod:`lisalib.reasonseg.dataset`).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lisalib.constants import MASK_IGNORE_VALUE, MASK_TARGET_VALUE


def _int_points(points: np.ndarray | Sequence) -> np.ndarray:
    """(N, 2) x/y points as LISA's int32 array (truncated toward zero), contiguous for OpenCV."""
    return np.ascontiguousarray(np.asarray(points, dtype=np.float64).astype(np.int32).reshape(-1, 2))


def _raster_u8(points: np.ndarray | Sequence, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    pts = [_int_points(points)]
    cv2.polylines(mask, pts, True, 1, 1)
    cv2.fillPoly(mask, pts, 1)
    return mask


def polygon_to_mask(points: np.ndarray | Sequence, height: int, width: int) -> np.ndarray:
    """LISA's raster of one (N, 2) x/y polygon as a bool [H, W]: outline plus fill, int32 points."""
    return _raster_u8(points, height, width).astype(bool)


def label_value(label: str) -> int:
    """255 (ignore) where the label contains ``ignore`` in any case, else 1 (target)."""
    return MASK_IGNORE_VALUE if "ignore" in label.lower() else MASK_TARGET_VALUE


def paint_shapes(shapes: Sequence[tuple[str, np.ndarray | Sequence]], height: int, width: int) -> np.ndarray:
    """The uint8 ground truth (0, 1, 255) of (label, points) shapes, painted in LISA's order.

    Flags must already be removed. Every shape is rasterised once; painting a shape's mask with its value
    equals LISA's second ``polylines`` + ``fillPoly`` pass with that value (same calls, same pixels).
    """
    masks = [_raster_u8(points, height, width) for _, points in shapes]
    areas = [m.sum() for m in masks]  # numpy uint64, as LISA's tmp_mask.sum()
    result = np.zeros((height, width), dtype=np.uint8)
    for index in np.argsort(areas)[::-1]:
        result[masks[index].astype(bool)] = label_value(shapes[index][0])
    return result
