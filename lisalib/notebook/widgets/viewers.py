"""The ipywidgets wiring: :func:`mask_browser` and :func:`query_box`, their layout and their viewer class.

Everything they show comes from the pure functions in :mod:`~lisalib.notebook.widgets.render` and
:mod:`~lisalib.notebook.widgets.text`; here the controls are built, checked inputs are wired to those
functions, and the current view is kept in ``viewer.result``.
"""
from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lisalib.images import ensure_rgb
from lisalib.notebook.widgets.render import (MASK_MODES, STYLES, _plane, _prediction, display_scale, png_bytes,
                                             render_sample, segment_query)
from lisalib.notebook.widgets.text import (ALL, IOU_KEY, ORDERS, caption_html, caption_lines, details_html,
                                           filter_options, legend_entries, legend_html, preview_picture,
                                           select_samples)
from lisalib.reasonseg.metrics import sample_iou

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def _widgets():
    import ipywidgets

    return ipywidgets


def _viewer_class():
    """An ``HBox`` whose rich display adds a PNG of its first view (see the package docstring).

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
