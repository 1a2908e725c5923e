"""Words and the static picture: which samples in which order, captions, details, legends, preview.

:func:`select_samples` and :func:`filter_options` pick and sort sample records; :func:`caption_lines`,
:func:`details_html` and :func:`legend_html` say what is shown; :func:`preview_picture` draws the
picture with its caption and legend into one image for renderers without the live widget.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lisalib.notebook.widgets.render import GT_COLOUR, IGNORE_COLOUR, OVERLAP_COLOUR, POINT_COLOUR, PRED_COLOUR, _hatch

ORDERS = ("index", "IoU ascending", "IoU descending")
ALL = "all"
IOU_KEY = "iou_teacher_forced"

LEGEND = {
    "gt": ("ground truth, missed", GT_COLOUR),
    "pred": ("predicted, not true", PRED_COLOUR),
    "overlap": ("overlap (hit)", OVERLAP_COLOUR),
    "ignore": ("ignore (not scored)", IGNORE_COLOUR),
}
QUERY_KINDS = {True: "long query (a sentence needing reasoning)", False: "short referring phrase"}


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
