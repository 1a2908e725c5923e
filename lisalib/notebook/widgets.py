"""Interactive mask viewers for the evaluation chapter: pure renderers plus thin ipywidgets wiring.

Everything that decides what is seen is a pure function, tested without a notebook:
:func:`render_sample` (the picture, as an array), :func:`select_samples` (filters and sort order),
:func:`caption_lines`, :func:`details_html`, :func:`legend_html` and :func:`segment_query`.
:func:`mask_browser` and :func:`query_box` only wire widgets to them and keep the current view in
``viewer.result``. Only widget APIs common to ipywidgets 7.7 (Colab) and 8 are used.

Colours. The scenes' shapes are red, green, blue, yellow, purple and orange on a light, slightly tinted
grey: any saturated fill blended over them reads as a shape colour (magenta on a red or blue shape looks
like the shape itself). So the overlay never relies on a blend with the shapes:

* **fill** (the default) first *dims* the picture: 65% towards its own grey and darkened to about 60%
  brightness, so the shapes stay recognisable as shapes (and faintly by hue) but no longer compete. The
  three confusion regions are then painted 75% opaque (``alpha``) in colours the scenes never use: **white** for
  ground truth the prediction missed, **cyan** for predicted pixels outside the ground truth, and
  **pink** for their overlap (hits). On the dimmed picture all three stand out from every shape and from
  the background, and they are told apart by lightness as well as by hue.
* **outline** keeps the picture as it is (the shapes' true colours, for queries like "the red one") and
  draws the boundaries of the same three regions in the same colours (3 px wide at the usual 4x), each
  cased by a 1 px black line so that it shows on the light background and on any shape.
* **heatmap** shows the soft prediction ``sigmoid(logits - threshold)`` as cyan of rising strength on
  the dimmed picture (half strength exactly at the threshold), with the ground truth outlined in white.
* the **ignore** region (value 255, not scored) is hatched in dark grey; the predicted **click**, when
  the model made one, is a black cross with a white casing.

The picture is enlarged by an integer factor (nearest neighbour, in the PNG itself) to at most
``max_px`` (512) pixels and shown at exactly that size beside its controls, so that the controls and
the picture fit a 1280 x 800 screen together, JupyterLab's file browser open.

A viewer is an ``HBox`` (controls column | caption, picture, legend). Its rich display adds an
``image/png`` of the first view (picture, caption and legend in one image) next to the widget view, so
a renderer that cannot show the widget (GitHub's static view, nbconvert without saved widget state, a
front end without the widget manager) shows that picture instead of ``HBox(children=...``; JupyterLab
with the widget manager shows the live widget. (nbconvert with the widget state nbclient saves embeds
the widget itself, whose saved state holds the same picture.)
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
ORDERS = ("index", "IoU ascending", "IoU descending")
ALL = "all"
IOU_KEY = "iou_teacher_forced"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

LEGEND = {
    "gt": ("ground truth, missed", GT_COLOUR),
    "pred": ("predicted, not true", PRED_COLOUR),
    "overlap": ("overlap (hit)", OVERLAP_COLOUR),
    "ignore": ("ignore (not scored)", IGNORE_COLOUR),
}
QUERY_KINDS = {True: "long query (a sentence needing reasoning)", False: "short referring phrase"}


# ----- pixels -----------------------------------------------------------------------------------------
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


# ----- which samples, in which order ------------------------------------------------------------------
def _query_type(record: Mapping) -> str:
    return str(record.get("query_type") or "unknown")


def select_samples(records: Sequence[Mapping], order: str = "index", iou_range: tuple[float, float] = (0.0, 1.0),
                   query_type: str = ALL, n_shapes: int | str = ALL, iou_key: str = IOU_KEY) -> list[int]:
    """Positions of the records that pass the filters, in the chosen order.

    ``order`` is one of :data:`ORDERS` (by position, or by the recorded IoU ``iou_key``, ties by
    position); ``iou_range`` keeps records with ``low <= IoU <= high`` (records without an IoU only when
    the range is the full [0, 1]); ``query_type`` and ``n_shapes`` keep one value each ("all" keeps all).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    low, high = iou_range
    if low > high:
        raise ValueError(f"iou_range {iou_range} is empty")
    full = low <= 0.0 and high >= 1.0
    keep = []
    for position, record in enumerate(records):
        iou = record.get(iou_key)
        if iou is None or not math.isfinite(iou):
            if not full:
                continue
        elif not low - 1e-9 <= iou <= high + 1e-9:
            continue
        if query_type != ALL and _query_type(record) != query_type:
            continue
        if n_shapes != ALL and record.get("n_shapes") != n_shapes:
            continue
        keep.append(position)
    if order != "index":
        def key(position: int) -> tuple:
            iou = records[position].get(iou_key)
            missing = iou is None or not math.isfinite(iou)
            value = 0.0 if missing else (iou if order == "IoU ascending" else -iou)
            return missing, value, position
        keep.sort(key=key)
    return keep


def filter_options(records: Sequence[Mapping]) -> dict[str, list[tuple[str, Any]]]:
    """Dropdown options ``(label, value)`` for the query-type and shape-count filters, with counts."""
    types: dict[str, int] = {}
    shapes: dict[Any, int] = {}
    for record in records:
        types[_query_type(record)] = types.get(_query_type(record), 0) + 1
        if record.get("n_shapes") is not None:
            shapes[record["n_shapes"]] = shapes.get(record["n_shapes"], 0) + 1
    total = len(records)
    return {
        "query_type": [(f"all ({total})", ALL)] + [(f"{name} ({count})", name) for name, count in
                                                   sorted(types.items(), key=lambda item: (-item[1], item[0]))],
        "n_shapes": [(f"all ({total})", ALL)] + [(f"{n} shape{'s' * (n != 1)} ({count})", n)
                                                 for n, count in sorted(shapes.items())],
    }


# ----- words ------------------------------------------------------------------------------------------
def _texts(sample: Mapping) -> list[str]:
    texts = sample.get("texts") or ([sample["text"]] if sample.get("text") else [])
    return [str(text) for text in texts]


def _fmt_iou(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def caption_lines(sample: Mapping, record: Mapping | None, iou: float | None, threshold: float,
                  model: str | None = None) -> list[str]:
    """Four plain-text lines: sample, IoU at the threshold and model; the query; its kind (short referring
    phrase or long query); its type and the number of shapes in the scene."""
    record = record or {}
    index = record.get("index", sample.get("index"))
    head = f"sample #{index}" if index is not None else "sample"
    score = "no prediction" if iou is None else f"IoU {iou:.3f} at logit > {threshold:g}"
    first = " | ".join(part for part in (head, score, f"model {model}" if model else "") if part)
    texts = _texts(sample)
    query = record.get("query") or (texts[0] if texts else "")
    is_sentence = record.get("is_sentence", sample.get("is_sentence"))
    facts = [QUERY_KINDS.get(is_sentence, "")]
    if record.get("query_type"):
        facts.append(f"type {record['query_type']}")
    if record.get("n_shapes") is not None:
        n = record["n_shapes"]
        facts.append(f"{n} shape{'s' * (n != 1)} in the scene")
    kind = facts.pop(0)
    return [first, f"\u201c{query}\u201d", kind, ", ".join(facts)]


def caption_html(lines: Sequence[str]) -> str:
    escaped = [html.escape(line) for line in lines]
    parts = [f"<b>{escaped[0]}</b>"] + [f"<i>{escaped[1]}</i>"] * (len(escaped) > 1) + escaped[2:]
    return f"<div style='line-height:1.35'>{'<br>'.join(part for part in parts if part)}</div>"


def details_html(sample: Mapping, record: Mapping | None) -> str:
    """The generated answer (and whether it wrote ``<SEG>``), the predicted click and the other
    phrasings of the query, as a small HTML block."""
    record = record or {}
    rows = []
    if record.get("answer") is not None:
        seg = record.get("has_seg")
        wrote = "" if seg is None else (" &mdash; wrote &lt;SEG&gt;: <b>yes</b>" if seg else
                                         " &mdash; wrote &lt;SEG&gt;: <b>no</b> (empty mask)")
        score = (f", generated IoU {_fmt_iou(record['iou_generate'])}"
                 if record.get("iou_generate") is not None else "")
        rows.append(f"generated answer: <code>{html.escape(str(record['answer']))}</code>{wrote}{score}")
    if record.get("point") is not None:
        x, y = record["point"][:2]
        inside = record.get("point_inside")
        where = "" if inside is None else (", inside the target" if inside else ", outside the target")
        rows.append(f"predicted click: ({float(x):.0f}, {float(y):.0f}){where}")
    texts = _texts(sample)
    asked = record.get("query") or (texts[0] if texts else None)
    others = [text for text in texts if text != asked]
    if others:
        items = "".join(f"<li>{html.escape(text)}</li>" for text in others)
        rows.append(f"other phrasings:<ul style='margin:0 0 0 1.2em;padding:0'>{items}</ul>")
    if sample.get("path"):
        rows.append(f"<span style='color:#666'>{html.escape(str(sample['path']).replace(chr(92), '/').split('/')[-1])}"
                    "</span>")
    return "<div style='line-height:1.3;font-size:90%'>" + "<br>".join(rows) + "</div>"


def _swatch(colour: Sequence[int], style: str) -> str:
    rgb = f"rgb({colour[0]},{colour[1]},{colour[2]})"
    if style == "outline":
        fill = f"background:transparent;border:3px solid {rgb};outline:1px solid #000;width:10px;height:10px"
    elif style == "hatch":
        fill = (f"background:repeating-linear-gradient(45deg,{rgb} 0 3px,#ccc 3px 6px);"
                "border:1px solid #000;width:14px;height:14px")
    elif style == "gradient":
        fill = f"background:linear-gradient(90deg,#777,{rgb});border:1px solid #000;width:40px;height:14px"
    elif style == "cross":
        return ("<span style='display:inline-block;width:16px;text-align:center;font-weight:bold;color:#000;"
                "text-shadow:0 0 2px #fff'>+</span>")
    else:
        fill = f"background:{rgb};border:1px solid #000;width:14px;height:14px"
    return f"<span style='display:inline-block;vertical-align:middle;margin-right:4px;{fill}'></span>"


def legend_entries(style: str = "fill", heatmap: bool = False, ground_truth: bool = True,
                   point: bool = False) -> list[tuple[str, tuple[int, int, int], str]]:
    """(label, colour, swatch kind) of what the picture can show in this mode."""
    if heatmap:
        entries = [("prediction strength, sigmoid(logit - threshold)", PRED_COLOUR, "gradient")]
        if ground_truth:
            entries.append(("ground truth", GT_COLOUR, "outline"))
    else:
        kind = "outline" if style == "outline" else "box"
        if ground_truth:
            entries = [(LEGEND[key][0], LEGEND[key][1], kind) for key in ("gt", "pred", "overlap")]
        else:
            entries = [("prediction", PRED_COLOUR, kind)]
    if ground_truth:
        entries.append((LEGEND["ignore"][0], IGNORE_COLOUR, "hatch"))
    if point:
        entries.append(("predicted click", POINT_COLOUR, "cross"))
    return entries


def legend_html(style: str = "fill", heatmap: bool = False, ground_truth: bool = True, point: bool = False) -> str:
    items = [f"<span style='white-space:nowrap;margin-right:12px'>{_swatch(colour, kind)}{html.escape(label)}</span>"
             for label, colour, kind in legend_entries(style, heatmap, ground_truth, point)]
    return "<div style='line-height:1.8;font-size:90%'>" + " ".join(items) + "</div>"


# ----- the static preview (what a reader sees before running) -------------------------------------------
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])


def _swatch_patch(colour: Sequence[int], kind: str, size: int = 14) -> np.ndarray:
    """A legend swatch as pixels, like the HTML legend's: box, outline, hatch, gradient or cross."""
    patch = np.full((size, size, 3), 204, np.uint8)
    colour = np.asarray(colour, np.uint8)
    if kind == "box":
        patch[:] = colour
    elif kind == "outline":
        patch[1:-1, 1:-1] = colour
        patch[4:-4, 4:-4] = 255
    elif kind == "hatch":
        patch[_hatch((size, size), 6)] = colour
    elif kind == "gradient":
        ramp = np.linspace(0.0, 1.0, size)[None, :, None]
        patch[:] = ((1 - ramp) * 119 + ramp * colour).astype(np.uint8)
    elif kind == "cross":
        patch[:] = 255
        patch[size // 2 - 1:size // 2 + 2, 1:-1] = 0
        patch[1:-1, size // 2 - 1:size // 2 + 2] = 0
        return patch
    patch[[0, -1], :] = 0
    patch[:, [0, -1]] = 0
    return patch


def preview_picture(rgb: np.ndarray, lines: Sequence[str], entries: Sequence[tuple[str, Sequence[int], str]],
                    note: str = "static picture of the first view; run the notebook for the live viewer") -> np.ndarray:
    """The picture with its caption lines and legend drawn under it, as one uint8 RGB array."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    width = max(rgb.shape[1], 420)
    font, small = _font(14), _font(12)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_rows = [(row, font) for line in lines for row in _wrap(scratch, line, font, width - 16)]
    legend_rows, row, x = [], [], 8
    for label, colour, kind in entries:
        item = 22 + scratch.textlength(label, font=small) + 14
        if row and x + item > width:
            legend_rows.append(row)
            row, x = [], 8
        row.append((label, colour, kind))
        x += item
    legend_rows += [row] if row else []
    height = rgb.shape[0] + 8 + 20 * len(text_rows) + 22 * len(legend_rows) + 26
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = rgb.shape[0] + 6
    for text, face in text_rows:
        draw.text((8, y), text, fill=(0, 0, 0), font=face)
        y += 20
    for row in legend_rows:
        x = 8
        for label, colour, kind in row:
            canvas.paste(Image.fromarray(_swatch_patch(colour, kind)), (x, y + 3))
            draw.text((x + 20, y + 3), label, fill=(0, 0, 0), font=small)
            x += 22 + int(draw.textlength(label, font=small)) + 14
        y += 22
    draw.text((8, y + 4), note, fill=(110, 110, 110), font=small)
    return np.asarray(canvas)


# ----- widget wiring ------------------------------------------------------------------------------------
def _widgets():
    import ipywidgets

    return ipywidgets


def _viewer_class():
    """An ``HBox`` whose rich display adds a PNG of its first view (see the module docstring).

    ipywidgets 8 displays through ``_repr_mimebundle_``; 7.x through ``_ipython_display_``, which is
    overridden only where the base class has it.
    """
    widgets = _widgets()
    if "Viewer" in _CLASSES:
        return _CLASSES["Viewer"]

    class Viewer(widgets.HBox):
        result: dict
        controls: dict

        def _bundle(self) -> dict:
            plaintext = f"{self._describe} (a live widget: run the notebook to use it)"
            data = {"text/plain": plaintext}
            if self._view_name is not None:
                data[WIDGET_VIEW_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.model_id}
            picture = getattr(self, "_static", None)
            if picture is not None:
                data["image/png"] = base64.b64encode(png_bytes(picture, optimize=True)).decode("ascii")
            return data

        def _repr_mimebundle_(self, **kwargs):
            return self._bundle()

        def preview_png(self) -> bytes:
            """PNG bytes of the static picture of the first view: the picture, its caption and legend."""
            return png_bytes(self._static, optimize=True)

    if hasattr(widgets.HBox, "_ipython_display_"):  # ipywidgets 7.x
        def _ipython_display_(self, **kwargs):
            from IPython.display import display

            display(self._bundle(), raw=True)
            if self._view_name is not None:
                self._handle_displayed(**kwargs)

        Viewer._ipython_display_ = _ipython_display_
    _CLASSES["Viewer"] = Viewer
    return Viewer


_CLASSES: dict[str, type] = {}


def _layout(**kwargs):
    return _widgets().Layout(**kwargs)


def _row(width: str):
    """ToggleButtons are blocks in ipywidgets 8 (label above the buttons); a flex row puts them side by side."""
    return _layout(width=width, display="flex", align_items="center")


def _classed(widget, *names: str):
    for name in names:
        widget.add_class(name)
    return widget


def _view_controls(threshold: float, threshold_range: tuple[float, float], style: str, heatmap: bool,
                   width: str) -> dict:
    w = _widgets()
    label = {"description_width": "64px"}
    toggles = {"button_width": "100px", "description_width": "64px"}
    return {
        "mask": _classed(w.ToggleButtons(options=list(MASK_MODES), value="heatmap" if heatmap else "thresholded",
                                         description="mask", style=toggles, layout=_row(width),
                                         tooltips=["prediction = logit > threshold", "soft logits"]),
                         "lisalib-mask-mode"),
        "style": _classed(w.ToggleButtons(options=list(STYLES), value=style, description="draw", style=toggles,
                                          layout=_row(width),
                                          tooltips=["filled regions on a dimmed picture", "outlines on the picture"]),
                          "lisalib-draw"),
        "threshold": _classed(w.FloatSlider(value=threshold, min=threshold_range[0], max=threshold_range[1],
                                            step=0.25, description="logit >", style=label, continuous_update=True,
                                            readout_format=".2f", layout=_layout(width=width)),
                              "lisalib-threshold"),
    }


def _picture_column(height: int, width: int, scale: int):
    w = _widgets()
    px = f"{width * scale}px"
    caption = _classed(w.HTML(layout=_layout(width=px, min_height="84px")), "lisalib-caption")
    picture = _classed(w.Image(format="png", layout=_layout(width=px, height=f"{height * scale}px")),
                       "lisalib-picture")
    legend = _classed(w.HTML(layout=_layout(width=px)), "lisalib-legend")
    return caption, picture, legend, w.VBox([caption, picture, legend], layout=_layout(margin="0 0 0 12px"))


def _check_samples(samples: Sequence[Mapping]) -> tuple[list[Mapping], int, int]:
    if isinstance(samples, Mapping):
        raise TypeError("samples must be a list of dataset samples (dicts), not one dict")
    samples = list(samples)
    if not samples:
        raise ValueError("mask_browser needs at least one sample")
    size = None
    for i, sample in enumerate(samples):
        if not isinstance(sample, Mapping) or "image" not in sample or "mask" not in sample:
            raise ValueError(f"sample {i} must be a dict with at least 'image' and 'mask'")
        try:
            picture = ensure_rgb(sample["image"])
        except ValueError as error:
            raise ValueError(f"sample {i}: {error}") from error
        if size is None:
            size = (picture.height, picture.width)
        elif (picture.height, picture.width) != size:
            raise ValueError(f"sample {i}'s image is {picture.height}x{picture.width}, sample 0's is "
                             f"{size[0]}x{size[1]}: the browser shows one split of equal-sized images")
        _plane(sample["mask"], *size, f"sample {i}'s mask")
    return samples, size[0], size[1]


def _check_results(results: Any, samples: Sequence[Mapping], height: int, width: int) -> dict[str, list[dict]]:
    if results is None:  # predictions carried by the samples themselves (``logits`` key), scored here
        rows = []
        for i, sample in enumerate(samples):
            logits = sample.get("logits")
            if logits is not None:
                logits = _plane(logits, height, width, f"sample {i}'s logits")
            iou = None if logits is None else sample_iou(_prediction(logits, 0.0, height, width)[0], sample["mask"])
            rows.append({"index": i, "logits": logits, "is_sentence": sample.get("is_sentence"), IOU_KEY: iou})
        return {"prediction": rows}
    if isinstance(results, Mapping) and isinstance(results.get("samples"), list):
        results = {str(results.get("vision_source") or "model"): results}  # one evaluate() result
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {model_name: evaluate(...) result}")
    records = {}
    for name, result in results.items():
        if not isinstance(result, Mapping) or not isinstance(result.get("samples"), list):
            raise ValueError(f"results[{name!r}] must be an evaluate() result with a 'samples' list")
        rows = result["samples"]
        if len(rows) != len(samples):
            raise ValueError(f"results[{name!r}] has {len(rows)} sample records but {len(samples)} samples were "
                             f"given: pass the samples that were evaluated (max_samples={len(samples)})")
        if not any(row.get("logits") is not None for row in rows):
            raise ValueError(f"results[{name!r}] holds no mask logits: evaluate with keep_predictions=True")
        for i, row in enumerate(rows):
            if row.get("logits") is not None:
                _plane(row["logits"], height, width, f"results[{name!r}] sample {i}'s logits")
        records[str(name)] = rows
    return records


def mask_browser(samples: Sequence[Mapping], results: Mapping | None = None, threshold: float = 0.0, *,
                 model: str | None = None, style: str = "fill", heatmap: bool = False, alpha: float = 0.75,
                 threshold_range: tuple[float, float] = (-10.0, 10.0), max_px: int = 512, zoom: int | None = None,
                 controls_px: int = 300):
    """Browse every evaluated sample of a split, for each model, against its ground truth.

    ``samples``: dataset dicts (``image`` PIL RGB, ``mask`` uint8 HxW with 1 target, 0 background, 255
    ignore, ``texts``, ``is_sentence``, ``path``). ``results``: ``{model_name: evaluate(...,
    keep_predictions=True)}``, whose ``["samples"][i]`` is the record of ``samples[i]`` (``logits`` at image
    size, ``iou_teacher_forced``, ``query``, ``query_type``, ``n_shapes`` and optionally ``answer``,
    ``has_seg``, ``iou_generate``, ``point``, ``point_inside``). Without ``results`` the samples' own
    ``logits`` are shown.

    Controls (left column, CSS classes ``lisalib-*``): model; sample slider with previous/next buttons,
    walking the samples the filters keep in the chosen order (sort by recorded IoU, filter by IoU range,
    query type and number of shapes); mask (thresholded or heatmap), draw (fill or outline), logit
    threshold, layer toggles; the generated answer and the other phrasings. Right: caption (IoU at the
    threshold, query, its kind and type, number of shapes), the picture (enlarged to at most ``max_px``, or
    ``zoom`` times) and the legend. ``widget.result`` holds the current view: ``model``, ``position``,
    ``index``, ``iou``, ``threshold``, ``rgb``, ``caption``, ``order``.
    """
    w = _widgets()
    samples, height, width = _check_samples(samples)
    records = _check_results(results, samples, height, width)
    names = list(records)
    if model is None:
        model = names[0]
    if model not in records:
        raise ValueError(f"model {model!r} is not one of {names}")
    low, high = threshold_range
    if not low <= threshold <= high:
        raise ValueError(f"threshold {threshold} lies outside threshold_range {threshold_range}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    scale = int(zoom) if zoom else display_scale(height, width, max_px)
    full = f"{controls_px}px"
    label = {"description_width": "64px"}
    options = filter_options(records[model])

    controls = {
        "model": _classed(w.ToggleButtons(options=names, value=model, description="model",
                                          style={"button_width": f"{max(60, (controls_px - 80) // len(names) - 6)}px",
                                                 "description_width": "64px"},
                                          layout=_row(full)), "lisalib-model"),
        "position": _classed(w.IntSlider(value=0, min=0, max=max(len(samples) - 1, 0), description="sample",
                                         readout=False, style=label, continuous_update=True,
                                         layout=_layout(width=full)), "lisalib-sample"),
        "order": _classed(w.Dropdown(options=list(ORDERS), value="index", description="sort by", style=label,
                                     layout=_layout(width=full)), "lisalib-sort"),
        "iou_range": _classed(w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05, description="IoU",
                                                 readout_format=".2f", style=label, continuous_update=False,
                                                 layout=_layout(width=full)), "lisalib-iou-range"),
        "query_type": _classed(w.Dropdown(options=options["query_type"], value=ALL, description="type",
                                          style=label, layout=_layout(width=full)), "lisalib-query-type"),
        "n_shapes": _classed(w.Dropdown(options=options["n_shapes"], value=ALL, description="shapes", style=label,
                                        layout=_layout(width=full)), "lisalib-n-shapes"),
        **_view_controls(threshold, threshold_range, style, heatmap, full),
        "show_gt": w.Checkbox(value=True, description="ground truth", indent=False, layout=_layout(width="auto")),
        "show_pred": w.Checkbox(value=True, description="prediction", indent=False, layout=_layout(width="auto")),
        "show_ignore": w.Checkbox(value=True, description="ignore", indent=False, layout=_layout(width="auto")),
    }
    previous = _classed(w.Button(description="\u25c0 previous", layout=_layout(width="96px")), "lisalib-prev")
    following = _classed(w.Button(description="next \u25b6", layout=_layout(width="96px")), "lisalib-next")
    where = _classed(w.HTML(layout=_layout(width="auto", margin="0 0 0 6px")), "lisalib-where")
    details = _classed(w.HTML(layout=_layout(width=full)), "lisalib-details")
    heading = lambda text: w.HTML(f"<b style='color:#555'>{text}</b>", layout=_layout(margin="6px 0 0 0"))
    column = _classed(w.VBox([
        controls["model"],
        heading("which samples"),
        controls["order"], controls["iou_range"], controls["query_type"], controls["n_shapes"],
        controls["position"], w.HBox([previous, following, where]),
        heading("how to draw"),
        controls["mask"], controls["style"], controls["threshold"],
        w.HBox([controls["show_gt"], controls["show_pred"], controls["show_ignore"]]),
        details,
    ], layout=_layout(width=f"{controls_px + 10}px")), "lisalib-controls")
    caption, picture, legend, right = _picture_column(height, width, scale)
    viewer = _classed(_viewer_class()([column, right]), "lisalib-viewer", "lisalib-mask-browser")
    viewer.controls = {**controls, "previous": previous, "next": following}
    viewer.caption, viewer.picture, viewer.legend, viewer.details = caption, picture, legend, details
    viewer._describe = f"mask browser: {len(samples)} samples, models {', '.join(names)}"
    state = {"order": list(range(len(samples))), "busy": False}

    def values() -> dict:
        return {name: widget.value for name, widget in controls.items()}

    def reselect(*_) -> None:
        if state["busy"]:
            return
        v = values()
        current = state["order"][v["position"]] if state["order"] else None
        order = select_samples(records[v["model"]], v["order"], v["iou_range"], v["query_type"], v["n_shapes"])
        state["order"] = order
        state["busy"] = True
        try:
            position = order.index(current) if current in order else 0
            slider = controls["position"]
            slider.max = max(len(order) - 1, 0)
            slider.value = position
            slider.disabled = len(order) <= 1
        finally:
            state["busy"] = False
        redraw()

    def redraw(*_) -> None:
        if state["busy"]:
            return
        v = values()
        order, position = state["order"], v["position"]
        heat = v["mask"] == "heatmap"
        with_point = False
        if not order:
            rgb = np.full((height * scale, width * scale, 3), 235, np.uint8)
            lines = ["no sample passes the filters", "widen the IoU range or pick another type", ""]
            where.value = "0 samples"
            details.value = ""
            viewer.result = {"model": v["model"], "position": None, "index": None, "iou": None,
                             "threshold": v["threshold"], "rgb": rgb, "caption": lines, "order": []}
        else:
            index = order[position]
            sample, record = samples[index], records[v["model"]][index]
            logits = record.get("logits")
            point = record.get("point")
            with_point = point is not None and v["show_pred"]
            rgb, iou = render_sample(sample["image"], sample["mask"], logits, v["threshold"], alpha,
                                     v["show_gt"], v["show_pred"], v["show_ignore"], style=v["style"],
                                     heatmap=heat, point=point if with_point else None, scale=scale)
            lines = caption_lines(sample, record, iou, v["threshold"], v["model"])
            if logits is None:
                lines[0] += " (this model made no mask here)"
            where.value = f"#{record.get('index', index)} &middot; {position + 1} of {len(order)}"
            details.value = details_html(sample, record)
            viewer.result = {"model": v["model"], "position": position, "index": index, "iou": iou,
                             "threshold": v["threshold"], "rgb": rgb, "caption": lines, "order": list(order)}
        previous.disabled = position <= 0 or not order
        following.disabled = position >= len(order) - 1
        picture.value = png_bytes(rgb)  # first: a front end that shows the new caption has the picture too
        caption.value = caption_html(lines)
        legend.value = legend_html(v["style"], heat, True, with_point)
        if getattr(viewer, "_static", None) is None:
            viewer._static = preview_picture(rgb, lines, legend_entries(v["style"], heat, True, with_point))

    def step(delta: int) -> Callable:
        def move(_button) -> None:
            slider = controls["position"]
            slider.value = min(max(slider.value + delta, slider.min), slider.max)
        return move

    for name in ("model", "order", "iou_range", "query_type", "n_shapes"):
        controls[name].observe(reselect, names="value")
    for name in ("position", "mask", "style", "threshold", "show_gt", "show_pred", "show_ignore"):
        controls[name].observe(redraw, names="value")
    previous.on_click(step(-1))
    following.on_click(step(+1))
    viewer._static = None
    reselect()
    return viewer


def query_box(segment_fns: Mapping[str, Callable[[Any, str], Any]] | Callable[[Any, str], Any],
              images: Sequence[Any] | Any, value: str = "", *, threshold: float = 0.0, style: str = "fill",
              heatmap: bool = False, alpha: float = 0.75, threshold_range: tuple[float, float] = (-10.0, 10.0),
              max_px: int = 512, zoom: int | None = None, controls_px: int = 300,
              placeholder: str = "e.g. which shape would roll down a hill?"):
    """Type your own query about one of ``images``; on Enter (or *run*) the chosen model segments it.

    ``segment_fns``: ``{model_name: fn(image, query) -> mask logits HxW}`` (or one function); each fn
    wraps the query in its prompt itself. ``images``: PIL images (or one). Masks are drawn with
    :func:`render_sample` (fill/outline, thresholded/heatmap, threshold) and cached per model, image and
    query, so switching back and forth runs nothing twice. ``widget.result`` holds ``model``,
    ``image_index``, ``query``, ``logits``, ``mask``, ``area``, ``rgb`` (and ``error`` when the function
    raised, its message also shown in the caption).
    """
    w = _widgets()
    if callable(segment_fns) and not isinstance(segment_fns, Mapping):
        segment_fns = {"model": segment_fns}
    if not isinstance(segment_fns, Mapping) or not segment_fns:
        raise ValueError("segment_fns must be a non-empty dict {model_name: fn(image, query) -> logits}")
    for name, fn in segment_fns.items():
        if not callable(fn):
            raise TypeError(f"segment_fns[{name!r}] is not callable")
    if isinstance(images, (Image.Image, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("query_box needs at least one image")
    pictures = []
    for i, image in enumerate(images):
        try:
            pictures.append(ensure_rgb(image))
        except ValueError as error:
            raise ValueError(f"image {i}: {error}") from error
    height = max(p.height for p in pictures)
    width = max(p.width for p in pictures)
    scale = int(zoom) if zoom else display_scale(height, width, max_px)
    names = list(segment_fns)
    full = f"{controls_px}px"
    label = {"description_width": "64px"}
    controls = {
        "model": _classed(w.ToggleButtons(options=names, value=names[0], description="model",
                                          style={"button_width": f"{max(60, (controls_px - 80) // len(names) - 6)}px",
                                                 "description_width": "64px"},
                                          layout=_row(full)), "lisalib-model"),
        "image": _classed(w.Dropdown(options=[(f"image {i} ({p.width}x{p.height})", i) for i, p in enumerate(pictures)],
                                     value=0, description="image", style=label, layout=_layout(width=full)),
                          "lisalib-image-picker"),
        "query": _classed(w.Text(value=value, placeholder=placeholder, continuous_update=False,
                                 layout=_layout(width=full)), "lisalib-query"),
        **_view_controls(threshold, threshold_range, style, heatmap, full),
    }
    run = _classed(w.Button(description="run \u25b6", button_style="primary", layout=_layout(width="96px")),
                   "lisalib-run")
    hint = w.HTML("<span style='color:#555'>type a query, press Enter</span>",
                  layout=_layout(margin="0 0 0 8px"))
    caption, picture, legend, right = _picture_column(height, width, scale)
    column = _classed(w.VBox([
        controls["model"], controls["image"],
        w.HTML("<b style='color:#555'>your query</b>", layout=_layout(margin="6px 0 0 0")),
        controls["query"], w.HBox([run, hint]),
        w.HTML("<b style='color:#555'>how to draw</b>", layout=_layout(margin="6px 0 0 0")),
        controls["mask"], controls["style"], controls["threshold"],
    ], layout=_layout(width=f"{controls_px + 10}px")), "lisalib-controls")
    viewer = _classed(_viewer_class()([column, right]), "lisalib-viewer", "lisalib-query-box")
    viewer.controls = {**controls, "run": run}
    viewer.caption, viewer.picture, viewer.legend = caption, picture, legend
    viewer._describe = f"query box: {len(pictures)} images, models {', '.join(names)}"
    viewer._static = None
    cache: dict[tuple, Any] = {}
    viewer.calls = []

    def redraw(*_) -> None:
        v = {name: widget.value for name, widget in controls.items()}
        image = pictures[v["image"]]
        fn = segment_fns[v["model"]]

        def cached(img, query):
            key = (v["model"], v["image"], query)
            if key not in cache:
                viewer.calls.append(key)
                cache[key] = fn(img, query)
            return cache[key]

        heat = v["mask"] == "heatmap"
        error = None
        try:
            result = segment_query(cached, image, v["query"], alpha, threshold=v["threshold"], style=v["style"],
                                   heatmap=heat, scale=scale)
        except Exception as exc:  # shown to the reader instead of vanishing into the widget log
            error = f"{type(exc).__name__}: {exc}"
            result = segment_query(cached, image, "", alpha, style=v["style"], scale=scale)
        if error:
            lines = [f"image {v['image']} | model {v['model']}", f"\u201c{v['query'].strip()}\u201d",
                     f"the model raised {error}"]
        elif result["query"]:
            share = result["area"] / (image.width * image.height)
            share = f"{share:.1%}" if share >= 0.001 or not share else "< 0.1%"
            lines = [f"image {v['image']} | model {v['model']} | logit > {v['threshold']:g}",
                     f"\u201c{result['query']}\u201d", f"mask: {result['area']} pixels ({share} of the image)"]
        else:
            lines = [f"image {v['image']} | model {v['model']}", "type a query and press Enter", ""]
        # images of other sizes than the largest: pad so the picture keeps its place
        rgb = result["rgb"]
        if rgb.shape[:2] != (height * scale, width * scale):
            padded = np.full((height * scale, width * scale, 3), 255, np.uint8)
            padded[:rgb.shape[0], :rgb.shape[1]] = rgb
            rgb = padded
        picture.value = png_bytes(rgb)
        caption.value = caption_html(lines)
        legend.value = legend_html(v["style"], heat, ground_truth=False)
        viewer.result = {"model": v["model"], "image_index": v["image"], "query": result["query"],
                         "logits": result["logits"], "mask": result["mask"], "area": result["area"],
                         "threshold": v["threshold"], "rgb": rgb, "caption": lines, "error": error}
        if viewer._static is None:
            viewer._static = preview_picture(rgb, lines, legend_entries(v["style"], heat, ground_truth=False))

    for widget in controls.values():
        widget.observe(redraw, names="value")
    run.on_click(redraw)
    redraw()
    return viewer
