"""Chapter 5's detail stage: token labels from the glyph and circle boxes, and a tower copy trained in place."""
import numpy as np
import pytest
import torch

from lisalib.shirg.tower import (CLASSES, NONE, DetailRecipe, detail_config, detail_data, detail_labels,
                                 train_detail_tower)
from lisalib.world import encoder_views, generate_highres_scene
from lisalib.zoo import load_siglip


def _scene_with(detail: str, recipe: DetailRecipe = DetailRecipe()):
    for i in range(50):
        scene = generate_highres_scene((1, i), detail_config(recipe))
        if any(t.detail == detail for t in scene.targets):
            return scene
    raise AssertionError(f"no scene with a {detail}")


def test_digit_tokens_carry_the_digit_and_global_views_weigh_nothing():
    scene = _scene_with("digit")
    views = encoder_views(scene)
    label, weight = detail_labels(scene, views, min_share=0.15, none_weight=0.05)
    assert label.shape == weight.shape == (5, 64)
    assert views[0].kind == "global" and (weight[0] == 0).all() and (label[0] == NONE).all()
    digits = {t.digit for t in scene.targets if t.detail == "digit"}
    labelled = {CLASSES[c] for c in np.unique(label[1:]) if c != NONE}
    assert digits <= labelled  # every digit's glyph is labelled in the tile that holds it
    assert set(np.unique(weight[1:])) <= {0.05, 1.0}
    assert ((weight[1:] == 1.0) == (label[1:] != NONE)).all()
    # a glyph (3 x 5 view px) never lights more than 4 tokens of one tile
    for t in scene.targets:
        if t.detail == "digit":
            assert 1 <= (label[1:] == int(t.digit)).sum() <= 4 * sum(1 for u in scene.targets if u.digit == t.digit)


def test_stripe_classes_and_min_share():
    scene = _scene_with("stripe")
    views = encoder_views(scene)
    loose, _ = detail_labels(scene, views, 0.0, 0.05)
    strict, _ = detail_labels(scene, views, 0.5, 0.05)
    assert {CLASSES[c] for c in np.unique(loose) if c != NONE} & {"plain", "striped"}
    assert (strict != NONE).sum() <= (loose != NONE).sum()


def test_detail_data_shapes():
    data = detail_data(DetailRecipe(scenes=3), 64, 8, progress=False)
    assert data["pixels"].shape == (3, 4, 3, 64, 64) and data["pixels"].dtype == torch.uint8
    assert data["labels"].shape == data["weights"].shape == (3, 4, 64)


def test_train_detail_tower_trains_a_copy_and_leaves_the_dropped_layer_alone():
    siglip, _ = load_siglip("tiny-siglip")
    before = {k: v.clone() for k, v in siglip.state_dict().items()}
    tower, record = train_detail_tower(siglip, DetailRecipe(scenes=8, steps=3, batch=2), progress=False)
    assert all(torch.equal(v, siglip.state_dict()[k]) for k, v in before.items())  # the original is untouched
    last = len(siglip.vision_model.encoder.layers) - 1
    changed = {k for k, v in tower.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("vision_model.encoder.layers.0.") for k in changed)
    assert not any(k.startswith((f"vision_model.encoder.layers.{last}.", "vision_model.head.",
                                 "vision_model.post_layernorm.", "text_model.")) for k in changed)
    assert record["tiles"] == 32 and record["labelled_tokens"] > 0 and np.isfinite(record["final_loss"])
    assert not any(p.requires_grad for p in tower.parameters())
