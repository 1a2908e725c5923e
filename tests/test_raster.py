"""Parity of lisalib's ReasonSeg ground truth with LISA's ``get_mask_from_json``, pixel for pixel.

``lisa_get_mask`` below is a transcription of LISA's painting from the facts in
shared/reference/lisa.md (section 4): skip ``flag`` shapes, rasterise each polygon with
``cv2.polylines(m, pts, True, 1, 1)`` then ``cv2.fillPoly(m, pts, 1)`` on ``np.array([points],
dtype=np.int32)``, take each area as ``m.sum()``, paint in ``np.argsort(areas)[::-1]`` order with 255 for
labels containing ``ignore`` and 1 otherwise (both label checks case-insensitive, lisalib's reading).

Ties: ``np.argsort``'s default kind is not stable (numpy's introsort, and on x86 builds with AVX-512 a
SIMD sort that reorders ties even in short lists), so shapes of equal area are painted in an order that
depends on numpy's build. Reversed, the last one of that order ends on top. lisalib makes the very same
call on the very same uint64 area list, so it paints ties in LISA's order wherever both run; the tie
cases below (identical polygons, equal-area translates) would fail otherwise.
"""
import json
import warnings

import cv2
import numpy as np
import pytest

from lisalib.reasonseg import ReasonSegWarning, mask_from_annotation, paint_shapes, polygon_to_mask, read_annotation
from lisalib.world.scenes import generate_scenes

LABELS = ["target", "target (part 2)", "ignore", "ignore (occluded part of the target)", "flag"]


def lisa_get_mask(shapes: list[dict], height: int, width: int) -> np.ndarray:
    """LISA's get_mask_from_json painting, transcribed from the reference notes."""
    areas, kept = [], []
    for shape in shapes:
        if shape["label"].lower() == "flag":
            continue
        canvas = np.zeros((height, width), dtype=np.uint8)
        cv2.polylines(canvas, np.array([shape["points"]], dtype=np.int32), True, 1, 1)
        cv2.fillPoly(canvas, np.array([shape["points"]], dtype=np.int32), 1)
        areas.append(canvas.sum())
        kept.append(shape)
    mask = np.zeros((height, width), dtype=np.uint8)
    for index in np.argsort(areas)[::-1]:
        shape = kept[index]
        value = 255 if "ignore" in shape["label"].lower() else 1
        cv2.polylines(mask, np.array([shape["points"]], dtype=np.int32), True, value, 1)
        cv2.fillPoly(mask, np.array([shape["points"]], dtype=np.int32), value)
    return mask


def lisalib_mask(tmp_path, shapes: list[dict], height: int, width: int) -> np.ndarray:
    """lisalib's ground truth through the reader: JSON on disk -> read_annotation -> mask_from_annotation."""
    path = tmp_path / "sample.json"
    path.write_text(json.dumps({"text": ["it"], "is_sentence": False, "shapes": shapes}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReasonSegWarning)  # points outside the image are warned about
        return mask_from_annotation(read_annotation(path), height, width, allow_empty=True)


def random_polygon(rng: np.random.Generator, height: int, width: int) -> list[list[float]]:
    """3-12 float vertices around a random centre; about a third of them fall outside the image."""
    n = int(rng.integers(3, 13))
    centre = rng.uniform([-0.2 * width, -0.2 * height], [1.2 * width, 1.2 * height])
    radius = rng.uniform(1, 0.8 * max(height, width))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi, n)
    radii = radius * rng.uniform(0.2, 1.0, n)  # star-like, sometimes self-intersecting (unsorted angles)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return points.round(3).tolist()


def test_random_polygons_match_lisa_exactly(tmp_path):
    rng = np.random.default_rng(0)
    outside = 0
    for _ in range(400):
        height, width = int(rng.integers(4, 48)), int(rng.integers(4, 48))
        shapes = [{"label": LABELS[int(rng.integers(len(LABELS)))], "points": random_polygon(rng, height, width)}
                  for _ in range(int(rng.integers(1, 6)))]
        outside += any((np.asarray(s["points"]) < 0).any() or (np.asarray(s["points"]) >= min(height, width)).any()
                       for s in shapes)
        expected = lisa_get_mask(shapes, height, width)
        assert np.array_equal(lisalib_mask(tmp_path, shapes, height, width), expected)
        for shape in shapes:  # one polygon alone: LISA's per-shape raster
            alone = lisa_get_mask([{"label": "target", "points": shape["points"]}], height, width) == 1
            assert np.array_equal(polygon_to_mask(shape["points"], height, width), alone)
    assert outside > 200  # most cases exercise OpenCV's own clipping at the border


@pytest.mark.parametrize("seed", range(40))
def test_equal_areas_are_painted_in_lisas_argsort_order(tmp_path, seed):
    rng = np.random.default_rng(seed)
    square = np.array([[0, 0], [6, 0], [6, 6], [0, 6]], dtype=float)
    shapes = []
    for _ in range(int(rng.integers(2, 9))):  # integer translates inside the image: identical areas
        label = LABELS[int(rng.integers(4))]
        shift = rng.integers(0, 4, size=2) if rng.random() < 0.6 else np.zeros(2)  # some exactly coincide
        shapes.append({"label": label, "points": (square + shift + rng.uniform(0, 0.99)).tolist()})
    for _ in range(int(rng.integers(0, 3))):  # smaller shapes among them make numpy's sort reorder the ties
        shapes.insert(int(rng.integers(len(shapes) + 1)), {"label": "target", "points": [[9, 9], [11, 9], [11, 11]]})
    areas = [int(polygon_to_mask(s["points"], 12, 12).sum()) for s in shapes]
    assert len(set(areas)) <= 2
    assert np.array_equal(lisalib_mask(tmp_path, shapes, 12, 12), lisa_get_mask(shapes, 12, 12))


def test_ties_follow_numpys_default_argsort():
    """Shapes 1 and 2 coincide; which ends on top is decided by np.argsort's order of equal areas alone.

    With numpy 2.4's AVX-512 sort, argsort([49, 49, 49, 49, 3]) is [4, 0, 2, 1, 3]: painted reversed,
    shape 2 (ignore) ends on top, where a stable sort (or file order) would leave shape 1 (target) there.
    """
    square = [[0, 0], [6, 0], [6, 6], [0, 6]]
    moved = lambda dx, dy: [[x + dx, y + dy] for x, y in square]  # noqa: E731
    shapes = [("target", moved(0, 13)), ("target", moved(8, 0)), ("ignore", moved(8, 0)), ("target", moved(8, 13)),
              ("target", [[0, 0], [1, 0], [0, 1]])]
    areas = [polygon_to_mask(points, 20, 16).sum() for _, points in shapes]
    order = list(np.argsort(areas)[::-1])
    on_top = max((1, 2), key=order.index)  # the later painted of the two
    mask = paint_shapes(shapes, 20, 16)
    assert mask[3, 11] == (255 if shapes[on_top][0] == "ignore" else 1)
    assert np.array_equal(mask, lisa_get_mask([{"label": label, "points": p} for label, p in shapes], 20, 16))


def test_identical_polygons_with_different_values():
    points = [[1.5, 1.2], [7.9, 2.0], [5.0, 8.7]]
    shapes = [("target", points), ("ignore", points), ("target", points), ("ignore", points)]
    as_json = [{"label": label, "points": p} for label, p in shapes]
    assert np.array_equal(paint_shapes(shapes, 10, 10), lisa_get_mask(as_json, 10, 10))


def test_smaller_shapes_end_on_top_and_flags_paint_nothing(tmp_path):
    shapes = [{"label": "target", "points": [[2, 2], [5, 2], [5, 5], [2, 5]]},
              {"label": "ignore", "points": [[0, 0], [9, 0], [9, 7], [0, 7]]},
              {"label": "flag", "points": [[0, 0], [11, 0], [11, 9], [0, 9]]}]
    mask = lisalib_mask(tmp_path, shapes, 10, 12)
    assert np.array_equal(mask, lisa_get_mask(shapes, 10, 12))
    assert (mask[2:6, 2:6] == 1).all() and (mask == 1).sum() == 16  # outline included: 4 x 4 pixels
    assert (mask == 255).sum() == 10 * 8 - 16 and mask[9, 11] == 0


def test_shapes_world_masks_are_lisas_raster_of_the_scene_polygons():
    for scene in generate_scenes(20, seed=1):
        for obj, full in zip(scene.objects, scene.full_masks()):
            lisa = lisa_get_mask([{"label": "target", "points": obj.polygon.tolist()}], scene.height, scene.width)
            assert np.array_equal(full, lisa == 1)
            assert np.array_equal(full, polygon_to_mask(obj.polygon, scene.height, scene.width))
