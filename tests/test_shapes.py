import hashlib

import numpy as np
import pytest

from lisalib.reasonseg.raster import polygon_to_mask
from lisalib.world import (COLOURS, NUMBER_WORDS, SHAPE_KINDS, SceneConfig, generate_scene, generate_scenes, language,
                           shape_polygon, split_words, vocabulary)


def test_same_seed_same_pixels_and_annotations():
    a, b = generate_scene((5, 1)), generate_scene((5, 1))
    assert np.array_equal(np.asarray(a.render()), np.asarray(b.render()))
    assert a.to_dict() == b.to_dict()
    assert a.questions() == b.questions()
    assert not np.array_equal(np.asarray(a.render()), np.asarray(generate_scene((5, 2)).render()))


def test_scenes_are_stable_across_machines():
    """A fingerprint of the first scenes: changes here change every chapter's data (update on purpose)."""
    digest = hashlib.sha256()
    for scene in generate_scenes(3, seed=0):
        digest.update(np.asarray(scene.render()).tobytes())
        digest.update(scene.visible_masks().tobytes())
    assert digest.hexdigest()[:16] == FINGERPRINT


FINGERPRINT = "bb3b66d0a9b1772b"  # since masks are LISA's raster (int32 points, outline + fill)


def test_object_counts_and_unique_pairs():
    scenes = generate_scenes(200, seed=3)
    counts = [len(s.objects) for s in scenes]
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) == 6
    for s in scenes:
        pairs = [(o.colour, o.kind) for o in s.objects]
        assert len(pairs) == len(set(pairs))
        assert all(o.colour in COLOURS and o.kind in SHAPE_KINDS for o in s.objects)


def test_polygons_are_exact_and_inside_image():
    scene = generate_scene((0, 7))
    full = scene.full_masks()
    for obj, mask in zip(scene.objects, full):
        assert obj.polygon.shape[1] == 2
        assert (obj.polygon >= 0).all() and (obj.polygon <= scene.width).all()
        assert np.array_equal(mask, polygon_to_mask(obj.polygon, scene.height, scene.width))
        assert mask.sum() > 0


def test_masks_are_lisas_raster_of_the_polygon():
    """int32-truncated vertices, outline plus fill: a float square covering 1.5..4.9 paints rows/columns 1..4."""
    square = np.array([[1.5, 1.5], [4.9, 1.5], [4.9, 4.2], [1.5, 4.2]])
    expected = np.zeros((6, 7), bool)
    expected[1:5, 1:5] = True
    assert np.array_equal(polygon_to_mask(square, 6, 7), expected)


def test_scene_language_methods_delegate_to_the_language_module():
    scene = generate_scene((0, 3))
    assert scene.caption() == language.caption(scene)
    assert scene.questions() == language.questions(scene)
    assert scene.reasoning_queries() == language.reasoning_queries(scene)
    assert scene.referring_expressions(0) == language.referring_expressions(scene, 0)
    assert scene.position_words(0) == language.position_words(scene, 0)


def test_visible_masks_follow_painting_order():
    scenes = [s for s in generate_scenes(300, seed=9) if len(s.objects) > 1]
    overlapping = next(s for s in scenes if (s.full_masks().sum(0) > 1).any())
    full, visible = overlapping.full_masks(), overlapping.visible_masks()
    assert (visible.sum(0) <= 1).all()  # no pixel belongs to two objects
    assert np.array_equal(visible[-1], full[-1])  # the top object is never occluded
    assert (visible <= full).all()
    image = np.asarray(overlapping.render())
    for obj, mask in zip(overlapping.objects, visible):
        if mask.any():
            assert (image[mask] == COLOURS[obj.colour]).all()


def test_overlap_is_bounded():
    config = SceneConfig()
    for s in generate_scenes(100, seed=4):
        full = s.full_masks()
        for i in range(len(full)):
            for j in range(i):
                shared = (full[i] & full[j]).sum()
                assert shared <= config.max_overlap * min(full[i].sum(), full[j].sum()) + 1e-9


def test_questions_have_unambiguous_answers():
    for s in generate_scenes(100, seed=5):
        for qa in s.questions():
            if qa["type"] == "colour":
                kind = qa["question"].split()[-1].rstrip("?")
                assert len(s.find(kind=kind)) == 1 and s.objects[qa["target"]].colour == qa["answer"]
            elif qa["type"] == "shape":
                colour = qa["question"].split()[-2]
                assert len(s.find(colour=colour)) == 1 and s.objects[qa["target"]].kind == qa["answer"]
            elif qa["type"] == "count":
                assert qa["answer"] == NUMBER_WORDS[len(s.objects)]
            elif qa["type"] == "exists":
                colour, kind = qa["question"].rstrip("?").split()[-2:]
                assert (qa["answer"] == "yes") == bool(s.find(colour, kind))
            elif qa["type"] == "position":
                assert qa["answer"] == s.position_words(qa["target"])


def test_position_words():
    scene = generate_scene((0, 0))
    obj = scene.objects[0]
    for (x, y), expected in {(10, 10): "top left", (64, 64): "center", (120, 64): "right",
                             (64, 120): "bottom", (44, 64): None}.items():
        obj.center = (x, y)
        assert scene.position_words(0) == expected


def test_referring_expressions_pick_one_object():
    for s in generate_scenes(60, seed=6):
        areas = s.visible_masks().sum((1, 2))
        for i, obj in enumerate(s.objects):
            phrases = s.referring_expressions(i)
            assert phrases[0] == f"the {obj.colour} {obj.kind}"
            if "the largest shape" in phrases:
                assert areas[i] == areas.max()
            if "the leftmost shape" in phrases:
                assert obj.center[0] == min(o.center[0] for o in s.objects)


def test_caption_lists_every_object_left_to_right():
    scene = generate_scenes(10, seed=2)[4]
    caption = scene.caption()
    assert caption.startswith(NUMBER_WORDS[len(scene.objects)])
    positions = [caption.index(f"{o.colour} {o.kind}") for o in sorted(scene.objects, key=lambda o: o.center[0])]
    assert positions == sorted(positions)


def test_vocabulary_covers_all_generated_text():
    words = set(vocabulary())
    for s in generate_scenes(200, seed=8):
        texts = [s.caption()] + [q["question"] + " " + q["answer"] for q in s.questions()]
        texts += [p for i in range(len(s.objects)) for p in s.referring_expressions(i)]
        for text in texts:
            assert set(split_words(text)) <= words, text


def test_high_resolution_small_objects():
    config = SceneConfig(size=512, min_radius=5, max_radius=12, max_objects=6)
    scene = generate_scene((1, 1), config)
    assert scene.render().size == (512, 512)
    assert all(5 <= o.radius <= 12 for o in scene.objects)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown shape kind"):
        shape_polygon("hexagon", (0, 0), 1, 0)


def test_reasoning_queries_have_exactly_one_answer():
    from lisalib.world.scenes import SHAPE_KINDS

    seen = set()
    for s in generate_scenes(150, seed=12):
        corners = [SHAPE_KINDS[o.kind].corners for o in s.objects]
        for q in s.reasoning_queries():
            seen.add(q["type"])
            target = s.objects[q["target"]]
            assert q["is_sentence"] and q["text"].endswith("?")
            if q["type"] == "roll":
                assert target.kind == "circle" and [o.kind for o in s.objects].count("circle") == 1
            elif q["type"] == "corners":
                n = NUMBER_WORDS.index(q["text"].split()[3])
                assert corners.count(n) == 1 and SHAPE_KINDS[target.kind].corners == n
            elif q["type"] == "most_corners":
                assert corners.count(max(corners)) == 1 and SHAPE_KINDS[target.kind].corners == max(corners)
            elif q["type"] == "region":
                regions = [s.position_words(i, margin=0.0) for i in range(len(s.objects))]
                assert regions.count(regions[q["target"]]) == 1
    assert len(seen) >= 8
