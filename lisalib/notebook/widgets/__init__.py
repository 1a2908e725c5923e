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
from lisalib.notebook.widgets.render import (
    CASING_COLOUR,
    GT_COLOUR,
    IGNORE_COLOUR,
    MASK_MODES,
    OVERLAP_COLOUR,
    POINT_CASING,
    POINT_COLOUR,
    PRED_COLOUR,
    STYLES,
    dim,
    display_scale,
    png_bytes,
    render_sample,
    segment_query,
)
from lisalib.notebook.widgets.text import (
    ALL,
    IOU_KEY,
    LEGEND,
    ORDERS,
    QUERY_KINDS,
    caption_html,
    caption_lines,
    details_html,
    filter_options,
    legend_entries,
    legend_html,
    preview_picture,
    select_samples,
)
from lisalib.notebook.widgets.viewers import (
    WIDGET_VIEW_MIME,
    mask_browser,
    query_box,
)

__all__ = [
    "ALL",
    "CASING_COLOUR",
    "GT_COLOUR",
    "IGNORE_COLOUR",
    "IOU_KEY",
    "LEGEND",
    "MASK_MODES",
    "ORDERS",
    "OVERLAP_COLOUR",
    "POINT_CASING",
    "POINT_COLOUR",
    "PRED_COLOUR",
    "QUERY_KINDS",
    "STYLES",
    "WIDGET_VIEW_MIME",
    "caption_html",
    "caption_lines",
    "details_html",
    "dim",
    "display_scale",
    "filter_options",
    "legend_entries",
    "legend_html",
    "mask_browser",
    "png_bytes",
    "preview_picture",
    "query_box",
    "render_sample",
    "segment_query",
    "select_samples",
]
