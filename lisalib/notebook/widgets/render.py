"""Pure pixel work: the prediction against its ground truth as an RGB array, and the colours it uses.

Planes from numpy/torch input, thresholding, dimming, filled and outlined confusion regions, ignore
hatching and the predicted click; :func:`render_sample`, :func:`segment_query` and :func:`png_bytes`.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lisalib.constants import MASK_IGNORE_VALUE, MASK_TARGET_VALUE
from lisalib.images import ensure_rgb
from lisalib.reasonseg.metrics import as_ground_truth, sample_iou

GT_COLOUR = (255, 255, 255)  # white: ground truth the prediction missed
PRED_COLOUR = (0, 225, 255)  # cyan: predicted, not in the ground truth
OVERLAP_COLOUR = (255, 80, 200)  # pink: predicted and in the ground truth
IGNORE_COLOUR = (60, 60, 60)  # dark grey hatching: not scored
CASING_COLOUR = (0, 0, 0)
POINT_COLOUR = (0, 0, 0)  # the predicted click: a black cross cased in white
POINT_CASING = (255, 255, 255)

STYLES = ("fill", "outline")
MASK_MODES = ("thresholded", "heatmap")


def _plane(array: Any, height: int, width: int, what: str) -> np.ndarray:
    """A [H, W] numpy array from numpy/torch input with leading singleton axes (e.g. [1, 1, H, W])."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (height, width):
        raise ValueError(f"{what} has shape {array.shape}, the image is {height}x{width}: "
                         f"resize {what} to the image first")
    return array


def _prediction(logits: Any, threshold: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(bool prediction, soft prediction in [0, 1]): a bool mask as it is, numbers thresholded
    (``logits > threshold``) and squashed (``sigmoid(logits - threshold)``)."""
    plane = _plane(logits, height, width, "the prediction")
    if plane.dtype == bool:
        return plane, plane.astype(np.float32)
    if not np.issubdtype(plane.dtype, np.number):
        raise TypeError(f"the prediction must be a bool mask or numeric logits, got dtype {plane.dtype}")
    plane = plane.astype(np.float32)
    soft = 1.0 / (1.0 + np.exp(-np.clip(plane - threshold, -30.0, 30.0)))
    return plane > threshold, soft


def display_scale(height: int, width: int, max_px: int = 512) -> int:
    """The integer enlargement that brings the longer side closest to ``max_px`` without passing it
    (at least 1): 128 px -> 4, 256 px -> 2, 200 px -> 2."""
    if max_px < 1:
        raise ValueError(f"max_px must be positive, got {max_px}")
    return max(1, int(max_px) // max(int(height), int(width)))


def _enlarge(array: np.ndarray, scale: int) -> np.ndarray:
    return array if scale == 1 else np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def _shift_all(mask: np.ndarray, radius: int, axis: int, erode: bool) -> np.ndarray:
    """Erosion (all neighbours) or dilation (any neighbour) along one axis by ``radius`` pixels; outside
    the image counts as background for both."""
    out = mask.copy()
    n = mask.shape[axis]
    for step in range(1, min(radius, n - 1) + 1):
        ahead, behind = [slice(None)] * 2, [slice(None)] * 2
        ahead[axis], behind[axis] = slice(step, None), slice(None, -step)
        forward, backward = np.zeros_like(mask), np.zeros_like(mask)
        forward[tuple(behind)] = mask[tuple(ahead)]
        backward[tuple(ahead)] = mask[tuple(behind)]
        if erode:
            out &= forward & backward
        else:
            out |= forward | backward
    if erode and radius >= n:
        out[:] = False
    return out


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion with a (2r+1) square (separable); r = 0 returns a copy."""
    if radius <= 0:
        return mask.copy()
    return _shift_all(_shift_all(mask, radius, 0, True), radius, 1, True)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return _shift_all(_shift_all(mask, radius, 0, False), radius, 1, False)


def dim(rgb: np.ndarray) -> np.ndarray:
    """The picture pushed back for a fill overlay: 65% towards its own grey, then to ~60% brightness."""
    rgb = np.asarray(rgb, dtype=np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return 30.0 + 0.58 * (0.35 * rgb + 0.65 * grey[..., None])


def _paint(out: np.ndarray, mask: np.ndarray, colour: Sequence[int], alpha: float = 1.0) -> None:
    if mask.any():
        out[mask] = (1.0 - alpha) * out[mask] + alpha * np.asarray(colour, dtype=np.float32)


def _outlines(out: np.ndarray, regions: Sequence[tuple[np.ndarray, Sequence[int]]], scale: int) -> None:
    """Each region's inner boundary in its colour, cased in black; casings first so no core is cut."""
    width = max(1, round(0.75 * scale))
    casing = 1 if scale >= 2 else 0
    bands = [(region & ~_erode(region, width), colour) for region, colour in regions if region.any()]
    if casing:
        for band, _ in bands:
            _paint(out, _dilate(band, casing) & ~band, CASING_COLOUR)
    for band, colour in bands:
        _paint(out, band, colour)


def _hatch(shape: tuple[int, int], period: int = 8) -> np.ndarray:
    rows, cols = np.indices(shape)
    return ((rows + cols) % period) < period // 2


def _draw_point(out: np.ndarray, point: Sequence[float], scale: int) -> None:
    """A cross at the pixel the point lies in (``point`` is (x, y) = (column, row) in image pixels)."""
    height, width = out.shape[:2]
    x, y = float(point[0]), float(point[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        return
    cx, cy = int((x + 0.5) * scale), int((y + 0.5) * scale)
    if not (0 <= cx < width and 0 <= cy < height):  # a click off the picture is not drawn
        return
    arm, half = max(4, 3 * scale), max(1, scale // 2)
    cross = np.zeros((height, width), bool)
    cross[max(cy - half, 0):cy + half + 1, max(cx - arm, 0):cx + arm + 1] = True
    cross[max(cy - arm, 0):cy + arm + 1, max(cx - half, 0):cx + half + 1] = True
    _paint(out, _dilate(cross, max(1, scale // 2)) & ~cross, POINT_CASING)
    _paint(out, cross, POINT_COLOUR)


def render_sample(image: Any, gt_mask: Any = None, logits: Any = None, threshold: float = 0.0, alpha: float = 0.75,
                  show_gt: bool = True, show_pred: bool = True, show_ignore: bool = True, *,
                  style: str = "fill", heatmap: bool = False, point: Sequence[float] | None = None,
                  scale: int = 1) -> tuple[np.ndarray, float | None]:
    """The picture of one prediction against its ground truth, and LISA's IoU at ``threshold``.

    ``gt_mask`` is a ReasonSeg mask (1 target, 0 background, 255 ignore), ``logits`` mask logits (or a
    bool mask) at the image's size; either may be None. The prediction is ``logits > threshold``; its
    pixels are split into missed ground truth (white), prediction outside the ground truth (cyan) and
    overlap (pink), drawn as ``style`` "fill" (on the dimmed picture, ``alpha`` opaque) or "outline" (on
    the picture as it is). ``heatmap`` shows ``sigmoid(logits - threshold)`` instead, the ground truth
    outlined. The ignore region is hatched, ``point`` (x, y) drawn as a cross. ``scale`` enlarges the
    picture (nearest neighbour) before drawing, so lines stay sharp.

    Returns the uint8 [H*scale, W*scale, 3] picture and the IoU (None without both a prediction and a
    ground truth). The IoU does not depend on what is shown.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    scale = int(scale)
    base = np.asarray(ensure_rgb(image))
    height, width = base.shape[:2]
    gt = as_ground_truth(_plane(gt_mask, height, width, "the ground truth")) if gt_mask is not None else None
    pred, soft = _prediction(logits, threshold, height, width) if logits is not None else (None, None)
    iou = sample_iou(pred, gt) if gt is not None and pred is not None else None

    big = _enlarge(base, scale)
    shape = big.shape[:2]
    empty = np.zeros(shape, bool)
    target = _enlarge(gt == MASK_TARGET_VALUE, scale) if gt is not None and show_gt else empty
    predicted = _enlarge(pred, scale) if pred is not None and show_pred else empty
    if heatmap:
        out = dim(big)
        if pred is not None and show_pred:
            strength = 0.85 * _enlarge(soft, scale)[..., None]
            out = (1.0 - strength) * out + strength * np.asarray(PRED_COLOUR, dtype=np.float32)
        _outlines(out, [(target, GT_COLOUR)], scale)
    else:
        regions = [(target & ~predicted, GT_COLOUR), (predicted & ~target, PRED_COLOUR),
                   (target & predicted, OVERLAP_COLOUR)]
        if style == "fill":
            out = dim(big)
            for region, colour in regions:
                _paint(out, region, colour, alpha)
        else:
            out = big.astype(np.float32)
            _outlines(out, regions, scale)
    if gt is not None and show_ignore:
        _paint(out, _enlarge(gt == MASK_IGNORE_VALUE, scale) & _hatch(shape), IGNORE_COLOUR, 0.85)
    if point is not None:
        _draw_point(out, point, scale)
    return np.clip(out, 0, 255).round().astype(np.uint8), iou


def segment_query(segment_fn: Callable[[Any, str], Any], image: Any, query: str, alpha: float = 0.75, *,
                  threshold: float = 0.0, style: str = "fill", heatmap: bool = False, scale: int = 1) -> dict:
    """Run ``segment_fn(image, query)`` and draw its mask with :func:`render_sample`; an empty query runs
    nothing.

    ``segment_fn`` returns a bool mask or logits of the image's size (thresholded at ``threshold``, 0 is
    LISA's rule). Returns ``{"query", "logits", "mask", "rgb", "area"}`` (``mask`` and ``logits`` None and
    ``area`` 0 for an empty query).
    """
    query = query.strip()
    if not query:
        rgb, _ = render_sample(image, style=style, scale=scale)
        return {"query": "", "logits": None, "mask": None, "rgb": rgb, "area": 0}
    logits = segment_fn(image, query)
    height, width = np.asarray(ensure_rgb(image)).shape[:2]
    mask, _ = _prediction(logits, threshold, height, width)
    rgb, _ = render_sample(image, None, logits, threshold, alpha, style=style, heatmap=heatmap, scale=scale)
    return {"query": query, "logits": logits, "mask": mask, "rgb": rgb, "area": int(mask.sum())}


def png_bytes(rgb: np.ndarray, optimize: bool = False) -> bytes:
    """PNG bytes of a uint8 RGB array (``optimize``: smaller and slower, for pictures saved in notebooks)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()
