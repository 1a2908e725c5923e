import hashlib
import math

import numpy as np
import pytest
from PIL import Image

from lisalib.world import (COLOURS, COUNT_WORDS, DIGIT_FONT, HighResConfig, encoder_views, generate_highres_scene,
                           generate_highres_scenes, glyph_mask, highres_vocabulary, read_digit, resolution_statistics,
                           split_words)


@pytest.fixture(scope="module")
def scenes():
    return generate_highres_scenes(50, seed=0)


def test_same_seed_same_scene():
    a, b = generate_highres_scene((3, 1)), generate_highres_scene((3, 1))
    assert np.array_equal(np.asarray(a.render()), np.asarray(b.render()))
    assert a.to_dict() == b.to_dict() and a.questions() == b.questions() and a.caption(True) == b.caption(True)
    assert not np.array_equal(np.asarray(a.render()), np.asarray(generate_highres_scene((3, 2)).render()))


def test_scenes_are_stable_across_machines():
    """A fingerprint of the first scenes: changes here change the high-resolution chapter's data."""
    digest = hashlib.sha256()
    for scene in generate_highres_scenes(3, seed=0):
        digest.update(np.asarray(scene.render()).tobytes())
        digest.update(scene.full_masks().tobytes())
        digest.update(repr([scene.caption(details=True), scene.questions()]).encode())
    assert digest.hexdigest()[:16] == FINGERPRINT


FINGERPRINT = "52eb905904be3bc2"  # pixels, masks and texts of seeds (0, 0..2)


def test_scene_sizes_counts_and_unique_pairs(scenes):
    config = HighResConfig()
    assert all(s.render().size == (256, 256) for s in scenes)
    assert {len(s.targets) for s in scenes} == {1, 2, 3}
    distractors = [len(s.objects) - len(s.targets) for s in scenes]
    assert min(distractors) >= config.min_distractors and max(distractors) <= config.max_distractors
    low, _ = config.distractor_radii
    for s in scenes:
        pairs = [(o.colour, o.kind) for o in s.objects]
        assert len(pairs) == len(set(pairs))  # so "the small red square" names one object
        small = {t.index for t in s.targets}
        assert small == set(range(len(s.objects) - len(s.targets), len(s.objects)))  # painted last
        for i, o in enumerate(s.objects):
            if i in small:
                assert config.min_target_radius <= o.radius <= config.max_target_radius < low
            else:
                assert o.radius >= low


def test_non_square_canvas():
    config = HighResConfig(width=320, height=192)
    assert config.distractor_radii == (11.0 * 1.5, 24.0 * 1.5)
    for s in generate_highres_scenes(10, seed=1, config=config):
        assert s.render().size == (320, 192) and s.full_masks().shape[1:] == (192, 320)
        for t in s.targets:
            x0, y0, x1, y1 = s.target_box(t)
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 192
        views = encoder_views(s)
        assert [v.image.size for v in views] == [(64, 64)] * 5
        # letterboxed like LaViDa: the canvas fills the tiles' width, with black bands top and bottom
        assert views[1].scale[0] == pytest.approx(0.4) and views[1].offset == (0, -25)
        assert np.asarray(views[1].image)[:25].max() == 0


def test_answers_match_what_is_drawn(scenes):
    seen = set()
    for s in scenes:
        image = np.asarray(s.render())
        for qa in s.questions():
            seen.add(qa["type"])
            if qa["type"] == "tiny_count":
                stars = [t for t in s.targets if t.detail == "star"]
                assert qa["answer"] == COUNT_WORDS[len(stars)]
                assert qa["boxes"] == [s.target_box(t) for t in stars]
                assert all(s.objects[t.index].kind == "star" for t in stars)
                continue
            target = next(t for t in s.targets if t.index == qa["target"])
            obj = s.objects[target.index]
            assert qa["question"].endswith(f"the small {obj.colour} {obj.kind}?")
            assert qa["boxes"] == [s.target_box(target)]
            ink, plate = s.ink_mask(target), s.full_masks()[target.index]
            assert (image[ink] == s.ink_colour(target)).all() and (image[plate & ~ink] == COLOURS[obj.colour]).all()
            if qa["type"] == "digit":
                x0, y0, x1, y1 = s.glyph_box(target)
                assert np.array_equal(ink[y0:y1, x0:x1], glyph_mask(qa["answer"], s.glyph_scale))
                assert ink.sum() == glyph_mask(qa["answer"], s.glyph_scale).sum()
                assert read_digit(image, (x0, y0, x1, y1), COLOURS[obj.colour]) == qa["answer"]
            else:
                assert qa["answer"] == ("yes" if ink.any() else "no")
    assert seen == {"digit", "stripe", "tiny_count"}


def test_target_boxes_contain_the_target(scenes):
    for s in scenes:
        full, visible = s.full_masks(), s.visible_masks()
        for t in s.targets:
            x0, y0, x1, y1 = s.target_box(t)
            mask = full[t.index]
            inside = np.zeros_like(mask)
            inside[y0:y1, x0:x1] = True
            assert mask.any() and not (mask & ~inside).any()
            assert mask[y0].any() and mask[y1 - 1].any() and mask[:, x0].any() and mask[:, x1 - 1].any()  # tight
            assert np.array_equal(visible[t.index], mask)  # nothing covers a target
            assert not (s.ink_mask(t) & ~mask).any()  # the detail is on the target
            others = np.delete(full, t.index, axis=0).any(axis=0)
            assert not others[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1].any()  # background around it


def test_views_and_patch_indices(scenes):
    for s in scenes[:20]:
        views = encoder_views(s, view_size=64, patch_size=8)
        assert [v.kind for v in views] == ["global"] + ["tile"] * 4
        assert [(v.row, v.col) for v in views[1:]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert all(v.image.size == (64, 64) for v in views)
        assert np.array_equal(np.asarray(views[0].image), np.asarray(s.render().resize((64, 64), Image.BICUBIC)))
        for i, t in enumerate(s.targets):
            x0, y0, x1, y1 = s.target_box(t)
            g = views[0]
            assert g.boxes[i] == pytest.approx((x0 / 4, y0 / 4, x1 / 4, y1 / 4))
            _assert_patches_cover(g.patches[i], g.boxes[i], 8, 8)
            tile_cells = set()
            for v in views[1:]:
                assert all(0 <= p < 64 for p in v.patches[i])
                if v.boxes[i] is not None:
                    _assert_patches_cover(v.patches[i], v.boxes[i], 8, 8)
                tile_cells |= {(v.row * 8 + p // 8, v.col * 8 + p % 8) for p in v.patches[i]}
            # the four tiles together see exactly the cells of the box at twice the global resolution
            expected = {(r, c) for r in range(y0 // 2 // 8, math.ceil(y1 / 2 / 8))
                        for c in range(x0 // 2 // 8, math.ceil(x1 / 2 / 8))}
            assert tile_cells == expected


def _assert_patches_cover(patches, box, patch, grid):
    u0, v0, u1, v1 = box
    rows, cols = {p // grid for p in patches}, {p % grid for p in patches}
    assert len(patches) == len(rows) * len(cols)  # a rectangle of cells
    assert min(cols) * patch <= u0 and (max(cols) + 1) * patch >= u1
    assert min(rows) * patch <= v0 and (max(rows) + 1) * patch >= v1
    assert (min(cols) + 1) * patch > u0 and max(cols) * patch < u1  # and no more than that


@pytest.mark.parametrize("kwargs, message", [
    ({"max_target_radius": 30.0}, "too large"),
    ({"radius_scale": 0.5}, "too large"),
    ({"min_target_radius": 5.0}, "cannot hold"),
    ({"width": 48}, "smaller than a 64 px view"),
    ({"details": ("digit", "barcode")}, "subset"),
    ({"min_targets": 0}, "min_targets"),
    ({"max_distractors": 40}, "at most 30 objects"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HighResConfig(**kwargs)


def test_views_refuse_bad_sizes():
    scene = generate_highres_scene(0)
    with pytest.raises(ValueError, match="smaller than a 512 px view"):
        encoder_views(scene, view_size=512, patch_size=8)
    with pytest.raises(ValueError, match="patch_size"):
        encoder_views(scene, view_size=64, patch_size=65)


def test_views_with_a_remainder_keep_tokens_on_the_grid():
    """so400m's geometry: 384 px views of 14 px patches, a 27 x 27 grid; the last 6 px are never a token."""
    scene = generate_highres_scene(0, HighResConfig(width=768, height=768, min_target_radius=24,
                                                    max_target_radius=30, glyph_scale=6, stripe_width=3))
    views = encoder_views(scene, view_size=384, patch_size=14)
    assert [v.image.size for v in views] == [(384, 384)] * 5
    assert all(0 <= p < 27 * 27 for v in views for patches in v.patches for p in patches)


def test_template_reader_is_exact_at_full_resolution():
    for scale in (1, 2, 3):
        for digit in DIGIT_FONT:
            glyph = glyph_mask(digit, scale)
            image = np.full((*glyph.shape, 3), COLOURS["red"], np.uint8)
            image[glyph] = (255, 255, 255)
            assert read_digit(image, (0, 0, glyph.shape[1], glyph.shape[0]), COLOURS["red"]) == digit


def test_resolution_separates_global_view_from_tiles(scenes):
    stats = resolution_statistics(scenes)
    assert stats["digits"] >= 30
    assert stats["digit_read_full"] == 1.0
    assert stats["digit_read_tiles"] >= 0.95  # measured 1.0
    assert stats["digit_read_global"] <= 0.45  # measured ~0.28 (chance 0.1)
    assert stats["global_one_patch"] >= 0.2 and stats["tiles_one_patch"] <= 0.05  # measured ~0.3 vs ~0.01
    assert stats["tiles_patches"] >= 1.5 * stats["global_patches"]  # measured ~3.9 vs ~2.1
    assert stats["ink_digit_tiles"] >= stats["ink_digit_global"] + 0.2  # measured ~0.76 vs ~0.47
    assert stats["ink_stripe_tiles"] > stats["ink_stripe_global"]


def test_texts_use_the_vocabulary(scenes):
    words = set(highres_vocabulary())
    for s in scenes[:20]:
        texts = [s.caption(), s.caption(details=True)] + [q["question"] + " " + q["answer"] for q in s.questions()]
        for text in texts:
            assert set(split_words(text)) <= words, text
        assert s.caption().startswith(COUNT_WORDS[len(s.objects)] + " shapes:")
        assert s.caption().count("small") + s.caption().count("tiny") == len(s.targets)
