"""The mask viewers: pure renderers, sample selection, captions, and the widgets driven headless."""
import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lisalib.images import ImageInputError
from lisalib.reasonseg.metrics import sample_iou
from lisalib.world.scenes import generate_scene
from lisalib.notebook.widgets import (
    GT_COLOUR,
    IGNORE_COLOUR,
    OVERLAP_COLOUR,
    POINT_COLOUR,
    PRED_COLOUR,
    QUERY_KINDS,
    caption_lines,
    details_html,
    dim,
    display_scale,
    filter_options,
    legend_html,
    mask_browser,
    query_box,
    render_sample,
    segment_query,
    select_samples,
)

GREY = (100, 100, 100)
SHAPE_COLOURS = [(215, 38, 38), (34, 160, 60), (35, 85, 220), (240, 200, 30), (135, 55, 175), (245, 125, 20)]


def tiny_case():
    """3 x 2: (0,0) hit, (0,1) ignore (predicted), (0,2) missed target, (1,1) false positive, rest background."""
    image = Image.new("RGB", (3, 2), GREY)
    gt = np.array([[1, 255, 1], [0, 0, 0]], np.uint8)
    logits = np.array([[2.0, 1.0, -1.0], [-1.0, 0.5, -3.0]], np.float32)
    return image, gt, logits


def dimmed(colour):
    return tuple(int(v) for v in np.clip(dim(np.array([[colour]], np.float32)), 0, 255).round().astype(np.uint8)[0, 0])


# ----- render_sample -----------------------------------------------------------------------------------
def test_fill_gives_overlap_its_own_colour_and_keeps_the_iou():
    image, gt, logits = tiny_case()
    rgb, iou = render_sample(image, gt, logits, threshold=0.0, alpha=1.0, show_ignore=False)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert tuple(rgb[0, 0]) == OVERLAP_COLOUR  # predicted and true
    assert tuple(rgb[0, 2]) == GT_COLOUR  # true, missed
    assert tuple(rgb[1, 1]) == PRED_COLOUR  # predicted, not true
    assert tuple(rgb[1, 0]) == dimmed(GREY)  # background: the dimmed picture
    # prediction {(0,0), (1,1)} once the ignore pixel is removed; target {(0,0), (0,2)}: I 1, U 3
    assert iou == pytest.approx(1 / 3, abs=1e-5) == sample_iou(logits > 0, gt)
    _, strict = render_sample(image, gt, logits, threshold=1.5)  # only (0, 0) left
    assert strict == pytest.approx(0.5, abs=1e-5)
    assert render_sample(image, gt, None)[1] is None and render_sample(image, None, logits)[1] is None


def test_overlay_colours_are_none_of_the_shapes_colours():
    palette = np.array(SHAPE_COLOURS, float)
    for colour in (GT_COLOUR, PRED_COLOUR, OVERLAP_COLOUR):
        assert np.linalg.norm(palette - np.array(colour, float), axis=1).min() > 100
    assert min(np.linalg.norm(np.subtract(a, b)) for a in (GT_COLOUR, PRED_COLOUR, OVERLAP_COLOUR)
               for b in (GT_COLOUR, PRED_COLOUR, OVERLAP_COLOUR) if a != b) > 150


def test_layers_can_be_hidden_without_changing_the_score():
    image, gt, logits = tiny_case()
    _, iou = render_sample(image, gt, logits)
    rgb, same = render_sample(image, gt, logits, alpha=1.0, show_pred=False, show_ignore=False)
    assert same == iou
    assert tuple(rgb[0, 0]) == GT_COLOUR and tuple(rgb[1, 1]) == dimmed(GREY)  # no prediction: all of gt "missed"
    rgb, _ = render_sample(image, gt, logits, alpha=1.0, show_gt=False, show_ignore=False)
    assert tuple(rgb[0, 0]) == PRED_COLOUR and tuple(rgb[0, 2]) == dimmed(GREY)
    rgb, _ = render_sample(image, gt, logits, style="outline", show_pred=False, show_gt=False, show_ignore=False)
    assert np.array_equal(rgb, np.asarray(image))  # outline mode keeps the picture as it is


def test_ignore_region_is_hatched():
    image = Image.new("RGB", (16, 16), GREY)
    gt = np.full((16, 16), 255, np.uint8)
    rgb, iou = render_sample(image, gt, np.zeros((16, 16), np.float32) - 5)
    assert iou == 1.0  # nothing left to score: both empty
    hatched = (np.abs(rgb.astype(int) - IGNORE_COLOUR).sum(-1) < 40)
    assert 0.3 < hatched.mean() < 0.7  # stripes, not a solid block
    plain, _ = render_sample(image, gt, None, show_ignore=False)
    assert not (np.abs(plain.astype(int) - IGNORE_COLOUR).sum(-1) < 40).any()


def square_case(size=32, scale=4):
    image = Image.fromarray(np.full((size, size, 3), SHAPE_COLOURS[0], np.uint8))
    gt = np.zeros((size, size), np.uint8)
    gt[8:24, 8:24] = 1
    logits = np.full((size, size), -4.0, np.float32)
    logits[12:28, 12:28] = 4.0
    return image, gt, logits, scale


def test_outline_differs_from_fill_and_keeps_the_shapes_colours_inside():
    image, gt, logits, scale = square_case()
    fill, iou_fill = render_sample(image, gt, logits, style="fill", scale=scale)
    outline, iou_outline = render_sample(image, gt, logits, style="outline", scale=scale)
    assert fill.shape == outline.shape == (32 * scale, 32 * scale, 3)
    assert iou_fill == iou_outline
    changed = (fill != outline).any(-1).mean()
    assert changed > 0.5  # fill dims everything, outline keeps the picture
    red = np.array(SHAPE_COLOURS[0])
    inside = (18 * scale, 18 * scale)  # deep inside the overlap
    assert tuple(outline[inside]) == tuple(red)  # outline: the shape's own colour inside
    assert tuple(fill[inside]) != tuple(red)
    # the overlap's boundary is drawn in its colour, the missed part's in white, the false positive's in cyan
    assert tuple(outline[20 * scale, 23 * scale + scale - 1]) == OVERLAP_COLOUR
    assert tuple(outline[8 * scale, 10 * scale]) == GT_COLOUR
    assert tuple(outline[28 * scale - 1, 20 * scale]) == PRED_COLOUR
    # each line is cased in black just outside
    assert tuple(outline[8 * scale - 1, 10 * scale]) == (0, 0, 0)
    # most of the picture is untouched in outline mode
    assert (outline == np.repeat(np.repeat(np.asarray(image), scale, 0), scale, 1)).all(-1).mean() > 0.8


def test_heatmap_shows_soft_logits_relative_to_the_threshold():
    image = Image.new("RGB", (4, 1), GREY)
    logits = np.array([[-6.0, -1.0, 1.0, 6.0]], np.float32)
    rgb, _ = render_sample(image, None, logits, heatmap=True)
    distance = np.linalg.norm(rgb.astype(float) - PRED_COLOUR, axis=-1)[0]
    assert (np.diff(distance) < 0).all()  # higher logit, closer to the prediction colour
    shifted, _ = render_sample(image, None, logits, threshold=2.0, heatmap=True)
    assert not np.array_equal(shifted, rgb)
    assert np.linalg.norm(shifted[0, 2].astype(float) - PRED_COLOUR) > distance[2]  # now below the threshold


def test_point_marker_and_scale():
    image, gt, logits, scale = square_case()
    rgb, _ = render_sample(image, gt, logits, point=(5.0, 6.0), scale=scale)
    centre = (int(6.5 * scale), int(5.5 * scale))
    assert tuple(rgb[centre]) == POINT_COLOUR
    without, _ = render_sample(image, gt, logits, scale=scale)
    assert tuple(without[centre]) != POINT_COLOUR
    off, _ = render_sample(image, gt, logits, point=(-40.0, 6.0), scale=scale)  # off the picture: not drawn
    assert np.array_equal(off, without)
    assert display_scale(128, 128) == 4 and display_scale(256, 200) == 2 and display_scale(600, 600) == 1
    assert display_scale(128, 128, max_px=400) == 3


def test_render_sample_accepts_tensors_and_bool_predictions():
    image, gt, logits = tiny_case()
    _, iou = render_sample(image, torch.as_tensor(gt), torch.as_tensor(logits)[None, None])
    assert iou == pytest.approx(1 / 3, abs=1e-5)
    _, iou = render_sample(image, gt, logits > 1.5)
    assert iou == pytest.approx(0.5, abs=1e-5)
    _, iou = render_sample(image, gt, logits.astype(np.float16))
    assert iou == pytest.approx(1 / 3, abs=1e-5)


def test_render_sample_rejects_bad_input():
    image, gt, logits = tiny_case()
    with pytest.raises(ValueError, match="the prediction has shape"):
        render_sample(image, gt, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="the ground truth has shape"):
        render_sample(image, np.zeros((3, 2), np.uint8), logits)
    with pytest.raises(ValueError, match="alpha"):
        render_sample(image, gt, logits, alpha=1.5)
    with pytest.raises(ValueError, match="style"):
        render_sample(image, gt, logits, style="dots")
    with pytest.raises(ValueError, match="scale"):
        render_sample(image, gt, logits, scale=0)
    with pytest.raises(ImageInputError, match="mode 'I;16'"):
        render_sample(Image.new("I;16", (3, 2)), gt, logits)
    with pytest.raises(ValueError, match="0, 1 and 255"):
        render_sample(image, np.full((2, 3), 7, np.uint8), logits)


# ----- selection and words -------------------------------------------------------------------------------
RECORDS = [
    {"index": 0, "iou_teacher_forced": 0.5, "query_type": "referring", "n_shapes": 2},
    {"index": 1, "iou_teacher_forced": 0.1, "query_type": "roll", "n_shapes": 3},
    {"index": 2, "iou_teacher_forced": 0.9, "query_type": "referring", "n_shapes": 3},
    {"index": 3, "iou_teacher_forced": 0.1, "query_type": "closest", "n_shapes": 5},
    {"index": 4, "iou_teacher_forced": None, "query_type": None, "n_shapes": 2},
]


def test_select_samples_sorts_and_filters():
    assert select_samples(RECORDS) == [0, 1, 2, 3, 4]
    assert select_samples(RECORDS, "IoU ascending") == [1, 3, 0, 2, 4]  # ties by position, no IoU last
    assert select_samples(RECORDS, "IoU descending") == [2, 0, 1, 3, 4]
    assert select_samples(RECORDS, iou_range=(0.2, 1.0)) == [0, 2]  # a real range drops records without IoU
    assert select_samples(RECORDS, iou_range=(0.1, 0.1)) == [1, 3]  # bounds included
    assert select_samples(RECORDS, query_type="referring") == [0, 2]
    assert select_samples(RECORDS, query_type="unknown") == [4]
    assert select_samples(RECORDS, n_shapes=3, order="IoU descending") == [2, 1]
    assert select_samples(RECORDS, query_type="roll", n_shapes=2) == []
    with pytest.raises(ValueError, match="order"):
        select_samples(RECORDS, "by colour")
    with pytest.raises(ValueError, match="empty"):
        select_samples(RECORDS, iou_range=(0.8, 0.2))


def test_filter_options_count_each_value():
    options = filter_options(RECORDS)
    assert options["query_type"][0] == ("all (5)", "all")
    assert ("referring (2)", "referring") == options["query_type"][1]  # most frequent first
    assert ("unknown (1)", "unknown") in options["query_type"]
    assert [value for _, value in options["n_shapes"]] == ["all", 2, 3, 5]
    assert options["n_shapes"][1] == ("2 shapes (2)", 2)


def test_caption_explains_the_query_kind_and_details_show_the_answer():
    sample = {"texts": ["which shape would roll down a hill?", "what could roll away?"], "is_sentence": True,
              "path": "data/val/val_00007.png"}
    record = {"index": 7, "query": "which shape would roll down a hill?", "is_sentence": True,
              "query_type": "roll", "n_shapes": 4, "answer": "Sure, it is [SEG].", "has_seg": False,
              "iou_generate": 0.0, "point": [12.0, 30.5], "point_inside": True}
    lines = caption_lines(sample, record, 0.25, 0.5, "vlm")
    assert lines[0] == "sample #7 | IoU 0.250 at logit > 0.5 | model vlm"
    assert "roll down a hill" in lines[1]
    assert lines[2] == QUERY_KINDS[True] and lines[3] == "type roll, 4 shapes in the scene"
    assert "sentence needing reasoning" in QUERY_KINDS[True] and "referring phrase" in QUERY_KINDS[False]
    text = details_html(sample, record)
    assert "Sure, it is [SEG]." in text and "&lt;SEG&gt;: <b>no</b>" in text and "generated IoU 0.000" in text
    assert "what could roll away?" in text and text.count("roll down a hill") == 0  # only the *other* phrasings
    assert "predicted click: (12, 30), inside the target" in text and "val_00007.png" in text
    assert "no prediction" in caption_lines(sample, None, None, 0.0)[0]


def test_legend_lists_what_the_mode_shows():
    fill = legend_html("fill")
    for label in ("ground truth, missed", "predicted, not true", "overlap (hit)", "ignore (not scored)"):
        assert label in fill
    assert "rgb(255,80,200)" in fill and "solid rgb" not in fill
    assert "solid rgb(255,80,200)" in legend_html("outline")
    heat = legend_html("fill", heatmap=True)
    assert "sigmoid" in heat and "overlap" not in heat
    assert "predicted click" in legend_html(point=True) and "predicted click" not in fill
    assert "ground truth" not in legend_html(ground_truth=False)


# ----- mask_browser -------------------------------------------------------------------------------------
def scene_samples(n=6):
    samples, vlm, dual = [], [], []
    kinds = ["referring", "roll", "closest"]
    for i in range(n):
        scene = generate_scene((9, i))
        target = scene.visible_masks()[0]
        logits = np.where(target, 3.0, -3.0).astype(np.float32)
        logits[: 4 * (i + 1)] = 1.0  # a band of weak false positives, wider per sample
        samples.append({"image": scene.render(), "mask": target.astype(np.uint8),
                        "texts": scene.referring_expressions(0), "is_sentence": i % 2 == 1, "path": f"val_{i:05d}.png"})
        base = {"index": i, "query": samples[-1]["texts"][0], "is_sentence": i % 2 == 1,
                "query_type": kinds[i % 3], "n_shapes": len(scene.objects)}
        vlm.append({**base, "logits": logits.astype(np.float16),
                    "iou_teacher_forced": sample_iou(logits > 0, target), "answer": "sure, <SEG>.", "has_seg": True})
        empty = np.full(target.shape, -5.0, np.float16)
        dual.append({**base, "logits": np.where(target, 5.0, -5.0).astype(np.float16) if i % 2 else empty,
                     "iou_teacher_forced": 1.0 if i % 2 else 0.0, "point": [10.0, 20.0], "point_inside": False})
    return samples, {"vlm": {"samples": vlm}, "dual": {"samples": dual}}


def test_mask_browser_walks_every_sample_and_matches_the_pure_renderer():
    samples, results = scene_samples()
    widget = mask_browser(samples, results)
    c = widget.controls
    assert widget.result["index"] == 0 and widget.result["model"] == "vlm"
    seen = [widget.result["index"]]
    for _ in range(len(samples) + 2):  # next clamps at the end
        c["next"].click()
        seen.append(widget.result["index"])
    assert seen[: len(samples)] == list(range(len(samples))) and seen[-1] == len(samples) - 1
    assert c["next"].disabled and not c["previous"].disabled
    c["position"].value = 2
    expected = sample_iou(results["vlm"]["samples"][2]["logits"] > 0, samples[2]["mask"])
    assert widget.result["index"] == 2 and widget.result["iou"] == pytest.approx(expected)
    c["threshold"].value = 2.0  # above the weak band: the prediction becomes the target exactly
    assert widget.result["iou"] == pytest.approx(1.0, abs=1e-5)
    rgb, _ = render_sample(samples[2]["image"], samples[2]["mask"], results["vlm"]["samples"][2]["logits"], 2.0,
                           scale=display_scale(*samples[2]["mask"].shape))
    assert np.array_equal(widget.result["rgb"], rgb)
    assert widget.result["rgb"].shape == (512, 512, 3)  # 128 px scenes at 4x
    picture = Image.open(io.BytesIO(widget.picture.value))
    assert picture.size == (512, 512) and widget.picture.layout.width == "512px"
    fill = widget.result["rgb"]
    c["style"].value = "outline"
    assert not np.array_equal(widget.result["rgb"], fill)
    c["mask"].value = "heatmap"
    assert "sigmoid" in widget.legend.value  # the legend follows the mode
    c["show_gt"].value = c["show_pred"].value = c["show_ignore"].value = False
    assert widget.result["iou"] == pytest.approx(1.0, abs=1e-5)  # hiding layers does not change the score


def test_mask_browser_filters_sort_and_switch_models():
    samples, results = scene_samples()
    widget = mask_browser(samples, results)
    c = widget.controls
    c["position"].value = 4
    c["query_type"].value = "roll"  # samples 1 and 4
    assert widget.result["order"] == [1, 4] and widget.result["index"] == 4  # the current sample stays
    assert c["position"].max == 1
    c["query_type"].value = "all"
    c["order"].value = "IoU ascending"
    ious = [results["vlm"]["samples"][i]["iou_teacher_forced"] for i in widget.result["order"]]
    assert ious == sorted(ious) and sorted(widget.result["order"]) == list(range(6))
    c["model"].value = "dual"
    assert widget.result["model"] == "dual"
    assert [results["dual"]["samples"][i]["iou_teacher_forced"] for i in widget.result["order"][:3]] == [0.0] * 3
    c["iou_range"].value = (0.5, 1.0)
    assert widget.result["order"] == [1, 3, 5]
    c["position"].value = 1
    assert widget.result["index"] == 3 and widget.result["iou"] == pytest.approx(1.0, abs=1e-5)
    assert "predicted click" in widget.legend.value  # dual records carry a point
    assert "predicted click: (10, 20), outside the target" in widget.details.value
    n_shapes = results["dual"]["samples"][3]["n_shapes"]
    c["n_shapes"].value = n_shapes
    assert all(results["dual"]["samples"][i]["n_shapes"] == n_shapes for i in widget.result["order"])
    c["iou_range"].value = (0.0, 0.05)
    c["query_type"].value = "roll"  # roll samples have dual IoU 1.0: nothing passes
    assert widget.result["index"] is None and widget.result["order"] == []
    assert "no sample passes" in widget.caption.value
    assert c["position"].disabled and c["next"].disabled


def test_mask_browser_caption_and_static_picture():
    samples, results = scene_samples()
    widget = mask_browser(samples, results)
    caption = widget.caption.value
    assert "IoU" in caption and "short referring phrase" in caption and "shapes in the scene" in caption
    bundle = widget._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert "children" not in bundle["text/plain"] and "6 samples" in bundle["text/plain"]
    static = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    assert static.width == 512 and static.height > 512  # the picture, then caption and legend under it
    assert np.array_equal(np.asarray(static.convert("RGB"))[:512, :512], widget.result["rgb"])
    widget.controls["next"].click()
    again = Image.open(io.BytesIO(base64.b64decode(widget._repr_mimebundle_()["image/png"])))
    assert np.array_equal(np.asarray(again), np.asarray(static))  # always the first view


def test_mask_browser_accepts_samples_with_their_own_logits():
    samples, results = scene_samples(3)
    legacy = [dict(s, logits=r["logits"]) for s, r in zip(samples, results["vlm"]["samples"])]
    widget = mask_browser(legacy, zoom=2)
    assert widget.result["iou"] == pytest.approx(results["vlm"]["samples"][0]["iou_teacher_forced"], abs=1e-3)
    assert widget.result["rgb"].shape == (256, 256, 3)
    single = mask_browser(samples, results["dual"])  # one evaluate() result instead of a dict of them
    assert single.result["model"] == "model"


def test_mask_browser_rejects_bad_input_clearly():
    samples, results = scene_samples(3)
    with pytest.raises(ValueError, match="at least one"):
        mask_browser([], results)
    with pytest.raises(ValueError, match="'image' and 'mask'"):
        mask_browser([{"image": samples[0]["image"]}], results)
    with pytest.raises(ValueError, match=r"has 3 sample records but 2 samples"):
        mask_browser(samples[:2], results)
    with pytest.raises(ValueError, match="keep_predictions=True"):
        mask_browser(samples, {"vlm": {"samples": [{k: v for k, v in r.items() if k != "logits"}
                                                   for r in results["vlm"]["samples"]]}})
    with pytest.raises(ValueError, match="sample 1: image mode 'CMYK'"):
        mask_browser([samples[0], dict(samples[1], image=samples[1]["image"].convert("CMYK")), samples[2]], results)
    with pytest.raises(ValueError, match="sample 2's image is 64x64"):
        mask_browser([*samples[:2], dict(samples[2], image=samples[2]["image"].resize((64, 64)))], results)
    with pytest.raises(ValueError, match="sample 1's mask has shape"):
        mask_browser([samples[0], dict(samples[1], mask=samples[1]["mask"][:5]), samples[2]], results)
    bad = {"vlm": {"samples": [dict(r, logits=np.zeros((4, 4))) for r in results["vlm"]["samples"]]}}
    with pytest.raises(ValueError, match="sample 0's logits has shape"):
        mask_browser(samples, bad)
    with pytest.raises(ValueError, match="non-empty dict"):
        mask_browser(samples, {})
    with pytest.raises(ValueError, match="model 'sam'"):
        mask_browser(samples, results, model="sam")
    with pytest.raises(ValueError, match="threshold_range"):
        mask_browser(samples, results, threshold=20.0)
    with pytest.raises(TypeError, match="list of dataset samples"):
        mask_browser(samples[0], results)


# ----- query_box ----------------------------------------------------------------------------------------
def test_query_box_runs_each_model_once_per_query_and_image():
    scenes = [generate_scene((9, i)) for i in range(3)]
    calls = []

    def make(name, which):
        def segment(image, query):
            calls.append((name, query))
            scene = next(s for s in scenes if np.array_equal(np.asarray(s.render()), np.asarray(image)))
            return np.where(scene.visible_masks()[which], 4.0, -4.0)
        return segment

    widget = query_box({"vlm": make("vlm", 0), "dual": make("dual", -1)}, [s.render() for s in scenes])
    c = widget.controls
    assert widget.result["mask"] is None and calls == []  # an empty box runs nothing
    assert "type a query" in widget.caption.value
    assert widget.result["rgb"].shape == (512, 512, 3)
    c["query"].value = "the red shape"
    assert calls == [("vlm", "the red shape")]
    assert np.array_equal(widget.result["mask"], scenes[0].visible_masks()[0])
    assert widget.result["area"] == int(scenes[0].visible_masks()[0].sum())
    c["model"].value = "dual"
    assert calls[-1] == ("dual", "the red shape")
    assert np.array_equal(widget.result["mask"], scenes[0].visible_masks()[-1])
    c["image"].value = 2
    assert np.array_equal(widget.result["mask"], scenes[2].visible_masks()[-1])
    c["model"].value, c["image"].value = "vlm", 0
    shown = widget.result["rgb"]
    widget.controls["run"].click()
    c["style"].value = "outline"
    c["mask"].value = "heatmap"
    assert len(calls) == 4  # cached: toggles, re-runs and going back run nothing new
    assert not np.array_equal(widget.result["rgb"], shown)
    assert "ground truth" not in widget.legend.value  # no ground truth for your own query
    bundle = widget._repr_mimebundle_()
    assert "image/png" in bundle and "3 images" in bundle["text/plain"]


def test_query_box_shows_errors_and_rejects_bad_input():
    image = generate_scene((9, 0)).render()

    def broken(image, query):
        raise RuntimeError("out of memory")

    widget = query_box({"vlm": broken}, [image])
    widget.controls["query"].value = "anything"
    assert "RuntimeError: out of memory" in widget.caption.value
    assert widget.result["error"] == "RuntimeError: out of memory" and widget.result["mask"] is None
    with pytest.raises(ValueError, match="non-empty dict"):
        query_box({}, [image])
    with pytest.raises(TypeError, match="not callable"):
        query_box({"vlm": "model"}, [image])
    with pytest.raises(ValueError, match="at least one image"):
        query_box({"vlm": broken}, [])
    with pytest.raises(ValueError, match="image 1: image mode 'F'"):
        query_box({"vlm": broken}, [image, Image.new("F", (8, 8))])
    legacy = query_box(lambda image, query: np.ones((128, 128), bool), image, zoom=2)  # one fn, one image
    legacy.controls["query"].value = "x"
    assert legacy.result["area"] == 128 * 128 and legacy.result["rgb"].shape == (256, 256, 3)


def test_segment_query_thresholds_logits_and_checks_shape():
    image = Image.new("RGB", (3, 2), GREY)
    logits = np.array([[1.0, -1.0, 0.0], [0.2, -0.2, 5.0]])
    result = segment_query(lambda img, q: logits, image, "  the thing  ")
    assert result["query"] == "the thing" and result["area"] == 3  # logits > 0, LISA's rule
    assert segment_query(lambda img, q: logits, image, "x", threshold=0.5)["area"] == 2
    assert segment_query(lambda img, q: 1 / 0, image, "   ")["mask"] is None  # empty: nothing runs
    with pytest.raises(ValueError, match="resize the prediction"):
        segment_query(lambda img, q: np.zeros((5, 5), bool), image, "x")


# ----- what an executed notebook shows without a kernel ---------------------------------------------------
def test_executed_notebook_holds_a_static_picture(tmp_path):
    """nbclient runs a notebook with both viewers; the saved outputs carry image/png next to the widget view.

    A renderer without widget support (GitHub, JupyterLab without a kernel's widget state, nbconvert when no
    widget state was saved) shows that picture instead of the widget's text repr; nbconvert with the saved
    state (nbclient's default) embeds the widget itself, whose state holds the same picture.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    code = """
import numpy as np
from lisalib.world.scenes import generate_scene
from lisalib.notebook.widgets import mask_browser, query_box
scene = generate_scene((9, 0))
target = scene.visible_masks()[0]
samples = [{"image": scene.render(), "mask": target.astype(np.uint8), "texts": ["the thing"], "is_sentence": False}]
results = {"vlm": {"samples": [{"index": 0, "query": "the thing", "iou_teacher_forced": 1.0,
                                "logits": np.where(target, 4.0, -4.0).astype(np.float16)}]}}
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code),
                                         nbformat.v4.new_code_cell("mask_browser(samples, results)"),
                                         nbformat.v4.new_code_cell("query_box({'vlm': lambda i, q: target}, "
                                                                   "[scene.render()])")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    for cell in nb.cells[1:]:
        (output,) = cell.outputs
        assert {"image/png", "application/vnd.jupyter.widget-view+json", "text/plain"} <= set(output["data"])
        assert "children" not in output["data"]["text/plain"]
        assert Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))).width == 512
    json.dumps(nb)  # serialisable as saved
    with_state, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert with_state.count('<script type="application/vnd.jupyter.widget-view+json">') == 2
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    pictures = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert len(pictures) == 2 and all(m["buffers"] for m in pictures)
    nb.metadata.pop("widgets")
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert body.count('src="data:image/png;base64,') == 2
    assert "HBox(children" not in body and "VBox(children" not in body
