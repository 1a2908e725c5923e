"""Interactive mask browsing for the evaluation chapter: pure renderers plus thin ipywidgets builders.

The pixel work (:func:`render_sample`, :func:`segment_query`) is pure and returns arrays, so it is
tested without a notebook; :func:`mask_browser` and :func:`query_box` only wire sliders and toggles to
it (value widgets observed by a redraw that fills an ``Image`` widget), and ``result`` holds the last
rendering. Only widget APIs common to ipywidgets 7.7 (Colab) and 8 are used.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lisalib.constants import MASK_IGNORE_VALUE
from lisalib.images import ensure_rgb
from lisalib.reasonseg.metrics import as_ground_truth, sample_iou
from lisalib.notebook.viz import overlay_masks

GT_COLOUR = (0, 200, 80)
PRED_COLOUR = (255, 0, 200)
IGNORE_COLOUR = (120, 120, 120)


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


def _prediction(logits: Any, threshold: float, height: int, width: int) -> np.ndarray:
    """Bool prediction: a bool mask as it is, anything numeric thresholded (``logits > threshold``)."""
    plane = _plane(logits, height, width, "the prediction")
    if plane.dtype == bool:
        return plane
    if not np.issubdtype(plane.dtype, np.number):
        raise TypeError(f"the prediction must be a bool mask or numeric logits, got dtype {plane.dtype}")
    return plane > threshold


def render_sample(image: Any, gt_mask: Any = None, logits: Any = None, threshold: float = 0.0, alpha: float = 0.5,
                  show_gt: bool = True, show_pred: bool = True,
                  show_ignore: bool = True) -> tuple[np.ndarray, float | None]:
    """Overlay ground truth (green), prediction ``logits > threshold`` (magenta) and ignore (grey).

    Returns the uint8 [H, W, 3] picture and LISA's IoU of the thresholded prediction (``None`` without
    both a prediction and a ground truth). The IoU does not depend on which layers are shown.
    """
    base = np.asarray(ensure_rgb(image))
    height, width = base.shape[:2]
    gt = as_ground_truth(_plane(gt_mask, height, width, "the ground truth")) if gt_mask is not None else None
    pred = _prediction(logits, threshold, height, width) if logits is not None else None
    iou = sample_iou(pred, gt) if gt is not None and pred is not None else None
    layers, colours = [], []
    if gt is not None and show_ignore:
        layers.append(gt == MASK_IGNORE_VALUE)
        colours.append(IGNORE_COLOUR)
    if gt is not None and show_gt:
        layers.append(gt == 1)
        colours.append(GT_COLOUR)
    if pred is not None and show_pred:
        layers.append(pred)
        colours.append(PRED_COLOUR)
    if not layers:
        return base.copy(), iou
    return overlay_masks(base, np.stack(layers), alpha, colours), iou


def segment_query(segment_fn: Callable[[Any, str], Any], image: Any, query: str, alpha: float = 0.5) -> dict:
    """Run ``segment_fn(image, query)`` and overlay its mask; an empty query runs nothing.

    ``segment_fn`` returns a bool mask or logits (thresholded at 0, LISA's rule) of the image's size.
    Returns ``{"query", "mask", "rgb", "area"}`` (``mask`` None and ``area`` 0 for an empty query).
    """
    base = np.asarray(ensure_rgb(image))
    query = query.strip()
    if not query:
        return {"query": "", "mask": None, "rgb": base.copy(), "area": 0}
    mask = _prediction(segment_fn(image, query), 0.0, *base.shape[:2])
    rgb = overlay_masks(base, mask, alpha, [PRED_COLOUR])
    return {"query": query, "mask": mask, "rgb": rgb, "area": int(mask.sum())}


def _png(rgb: np.ndarray, zoom: int) -> bytes:
    """The picture enlarged ``zoom`` times (nearest neighbour keeps pixels sharp), as PNG bytes."""
    import io

    picture = Image.fromarray(rgb)
    buffer = io.BytesIO()
    picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def _viewer(controls: dict, render: Callable[..., tuple[np.ndarray, str, dict]], zoom: int):
    """Controls, an HTML caption and an Image widget in a VBox; ``render(**values)`` redraws on every change.

    Plain value widgets instead of ``ipywidgets.interactive``: no Output-widget capture, which headless
    executors (nbclient) occasionally lose track of, stalling the notebook until their timeout.
    The last rendering's result dict is kept in ``viewer.result``.
    """
    from ipywidgets import HTML as HtmlWidget
    from ipywidgets import Image as ImageWidget
    from ipywidgets import VBox

    caption, picture = HtmlWidget(), ImageWidget(format="png")
    viewer = VBox([*controls.values(), caption, picture])

    def refresh(*_) -> None:
        rgb, text, result = render(**{name: widget.value for name, widget in controls.items()})
        caption.value = text
        picture.value = _png(rgb, zoom)
        viewer.result = result

    for widget in controls.values():
        widget.observe(refresh, names="value")
    refresh()
    return viewer


def _sample_text(sample: dict) -> tuple[str, bool | None]:
    texts = sample.get("texts") or ([sample["text"]] if sample.get("text") else [])
    return (texts[0] if texts else ""), sample.get("is_sentence")


def mask_browser(samples: Sequence[dict], threshold: float = 0.0, alpha: float = 0.5,
                 threshold_range: tuple[float, float] = (-10.0, 10.0), zoom: int = 3):
    """Browse samples (dicts with ``image``, ``mask`` and optionally ``logits``, ``texts``, ``is_sentence``).

    Controls, in ``children`` order: sample index, logit threshold, overlay opacity, and toggles for
    ground truth, prediction and ignore region. The caption shows the query and the sample's IoU at the
    chosen threshold; ``widget.result`` holds ``{"index", "iou", "rgb"}`` of the current view.
    """
    from ipywidgets import Checkbox, FloatSlider, IntSlider

    samples = list(samples)
    if not samples:
        raise ValueError("mask_browser needs at least one sample")
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or "image" not in sample or "mask" not in sample:
            raise ValueError(f"sample {i} must be a dict with at least 'image' and 'mask'")
    low, high = threshold_range
    if not low <= threshold <= high:
        raise ValueError(f"threshold {threshold} lies outside threshold_range {threshold_range}")

    def show(index: int, threshold: float, alpha: float, show_gt: bool, show_pred: bool, show_ignore: bool):
        sample = samples[index]
        rgb, iou = render_sample(sample["image"], sample["mask"], sample.get("logits"), threshold, alpha,
                                 show_gt, show_pred, show_ignore)
        text, is_sentence = _sample_text(sample)
        kind = {True: "long", False: "short"}.get(is_sentence, "")
        score = "no prediction" if iou is None else f"IoU {iou:.3f} at logit &gt; {threshold:g}"
        caption = f"<b>{index}</b> {kind} <i>{html.escape(text)}</i> &mdash; {score}"
        return rgb, caption, {"index": index, "iou": iou, "rgb": rgb}

    return _viewer({
        "index": IntSlider(value=0, min=0, max=len(samples) - 1, description="sample"),
        "threshold": FloatSlider(value=threshold, min=low, max=high, step=0.1, description="logit >"),
        "alpha": FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="opacity"),
        "show_gt": Checkbox(value=True, description="ground truth"),
        "show_pred": Checkbox(value=True, description="prediction"),
        "show_ignore": Checkbox(value=True, description="ignore region"),
    }, show, zoom)


def query_box(segment_fn: Callable[[Any, str], Any], image: Any, value: str = "", alpha: float = 0.5, zoom: int = 3):
    """A text box to type your own query; on Enter, ``segment_fn(image, query)`` is run and its mask shown.

    Children: the query ``Text`` and the opacity slider; ``widget.result`` is :func:`segment_query`'s dict.
    """
    from ipywidgets import FloatSlider, Text

    ensure_rgb(image)  # fail now, not inside the callback

    def run(query: str, alpha: float):
        result = segment_query(segment_fn, image, query, alpha)
        caption = (f"<i>{html.escape(result['query'])}</i> &mdash; {result['area']} pixels" if result["query"]
                   else "type a query and press Enter")
        return result["rgb"], caption, result

    return _viewer({
        "query": Text(value=value, placeholder="which shape would roll down a hill?", description="query",
                      continuous_update=False),
        "alpha": FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="opacity"),
    }, run, zoom)
