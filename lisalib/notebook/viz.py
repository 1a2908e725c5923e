"""Pictures for the notebooks: scene galleries with polygons, mask overlays.

The pixel work (:func:`overlay_masks`) is a pure function returning an array, so widgets and tests use
it without a display; the ``show_*`` functions only arrange matplotlib axes around it.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from lisalib.images import ensure_rgb
from lisalib.world.scenes import Scene

OVERLAY_COLOURS = [(0, 200, 255), (255, 0, 200), (255, 220, 0), (0, 255, 120), (255, 120, 0), (160, 90, 255)]


def pca_rgb(features, side: int) -> np.ndarray:
    """[N, C] features -> [side, side, 3] image of their top-3 principal components, scaled to 0..1.

    Accepts features on any device, in any dtype, with or without autograd (chapter 2 on a GPU runtime).
    """
    import torch

    features = torch.as_tensor(features).detach().float().cpu()
    centred = features - features.mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = centred @ vh[:3].T
    comps = (comps - comps.min(dim=0).values) / (comps.max(dim=0).values - comps.min(dim=0).values + 1e-8)
    return comps.reshape(side, side, 3).numpy()


def overlay_masks(image: Image.Image | np.ndarray, masks: np.ndarray | Sequence[np.ndarray], alpha: float = 0.5,
                  colours: Sequence[tuple[int, int, int]] = OVERLAY_COLOURS) -> np.ndarray:
    """Blend boolean masks [N, H, W] (or one [H, W]) onto an RGB image; returns uint8 [H, W, 3]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = np.asarray(ensure_rgb(image), dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.shape[1:] != base.shape[:2]:
        raise ValueError(f"mask size {masks.shape[1:]} does not match image size {base.shape[:2]}")
    out = base.copy()
    for i, mask in enumerate(masks):
        colour = np.array(colours[i % len(colours)], dtype=np.float32)
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out.round().astype(np.uint8)


def draw_polygons(ax: plt.Axes, scene: Scene, labels: bool = True) -> None:
    """Outline every object's exact polygon on ``ax`` (with its index when ``labels``)."""
    for i, obj in enumerate(scene.objects):
        closed = np.vstack([obj.polygon, obj.polygon[:1]])
        ax.plot(closed[:, 0], closed[:, 1], "-", color="black", linewidth=1.2)
        if labels:
            ax.text(*obj.center, str(i), ha="center", va="center", fontsize=8, color="white",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0})


def show_gallery(scenes: Sequence[Scene], columns: int = 4, polygons: bool = True, titles: Sequence[str] | None = None,
                 size: float = 2.6) -> plt.Figure:
    """A grid of scenes, each with its polygons outlined and an optional title."""
    rows = max(1, int(np.ceil(len(scenes) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, scene in enumerate(scenes):
        ax = axes.flat[i]
        ax.imshow(scene.render())
        if polygons:
            draw_polygons(ax, scene)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8, wrap=True)
    fig.tight_layout()
    return fig


def show_overlay(image, masks, title: str = "", points: Sequence[tuple[float, float]] = (), alpha: float = 0.5,
                 ax: plt.Axes | None = None) -> plt.Axes:
    """One image with masks blended on top and prompt points marked as stars."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(overlay_masks(image, masks, alpha))
    for x, y in points:
        ax.plot(x, y, marker="*", color="white", markersize=13, markeredgecolor="black")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax


GT_OUTLINE = "white"
PRED_OUTLINE = "black"


def plot_prediction(ax: plt.Axes, image, gt_mask, pred_mask, point: Sequence[float] | None = None,
                    title: str = "", legend: bool = False) -> None:
    """The image with the ground truth outlined in white (solid) and the prediction in black (dashed), so
    neither hides the shapes' own colours; the point route's click as a black-and-white cross."""
    from matplotlib.lines import Line2D

    from lisalib.constants import MASK_TARGET_VALUE

    ax.imshow(np.asarray(image), interpolation="nearest")
    gt = np.asarray(gt_mask) == MASK_TARGET_VALUE
    pred = np.asarray(pred_mask).astype(bool)
    for mask, colour, style in ((gt, GT_OUTLINE, "solid"), (pred, PRED_OUTLINE, "dashed")):
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.6, linestyles=style)
    if point is not None:
        ax.plot(*point, marker="P", markersize=9, color="black", markeredgecolor="white")
    ax.set_title(title, fontsize=8, wrap=True)
    ax.axis("off")
    if legend:
        handles = [Line2D([], [], color=GT_OUTLINE, lw=2, label="ground truth"),
                   Line2D([], [], color=PRED_OUTLINE, lw=2, ls="--", label="prediction"),
                   Line2D([], [], color="black", marker="P", markeredgecolor="white", lw=0, label="predicted click")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.02), fontsize=8, ncol=3,
                  facecolor="dimgrey", labelcolor="white")
