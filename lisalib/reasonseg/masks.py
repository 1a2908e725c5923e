"""A one-click prompt from a mask: the point SAM is given when "a click at the target's centre" is meant.

One definition for every caller (tiny-sam's evaluation, the notebooks, the mask-path ceiling), so a
figure "from a centre point" means the same click everywhere. The pixel mean is not used: it falls
outside C-shaped, ring-shaped or multi-part targets.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from lisalib.constants import MASK_TARGET_VALUE


def centre_point(mask: Any) -> tuple[float, float]:
    """(x, y) of the target pixel farthest from every non-target pixel: a "centre" that is always inside.

    ``mask`` is a bool [H, W] mask or a ReasonSeg mask (only value 1 is target; 255 ignore and 0 count
    as background); pixels outside the image count as background too, so the click keeps away from a
    border that cuts the target. Distances are exact Euclidean (``cv2.distanceTransform``, precise
    mask). Ties: the tied pixel nearest to the tied pixels' mean, then the first in row-major order.
    The result is the pixel's (column, row) index as floats, the convention the callers give SAM
    (transformers' prompt encoder adds 0.5 itself to reach the pixel centre).
    """
    target = np.asarray(mask) == MASK_TARGET_VALUE
    if target.ndim != 2:
        raise ValueError(f"centre_point needs one [H, W] mask, got shape {target.shape}")
    if not target.any():
        raise ValueError("the mask has no target pixels: there is no centre to click on")
    padded = np.pad(target, 1).astype(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    squared = np.rint(distance.astype(np.float64) ** 2).astype(np.int64)  # exact integers: exact ties
    ys, xs = np.nonzero(squared == squared.max())  # row-major order
    n = len(xs)
    spread = (n * ys - ys.sum()) ** 2 + (n * xs - xs.sum()) ** 2  # n^2 x squared distance to their mean
    k = int(np.argmin(spread))  # first minimum: row-major tie-break
    return float(xs[k]), float(ys[k])
