import math

import numpy as np
import pytest
import torch

from lisalib.reasonseg.metrics import ReasonSegMetrics, iou_from_counts, sample_iou, score_mask, summarise

EPS = 1e-5  # LISA: IoU = I / (U + 1e-5), hand-computed below with it


def worked_example():
    """lisa.md section 3: three 4x4 masks A, B, C."""
    gt_a = np.zeros((4, 4), np.uint8)
    gt_a[0, :4] = 1
    gt_a[1, 0] = 1  # 5 target pixels
    pred_a = np.zeros((4, 4), bool)
    pred_a[0, :3] = True
    pred_a[2, :2] = True  # 5 predicted, 3 of them on target: I = 3, U = 7
    gt_b = np.zeros((4, 4), np.uint8)
    gt_b[0, :2] = 1
    gt_b[0, 2:4] = 255  # 2 target + 2 ignore pixels
    pred_b = np.zeros((4, 4), bool)
    pred_b[0, :4] = True
    pred_b[3, 3] = True  # those 4 + 1 background: I = 2, U = 3
    gt_c = np.zeros((4, 4), np.uint8)
    pred_c = np.zeros((4, 4), bool)  # both empty: U = 0
    return [(pred_a, gt_a), (pred_b, gt_b), (pred_c, gt_c)]


def lisa_validate(pairs):
    """A transcription of LISA's intersectionAndUnionGPU + validate() loop, run on CPU in float32."""
    inter_sum = union_sum = acc_sum = 0.0
    for pred, gt in pairs:
        output = torch.as_tensor(pred).int().float().view(-1).clone()
        target = torch.as_tensor(gt).int().float().view(-1)
        output[target == 255] = 255
        area_i = torch.histc(output[output == target], bins=2, min=0, max=1)
        area_u = torch.histc(output, bins=2, min=0, max=1) + torch.histc(target, bins=2, min=0, max=1) - area_i
        acc = area_i / (area_u + 1e-5)
        acc[area_u == 0] += 1.0
        inter_sum += float(area_i[1])
        union_sum += float(area_u[1])
        acc_sum += float(acc[1])
    return acc_sum / len(pairs), inter_sum / (union_sum + 1e-10)


def test_worked_example_from_the_reference():
    metrics = ReasonSegMetrics()
    ious = [metrics.update(pred, gt)[0].iou for pred, gt in worked_example()]
    assert ious == pytest.approx([3 / (7 + EPS), 2 / (3 + EPS), 1.0], rel=1e-12)
    result = metrics.compute()
    assert round(result["giou"], 4) == 0.6984
    assert result["ciou"] == pytest.approx(0.5)
    assert result["precision"] == pytest.approx(5 / 8)  # I 3+2+0 over predicted 5+3+0 (ignore removed)
    assert result["recall"] == pytest.approx(5 / 7)  # over target 5+2+0
    assert result["n"] == 3
    assert (result["giou"], result["ciou"]) == pytest.approx(lisa_validate(worked_example()), abs=1e-6)


def test_matches_lisa_transcription_on_random_masks():
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(12):
        gt = rng.choice(np.array([0, 1, 255], np.uint8), size=(9, 7), p=[0.5, 0.35, 0.15])
        if i == 0:
            gt[:] = 0  # an empty target
        pred = rng.random((9, 7)) < (0.0 if i in (0, 1) else 0.4)
        pairs.append((pred, gt))
    metrics = ReasonSegMetrics()
    for pred, gt in pairs:
        metrics.update(pred, gt)
    result = metrics.compute()
    assert (result["giou"], result["ciou"]) == pytest.approx(lisa_validate(pairs), abs=1e-6)


def test_ignore_pixels_never_count():
    gt = np.array([[1, 255], [0, 0]], np.uint8)
    on_ignore = np.array([[1, 1], [0, 0]], bool)
    # the ignore hit is neither a false positive nor in the union
    assert sample_iou(on_ignore, gt) == pytest.approx(1 / (1 + EPS), rel=1e-12)
    only_ignore = np.full((2, 2), 255, np.uint8)
    assert sample_iou(np.ones((2, 2), bool), only_ignore) == 1.0  # nothing valid: union 0
    score = score_mask(np.ones((2, 2), bool), gt)
    assert (score.intersection, score.union, score.predicted, score.target) == (1, 3, 3, 1)


def test_empty_cases():
    empty_gt = np.zeros((3, 3), np.uint8)
    some_gt = empty_gt.copy()
    some_gt[1, 1] = 1
    nothing = np.zeros((3, 3), bool)
    something = ~nothing
    assert sample_iou(nothing, empty_gt) == 1.0  # union 0: LISA's "no-object target"
    assert sample_iou(something, empty_gt) == 0.0  # false positives on an empty target
    assert sample_iou(nothing, some_gt) == 0.0  # a missed target
    metrics = ReasonSegMetrics()
    metrics.update(nothing, empty_gt)
    result = metrics.compute()
    assert result["giou"] == 1.0 and result["ciou"] == 0.0  # cIoU: 0 / (0 + 1e-10)
    assert math.isnan(result["precision"]) and math.isnan(result["recall"])


def test_empty_accumulator_and_groups():
    metrics = ReasonSegMetrics()
    result = metrics.compute()
    assert result["n"] == 0 and math.isnan(result["giou"]) and result["long"]["n"] == 0
    (pred_a, gt_a), (pred_b, gt_b), (pred_c, gt_c) = worked_example()
    metrics.update(pred_a, gt_a, is_sentence=False)
    metrics.update(pred_b, gt_b, is_sentence=True)
    metrics.update(pred_c, gt_c, is_sentence=True)
    result = metrics.compute()
    assert result["short"]["n"] == 1 and result["short"]["giou"] == pytest.approx(3 / (7 + EPS), rel=1e-12)
    assert result["long"]["n"] == 2 and result["long"]["giou"] == pytest.approx((2 / (3 + EPS) + 1) / 2, rel=1e-12)
    assert result["long"]["ciou"] == pytest.approx(2 / 3)
    assert len(metrics) == 3
    metrics.reset()
    assert len(metrics) == 0


def test_stacks_and_tensors():
    pairs = worked_example()
    pred = torch.as_tensor(np.stack([p for p, _ in pairs]))
    gt = torch.as_tensor(np.stack([g for _, g in pairs]))
    metrics = ReasonSegMetrics()
    assert len(metrics.update(pred, gt, is_sentence=True)) == 3  # each mask counts once, as in LISA
    assert round(metrics.compute()["long"]["giou"], 4) == 0.6984
    assert sample_iou(np.array([[0, 1]]), np.array([[0, 1]], np.uint8)) == pytest.approx(1 / (1 + EPS), rel=1e-12)


def test_bad_input_is_refused():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        sample_iou(np.zeros((4, 5), bool), gt)
    with pytest.raises(ValueError, match="does not match"):
        ReasonSegMetrics().update(np.zeros((2, 4, 4), bool), gt)
    with pytest.raises(TypeError, match="logits > 0"):
        sample_iou(np.zeros((4, 4), np.float32), gt)
    with pytest.raises(ValueError, match="only 0 and 1"):
        sample_iou(np.full((4, 4), 2), gt)
    with pytest.raises(ValueError, match="0, 1 and 255"):
        sample_iou(np.zeros((4, 4), bool), np.full((4, 4), 7, np.uint8))
    with pytest.raises(TypeError, match="integer mask"):
        sample_iou(np.zeros((4, 4), bool), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        ReasonSegMetrics().update(np.zeros(4, bool), np.zeros(4, np.uint8))


def test_iou_from_counts_is_the_one_formula_for_numbers_arrays_and_tensors():
    assert iou_from_counts(3, 7) == pytest.approx(3 / (7 + EPS), rel=1e-12)
    assert iou_from_counts(0, 0) == 1.0 and iou_from_counts(0, 4) == 0.0
    arrays = iou_from_counts(np.array([3, 0, 2]), np.array([7, 0, 2]))
    assert arrays == pytest.approx([3 / (7 + EPS), 1.0, 2 / (2 + EPS)], rel=1e-12)
    intersection, union = torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([7.0, 0.0], dtype=torch.float64)
    tensors = iou_from_counts(intersection, union)
    assert tensors.tolist() == pytest.approx([3 / (7 + EPS), 1.0], rel=1e-12)
    score = score_mask(worked_example()[0][0], worked_example()[0][1])
    assert score.iou == iou_from_counts(score.intersection, score.union) == sample_iou(*worked_example()[0])


def test_query_blind_baselines_rebuild_the_scene_and_score_it(synth_data):
    from lisalib.reasonseg.baselines import BASELINES, query_blind_masks, query_blind_scores
    from lisalib.reasonseg.dataset import ReasonSegDataset

    samples = [ReasonSegDataset(synth_data, "val")[i] for i in range(6)]
    masks = query_blind_masks(samples[0])
    assert set(masks) == set(BASELINES)
    assert (masks["every shape"] >= masks["largest shape"]).all() and (masks["every shape"] >= masks["random shape"]).all()
    assert masks["every shape"][samples[0]["mask"] == 1].all()  # the target is one of the shapes
    assert np.array_equal(query_blind_masks(samples[0])["random shape"], masks["random shape"])  # seeded
    scores = query_blind_scores(samples)
    for name in BASELINES:
        expected = np.mean([sample_iou(query_blind_masks(s)[name], s["mask"]) for s in samples])
        assert scores[name]["giou"] == pytest.approx(expected) and scores[name]["n"] == 6


def test_query_blind_baselines_need_a_synthetic_scene(tmp_path):
    from lisalib.reasonseg.baselines import scene_of

    with pytest.raises(ValueError, match="no synthetic scene record"):
        scene_of({"path": str(tmp_path / "real.jpg"), "mask": np.zeros((2, 2), np.uint8)})


def test_real_samples_get_the_image_baselines(tmp_path):
    from lisalib.reasonseg.baselines import IMAGE_BASELINES, image_blind_masks, query_blind_scores

    mask = np.zeros((8, 12), np.uint8)
    mask[2:6, 3:9] = 1  # the middle half of each side: the centre box is exact
    sample = {"path": str(tmp_path / "real.jpg"), "mask": mask, "is_sentence": False}
    masks = image_blind_masks(sample)
    assert masks["whole image"].all() and masks["centre box"].sum() == 24
    scores = query_blind_scores([sample])
    assert set(scores) == set(IMAGE_BASELINES)
    assert scores["centre box"]["giou"] == pytest.approx(1.0) and scores["whole image"]["giou"] == pytest.approx(0.25)


def test_mean_interval_is_the_normal_approximation_clipped_to_iou_range():
    from lisalib.reasonseg.metrics import mean_interval

    values = [0.2, 0.4, 0.6, 0.8]
    mean, low, high = mean_interval(values)
    half = 1.96 * np.std(values, ddof=1) / 2
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    assert mean_interval([0.0, 0.0, 0.0, 0.1])[1] == 0.0  # clipped at 0
    assert mean_interval([0.0, 0.0, 0.0, 0.1], bounds=None)[1] < 0
    assert np.isnan(mean_interval([0.3])[1]) and np.isnan(mean_interval([])[0])
    result = summarise([score_mask(np.ones((2, 2), bool), np.ones((2, 2), np.uint8))] * 3)
    assert result["giou_low"] == pytest.approx(result["giou"]) == pytest.approx(result["giou_high"])  # no spread
