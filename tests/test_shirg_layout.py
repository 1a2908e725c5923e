"""lisalib.shirg.layout and .seedplan: LaViDa's views, tokens, pooling and LLM counts; the seed plan's bugs."""
import copy

import numpy as np
import pytest
import torch
from torch import nn
from transformers import SiglipConfig, SiglipModel, SiglipVisionConfig, SiglipVisionModel

from lisalib.shirg import (LAVIDA_PINPOINTS, STAGE2_PINPOINTS, anyres_views, divide_to_patches, lavida_features,
                           letterbox_geometry, llm_layout, merge_spatial_unpad, pool_2d, pool_then_project,
                           pooled_grid, project_then_pool, resize_and_pad, seed_plan_bugs, select_best_resolution,
                           so400m_vision_config, token_counts, token_layout, truncated_tower, unpad_slices)
from lisalib.shirg.seedplan import describe
from lisalib.world import generate_highres_scene
from lisalib.world.highres import encoder_views

COUNTS = [  # reference table: image, pinpoints, views, raw, pooled, llm
    ((768, 768), LAVIDA_PINPOINTS, 5, 3645, 980, 1008),
    ((768, 768), STAGE2_PINPOINTS, 5, 3645, 980, 1008),
    ((640, 480), LAVIDA_PINPOINTS, 5, 3645, 980, 834),
    ((640, 480), STAGE2_PINPOINTS, 5, 3645, 980, 834),
    ((1000, 500), LAVIDA_PINPOINTS, 5, 3645, 980, 602),
    ((1000, 500), STAGE2_PINPOINTS, 3, 2187, 588, 602),
    ((1500, 400), LAVIDA_PINPOINTS, 5, 3645, 980, 428),
    ((1500, 400), STAGE2_PINPOINTS, 4, 2916, 784, 712),
]


@pytest.mark.parametrize("size, pinpoints, views, raw, pooled, llm", COUNTS)
def test_token_counts_match_reference_table(size, pinpoints, views, raw, pooled, llm):
    counts = token_counts(*size, pinpoints)
    assert (counts["views"], counts["raw"], counts["pooled"], counts["llm"]) == (views, raw, pooled, llm)
    assert counts["grid"] == 27 and counts["pooled_grid"] == 14
    order = llm_layout(*size, pinpoints)
    assert len(order) == llm and sum(item is None for item in order) == counts["newlines"]
    merged = merge_spatial_unpad(torch.randn(views, 196, 3), order, torch.zeros(3))
    assert merged.shape == (llm, 3)


def test_best_resolution_and_unpad_rules():
    assert select_best_resolution((1000, 500), STAGE2_PINPOINTS) == (768, 384)
    assert select_best_resolution((1500, 400), STAGE2_PINPOINTS) == (1152, 384)
    assert select_best_resolution((400, 1500), STAGE2_PINPOINTS) == (384, 1152)
    assert select_best_resolution((640, 480), STAGE2_PINPOINTS) == (768, 768)
    # 480 * 28 / 640 = 21 rows of image, but the symmetric cut (28 - 21) // 2 = 3 leaves 22
    assert unpad_slices((640, 480), (28, 28)) == (slice(3, 25), slice(0, 28))
    assert unpad_slices((480, 640), (28, 28)) == (slice(0, 28), slice(3, 25))
    assert token_counts(480, 640)["llm"] == 196 + 28 * 23
    assert letterbox_geometry((640, 480), (768, 768)) == ((768, 576), (0, 96))


def test_729_tokens_per_view_and_unseen_strip():
    layout = token_layout(768, 768)
    assert layout.grid == 27 and layout.seen_px == 378 and layout.unseen_px == 6
    index = layout.index()
    assert len(layout.tokens) == 3645 and np.bincount(index[:, 0]).tolist() == [729] * 5
    assert [tuple(r) for r in index[:3]] == [(0, 0, 0), (0, 0, 1), (0, 0, 2)]  # (view, row, col) order
    boxes = layout.boxes()
    assert boxes[0].tolist() == [0, 0, 28, 28]  # global view: 384 px for 768, a token spans 28 image px
    assert boxes[729].tolist() == [0, 0, 14, 14]  # first crop: 1:1
    tiles = boxes[729:]
    assert tiles[:, 2].max() == 384 + 378 and tiles[:, 3].max() == 762  # the last 6 px never reach a token
    assert boxes[:729, 2].max() == 756  # the global view misses 12 image px (6 view px at scale 1/2)
    assert not any(t.covers_padding for t in layout.tokens)


def test_letterbox_padding_is_flagged():
    layout = token_layout(640, 480)  # canvas 768x768, image 768x576 at y = 96
    tokens = {(t.view, t.row, t.col): t for t in layout.tokens}
    assert tokens[(1, 0, 0)].padding == 1.0 and tokens[(1, 0, 0)].box[3] == 0  # all padding: empty box
    assert tokens[(1, 6, 0)].padding == pytest.approx(12 / 14)  # canvas rows 84..98: 2 of 14 are image
    assert tokens[(1, 7, 0)].padding == 0 and tokens[(1, 7, 0)].box[1] == pytest.approx((98 - 96) / 1.2)
    assert all(t.padding == 0 for t in layout.tokens[:729])  # the global view is stretched, never padded
    assert sum(t.covers_padding for t in layout.tokens) == 4 * 27 * 7  # rows 0-6 of the top crops, 20-26 bottom


def test_anyres_views_match_the_tiny_world_views():
    scene = generate_highres_scene(0)
    ours = anyres_views(scene.render(), ((128, 128),), 64)
    theirs = encoder_views(scene)
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        assert (a.kind, a.row, a.col) == (b.kind, b.row, b.col)
        assert a.scale == pytest.approx(b.scale) and a.offset == pytest.approx(b.offset)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    # the tokens a target's box touches are the patches the tiny world lists
    layout = token_layout(256, 256, ((128, 128),), 64, 8)
    for v, view in enumerate(theirs):
        for box, patches in zip([scene.target_box(t) for t in scene.targets], view.patches):
            touched = [t.row * 8 + t.col for t in layout.tokens if t.view == v and t.box[0] < box[2]
                       and box[0] < t.box[2] and t.box[1] < box[3] and box[1] < t.box[3]]
            assert touched == patches


def test_views_of_a_wide_image():
    from PIL import Image

    image = Image.new("RGB", (1000, 500), (200, 10, 10))
    views = anyres_views(image, STAGE2_PINPOINTS)
    assert [(v.kind, v.row, v.col) for v in views] == [("global", 0, 0), ("tile", 0, 0), ("tile", 0, 1)]
    assert all(v.image.size == (384, 384) for v in views)
    assert views[2].to_image(0, 0) == pytest.approx((500, 0))
    padded = resize_and_pad(Image.new("RGB", (640, 480), "white"), (768, 768))
    assert padded.getpixel((10, 50)) == (0, 0, 0) and padded.getpixel((10, 400)) == (255, 255, 255)
    assert len(divide_to_patches(padded, 384)) == 4


def test_pooling_and_projection_order():
    assert pooled_grid(27) == 14 and pooled_grid(27, mode="average") == 13 and pooled_grid(8) == 4
    torch.manual_seed(0)
    features = torch.randn(2, 27 * 27, 16)
    assert pool_2d(features, 27).shape == (2, 196, 16)
    assert pool_2d(features, 27, mode="average").shape == (2, 169, 16)
    projector = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 24))
    lavida = project_then_pool(features, projector, 27)
    paper = pool_then_project(features, projector, 27)
    assert lavida.shape == paper.shape == (2, 196, 24)
    assert not torch.allclose(lavida, paper, atol=1e-3)  # GELU does not commute with pooling
    linear = nn.Linear(16, 24)  # bilinear weights sum to 1, so an affine map commutes
    assert torch.allclose(project_then_pool(features, linear, 27), pool_then_project(features, linear, 27), atol=1e-5)


def _tiny_vision(layers=3):
    torch.manual_seed(0)
    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                                image_size=56, patch_size=14)
    return SiglipVisionModel(config).eval()


def test_truncated_tower_reads_the_full_towers_penultimate_layer():
    full = _tiny_vision()
    tower = truncated_tower(copy.deepcopy(full))
    assert len(tower.encoder.layers) == 2 and isinstance(tower.head, nn.Identity)
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        reference = full(pixel_values=pixels, output_hidden_states=True)
        ours = lavida_features(tower, pixels)
        out = tower(pixel_values=pixels, output_hidden_states=True)
    assert len(reference.hidden_states) == 4 and ours.shape == (2, 16, 32)
    torch.testing.assert_close(ours, reference.hidden_states[-2], atol=1e-6, rtol=0)
    assert not torch.allclose(out.last_hidden_state, ours)  # last_hidden_state is post-layernorm
    assert torch.allclose(out.pooler_output, out.last_hidden_state)  # Identity head


def test_truncated_tower_on_a_siglip_model():
    config = SiglipConfig(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=4, vocab_size=20),
                          vision_config=_tiny_vision().config.to_dict())
    model = truncated_tower(SiglipModel(config))
    assert len(model.vision_model.encoder.layers) == 2 and isinstance(model.vision_model.head, nn.Identity)


def test_real_size_so400m_on_meta():
    config = so400m_vision_config()
    assert (config.hidden_size, config.num_hidden_layers, config.image_size, config.patch_size) == (1152, 27, 384, 14)
    with torch.device("meta"):
        model = SiglipVisionModel(config)
    assert len(model.encoder.layers) == 27 and model.embeddings.position_embedding.num_embeddings == 729
    assert sum(p.numel() for p in model.parameters()) == 428_225_600
    truncated_tower(model)
    assert len(model.encoder.layers) == 26 and isinstance(model.head, nn.Identity)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        token_counts(0, 480)
    with pytest.raises(ValueError, match="positive"):
        token_layout(-5, 480)
    with pytest.raises(ValueError, match="larger than view_size"):
        token_layout(768, 768, view_size=14, patch_size=16)
    with pytest.raises(ValueError, match="not a multiple of view_size"):
        token_counts(768, 768, ((700, 768),))
    with pytest.raises(ValueError, match="at least one"):
        select_best_resolution((10, 10), [])
    with pytest.raises(ValueError, match="pool mode"):
        pooled_grid(27, mode="median")
    with pytest.raises(ValueError, match=r"\[B, 729, D\]"):
        pool_2d(torch.zeros(1, 700, 4), 27)
    with pytest.raises(ValueError, match="two encoder layers"):
        truncated_tower(_tiny_vision(layers=1))


def test_seed_plan_bugs_real_size():
    bugs = seed_plan_bugs()
    a, u, s, t = bugs["identical_views"], bugs["upsampled_large"], bugs["slice_3645"], bugs["text_space"]
    assert a["views_identical"] and (a["tokens"], a["unique_tokens"]) == (4608, 2880)
    assert (a["top_k_unique_min"], a["top_k_unique_max"]) == (245, 980) and a["top_k_unique_expected"] == 612.5
    assert 245 <= a["top_k_unique"] < 980 and a["needs_position_interpolation"]
    assert (u["upscale"], u["area_upscale"], u["matrix_rank"], u["tokens"]) == (1.75, 3.0625, 384, 2304)
    assert u["pinv_recovery_max_error"] < 1e-3 < u["plain_downsample_max_error"] and u["separable_max_error"] < 1e-4
    assert (s["concatenated"], s["kept"], s["duplicate_slots"], s["large_view_kept"]) == (4608, 3645, 2304, 1341)
    assert s["unique_tokens"] == s["unique_ids"] == 1917 and round(100 * s["large_view_row_fraction"], 1) == 58.2
    assert s["large_view_full_rows"] == 27 and s["top_k_unique"] < 980
    assert (t["patch_dim"], t["text_dim"]) == (1152, 4096) and t["matmul_error"]
    assert "1917/3645" in describe(bugs)


def test_seed_plan_bugs_tiny_size():
    bugs = seed_plan_bugs(size=64, patch=8)
    assert bugs["identical_views"]["unique_tokens"] == 49 + 196
    assert bugs["slice_3645"]["kept"] == 320 and bugs["slice_3645"]["unique_tokens"] == 49 + 124
    assert bugs["upsampled_large"]["matrix_rank"] == 64
