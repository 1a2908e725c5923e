import numpy as np
import pytest
import torch
from PIL import Image

from lisalib.reasonseg.metrics import sample_iou
from lisalib.world.scenes import generate_scene
from lisalib.notebook.widgets import (
    GT_COLOUR,
    IGNORE_COLOUR,
    PRED_COLOUR,
    mask_browser,
    query_box,
    render_sample,
    segment_query,
)

GREY = (100, 100, 100)


def tiny_case():
    image = Image.new("RGB", (3, 2), GREY)
    gt = np.array([[1, 255, 0], [0, 0, 0]], np.uint8)
    logits = np.array([[2.0, 1.0, -1.0], [-1.0, 0.5, -3.0]], np.float32)
    return image, gt, logits


def test_render_sample_layers_and_iou():
    image, gt, logits = tiny_case()
    rgb, iou = render_sample(image, gt, logits, threshold=0.0, alpha=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert tuple(rgb[1, 1]) == PRED_COLOUR  # predicted, not in the ground truth
    assert tuple(rgb[0, 0]) == PRED_COLOUR  # prediction drawn last, over the ground truth
    assert tuple(rgb[0, 1]) == PRED_COLOUR and tuple(rgb[1, 2]) == GREY
    # prediction {(0,0), (1,1)} once the ignore pixel is removed; target {(0,0)}: I 1, U 2
    assert iou == pytest.approx(0.5, abs=1e-5)
    rgb, same_iou = render_sample(image, gt, logits, alpha=1.0, show_pred=False)
    assert tuple(rgb[0, 0]) == GT_COLOUR and tuple(rgb[0, 1]) == IGNORE_COLOUR and tuple(rgb[1, 1]) == GREY
    assert same_iou == iou  # what is shown does not change the score
    rgb, _ = render_sample(image, gt, logits, alpha=1.0, show_pred=False, show_gt=False, show_ignore=False)
    assert np.array_equal(rgb, np.asarray(image))
    _, strict_iou = render_sample(image, gt, logits, threshold=1.5)  # only (0, 0) is left: a perfect match
    assert strict_iou == pytest.approx(1.0, abs=1e-5)
    _, none_iou = render_sample(image, gt, None)
    assert none_iou is None


def test_render_sample_accepts_tensors_and_bool_predictions():
    image, gt, logits = tiny_case()
    _, iou = render_sample(image, torch.as_tensor(gt), torch.as_tensor(logits)[None, None])
    assert iou == pytest.approx(0.5, abs=1e-5)
    _, iou = render_sample(image, gt, logits > 1.5)
    assert iou == pytest.approx(1.0, abs=1e-5)


def test_render_sample_rejects_mismatched_sizes():
    image, gt, logits = tiny_case()
    with pytest.raises(ValueError, match="the prediction has shape"):
        render_sample(image, gt, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="the ground truth has shape"):
        render_sample(image, np.zeros((3, 2), np.uint8), logits)
    with pytest.raises(ValueError, match="alpha"):
        render_sample(image, gt, logits, alpha=1.5)


def scene_samples():
    samples = []
    for i in range(3):
        scene = generate_scene((9, i))
        target = scene.visible_masks()[0]
        logits = np.where(target, 3.0, -3.0).astype(np.float32)
        logits[: 4 * (i + 1)] = 1.0  # a band of weak false positives, wider per sample
        samples.append({"image": scene.render(), "mask": target.astype(np.uint8), "logits": logits,
                        "texts": scene.referring_expressions(0), "is_sentence": False})
    return samples


def test_mask_browser_headless():
    samples = scene_samples()
    widget = mask_browser(samples)
    index, threshold, alpha, show_gt, show_pred, show_ignore = widget.children[:6]
    assert widget.result["index"] == 0
    widget.children[0].value = 2
    expected = sample_iou(samples[2]["logits"] > 0, samples[2]["mask"])
    assert widget.result["index"] == 2 and widget.result["iou"] == pytest.approx(expected)
    threshold.value = 2.0  # above the weak band: the prediction becomes the target exactly
    assert widget.result["iou"] == pytest.approx(1.0, abs=1e-5)
    show_pred.value = False
    alpha.value = 1.0
    rgb, _ = render_sample(samples[2]["image"], samples[2]["mask"], samples[2]["logits"], 2.0, 1.0, True, False, True)
    assert np.array_equal(widget.result["rgb"], rgb)
    show_gt.value = False
    show_ignore.value = False
    assert np.array_equal(widget.result["rgb"], np.asarray(samples[2]["image"]))


def test_mask_browser_without_predictions_and_bad_input():
    samples = [{k: v for k, v in s.items() if k != "logits"} for s in scene_samples()]
    widget = mask_browser(samples)
    assert widget.result["iou"] is None
    with pytest.raises(ValueError, match="at least one"):
        mask_browser([])
    with pytest.raises(ValueError, match="'image' and 'mask'"):
        mask_browser([{"image": samples[0]["image"]}])
    with pytest.raises(ValueError, match="threshold_range"):
        mask_browser(samples, threshold=20.0)


def test_query_box_headless():
    scene = generate_scene((9, 0))
    calls = []

    def segment(image, query):
        calls.append(query)
        index = next(i for i in range(len(scene.objects)) if query in scene.referring_expressions(i))
        return scene.visible_masks()[index]

    widget = query_box(segment, scene.render())
    assert widget.result["mask"] is None and calls == []  # an empty box runs nothing
    phrase = scene.referring_expressions(0)[0]
    widget.children[0].value = phrase
    assert calls == [phrase]
    assert np.array_equal(widget.result["mask"], scene.visible_masks()[0])
    assert widget.result["area"] == int(scene.visible_masks()[0].sum())
    widget.children[1].value = 0.0
    assert np.array_equal(widget.result["rgb"], np.asarray(scene.render()))


def test_segment_query_thresholds_logits_and_checks_shape():
    image = Image.new("RGB", (3, 2), GREY)
    logits = np.array([[1.0, -1.0, 0.0], [0.2, -0.2, 5.0]])
    result = segment_query(lambda img, q: logits, image, "  the thing  ")
    assert result["query"] == "the thing" and result["area"] == 3  # logits > 0, LISA's rule
    with pytest.raises(ValueError, match="resize the prediction"):
        segment_query(lambda img, q: np.zeros((5, 5), bool), image, "x")
