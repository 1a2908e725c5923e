"""gIoU and cIoU exactly as LISA computes them (``intersectionAndUnionGPU`` in ``utils/utils.py`` and
``validate`` in ``train_ds.py`` of https://github.com/dvlab-research/LISA).

Per mask, with V = ground truth != 255 (ignore pixels removed), P = prediction inside V, G = ground
truth == 1: I = |P & G|, U = |P| + |G| - I and IoU = I / (U + 1e-5), plus 1.0 when U = 0 (an empty
prediction on an empty target is perfect). **gIoU** is the mean of the per-mask IoUs, so each sample
counts equally; **cIoU** is sum(I) / (sum(U) + 1e-10), a pixel-weighted figure that large objects
dominate. The two disagree exactly when a model does differently on small and large targets, which is
why both are reported, and split by short phrases vs long sentences as in the ReasonSeg paper.

Precision and recall are pixel-cumulative in the same sense as cIoU: sum(I) / sum(|P|) and
sum(I) / sum(|G|), NaN when the denominator is 0. LISA computes on GPU in float32; this module uses
float64, so values can differ from LISA's logs in the 7th digit.

Every IoU in lisalib goes through this module: :func:`iou_from_counts` is the one formula (also on
NumPy arrays and torch tensors, e.g. tiny-sam's IoU-head targets), :func:`sample_iou` the one mask pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lisalib.constants import MASK_IGNORE_VALUE, MASK_TARGET_VALUE

IOU_EPS = 1e-5
CIOU_EPS = 1e-10
GROUPS = {False: "short", True: "long"}


def iou_from_counts(intersection: Any, union: Any) -> Any:
    """LISA's IoU from pixel counts, I / (U + 1e-5) + [U = 0]; elementwise on numbers, arrays or tensors."""
    return intersection / (union + IOU_EPS) + (union == 0)


@dataclass(frozen=True)
class MaskScore:
    """Pixel counts of one mask (ignore pixels already removed) and its LISA IoU."""

    intersection: int
    union: int
    predicted: int  # |P| outside the ignore region
    target: int  # |G|

    @property
    def iou(self) -> float:
        return float(iou_from_counts(self.intersection, self.union))


def _numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, possibly on a GPU
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def as_prediction(pred: Any) -> np.ndarray:
    """A bool mask from bool or 0/1 integers; floats are refused (threshold logits yourself: ``logits > 0``)."""
    pred = _numpy(pred)
    if pred.dtype == bool:
        return pred
    if np.issubdtype(pred.dtype, np.integer):
        if pred.size and not np.isin(pred, (0, 1)).all():
            raise ValueError(f"an integer prediction must hold only 0 and 1, found {np.unique(pred)[:8].tolist()}")
        return pred.astype(bool)
    raise TypeError(f"prediction must be a bool (or 0/1 integer) mask, got dtype {pred.dtype}; "
                    "for logits use `logits > 0` (LISA's rule)")


def as_ground_truth(gt: Any) -> np.ndarray:
    """A uint8 mask holding only 0, 1 and 255 (ignore)."""
    gt = _numpy(gt)
    if gt.dtype == bool:
        return gt.astype(np.uint8)
    if not np.issubdtype(gt.dtype, np.integer):
        raise TypeError(f"ground truth must be an integer mask with values 0, 1, 255; got dtype {gt.dtype}")
    if gt.size and not np.isin(gt, (0, MASK_TARGET_VALUE, MASK_IGNORE_VALUE)).all():
        raise ValueError(f"ground truth may hold only 0, 1 and 255, found {np.unique(gt)[:8].tolist()}")
    return gt.astype(np.uint8)


def score_mask(pred: Any, gt: Any) -> MaskScore:
    """Counts for one [H, W] mask pair, ignore pixels removed from both prediction and union."""
    pred, gt = as_prediction(pred), as_ground_truth(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}; "
                         "resize the logits to the image size before thresholding, as LISA does")
    valid = gt != MASK_IGNORE_VALUE
    predicted = pred & valid
    target = gt == MASK_TARGET_VALUE
    intersection = int((predicted & target).sum())
    n_pred, n_target = int(predicted.sum()), int(target.sum())
    return MaskScore(intersection, n_pred + n_target - intersection, n_pred, n_target)


def sample_iou(pred: Any, gt: Any) -> float:
    """LISA's IoU of one mask pair (1.0 when both are empty once ignore pixels are removed)."""
    return score_mask(pred, gt).iou


def mean_interval(values, z: float = 1.96, bounds: tuple[float, float] | None = (0.0, 1.0)
                  ) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its normal-approximation 95% interval, z * sd / sqrt(n), clipped to
    ``bounds`` (an IoU lies in [0, 1]; None: unclipped); NaN bounds for fewer than two values. gIoU is a
    mean of per-sample IoUs, so this is the interval of a gIoU."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = z * float(values.std(ddof=1)) / np.sqrt(len(values))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def summarise(scores: list[MaskScore]) -> dict:
    """gIoU (with its 95% interval), cIoU, precision, recall and n of a list of mask scores (NaN when empty)."""
    n = len(scores)
    if n == 0:
        return {"giou": float("nan"), "ciou": float("nan"), "precision": float("nan"), "recall": float("nan"), "n": 0,
                "giou_low": float("nan"), "giou_high": float("nan")}
    inter = sum(s.intersection for s in scores)
    union = sum(s.union for s in scores)
    predicted = sum(s.predicted for s in scores)
    target = sum(s.target for s in scores)
    return {
        "giou": sum(s.iou for s in scores) / n,
        "ciou": inter / (union + CIOU_EPS),
        "precision": inter / predicted if predicted else float("nan"),
        "recall": inter / target if target else float("nan"),
        "n": n,
        **dict(zip(("giou_low", "giou_high"), mean_interval([s.iou for s in scores])[1:])),
    }


class ReasonSegMetrics:
    """Accumulates masks over an evaluation; :meth:`compute` gives overall, short and long figures.

    ``update`` takes one [H, W] mask pair, or [N, H, W] stacks of several masks of one sample (each mask
    counts once in gIoU, as in LISA).
    """

    def __init__(self) -> None:
        self.scores: list[tuple[MaskScore, bool]] = []

    def reset(self) -> None:
        self.scores.clear()

    def __len__(self) -> int:
        return len(self.scores)

    def update(self, pred: Any, gt: Any, is_sentence: bool = False) -> list[MaskScore]:
        """Score and keep a prediction; returns the new scores (e.g. to show a per-sample IoU)."""
        pred, gt = as_prediction(pred), as_ground_truth(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
        if pred.ndim not in (2, 3):
            raise ValueError(f"masks must be [H, W] or [N, H, W], got shape {pred.shape}")
        pairs = zip(pred, gt) if pred.ndim == 3 else [(pred, gt)]
        new = [score_mask(p, g) for p, g in pairs]
        self.scores.extend((s, bool(is_sentence)) for s in new)
        return new

    def compute(self) -> dict:
        """``{"giou", "ciou", "precision", "recall", "n", "short": {...}, "long": {...}}``."""
        result = summarise([s for s, _ in self.scores])
        for flag, name in GROUPS.items():
            result[name] = summarise([s for s, long in self.scores if long == flag])
        return result
