"""Chapter 5's selectors, data and tiny LaViDa model: budgets, order, recall, layout counts, round trips."""
import numpy as np
import pytest
import torch

from lisalib.shirg import select as sel
from lisalib.shirg.data import box_tokens, query_texts, scene_samples
from lisalib.world import encoder_views, generate_highres_scene


def test_budget_split_and_errors():
    assert sel.view_budgets(80, 5, 64) == [16] * 5
    assert sel.view_budgets(82, 5, 64) == [17, 17, 16, 16, 16]
    for bad in (0, 321):
        with pytest.raises(ValueError, match="budget"):
            sel.view_budgets(bad, 5, 64)
    with pytest.raises(ValueError, match="unknown selector"):
        sel.select("topk", 80)
    with pytest.raises(ValueError, match="relevance"):
        sel.select("text", 80)
    with pytest.raises(ValueError, match="probe"):
        sel.select("saliency", 80)


@pytest.mark.parametrize("k", [16, 40, 80, 161, 320])
def test_every_selector_keeps_exactly_k(k):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 64))
    for name in sel.SELECTORS:
        mask = sel.select(name, k, saliency=scores, scores=scores, rng=rng)
        assert mask.shape == (5, 64) and mask.sum() == k, name


def test_uniform_is_pooling_lattice_and_text_follows_scores():
    mask = sel.uniform_selection(80)
    rows, cols = np.nonzero(mask[0].reshape(8, 8))
    assert set(rows) == set(cols) == {1, 3, 5, 7}  # one token of each 2x2 block
    assert sel.grid_coverage(mask) == 1.0
    scores = np.zeros((5, 64))
    scores[2, 10:30] = 5.0  # one view holds everything relevant
    strict = sel.text_selection(scores, 40, coverage=1.0)
    assert strict.sum(1).tolist() == [8] * 5
    greedy = sel.text_selection(scores, 40, coverage=0.0)
    assert greedy[2, 10:30].all() and greedy.sum() == 40
    mixed = sel.text_selection(scores, 40, coverage=0.25)
    assert mixed[2, 10:30].all() and (mixed.sum(1) >= 2).all()
    with pytest.raises(ValueError, match="coverage"):
        sel.text_selection(scores, 40, coverage=1.5)


def test_recall_uniqueness_edge_cases():
    target = np.zeros((5, 64), bool)
    assert np.isnan(sel.recall(np.ones((5, 64), bool), target))  # no target tokens: undefined, not 0 or 1
    target[1, :4] = True
    mask = np.zeros((5, 64), bool)
    mask[1, :2] = True
    assert sel.recall(mask, target) == 0.5
    features = torch.randn(5, 64, 8)
    features[2] = features[1]  # a repeated view, as the seed plan's
    both = np.zeros((5, 64), bool)
    both[1, :10] = both[2, :10] = True
    assert sel.uniqueness(both, features) == 0.5
    assert sel.uniqueness(mask, features) == 1.0


def test_query_texts():
    assert query_texts("which digit is on the small red square?") == ["the small red square"]
    assert query_texts("is there a stripe on the small blue circle?") == ["the small blue circle"]
    stars = query_texts("how many tiny stars are there?")
    assert "the tiny red star" in stars and len(stars) > 3
    assert query_texts("what is this?") == ["what is this?"]


def test_target_tokens_match_the_views_patches():
    scene = generate_highres_scene((9100, 3))
    views = encoder_views(scene)
    for i, target in enumerate(scene.targets):
        touched = box_tokens(views, scene.target_box(target))
        for v, view in enumerate(views):
            assert sorted(np.flatnonzero(touched[v])) == sorted(view.patches[i])
    samples = scene_samples(scene, views, 0)
    assert {s.type for s in samples} >= {"tiny_count"} and all(s.target_tokens.shape == (5, 64) for s in samples)
