"""Token selectors: which K of the multi-view tokens reach the projector, at the budget pooling would leave.

A selection is a ``[n_views, tokens_per_view]`` bool map, so its tokens are always read in (view, row, col)
order (``topk`` order would lose the layout the LLM's newline tokens and positions describe). Every selector
splits the budget over the views first (HiRED's idea): ``K // n_views`` each, the remainder to the first views.
Selection runs once per image and question, before the projector: LaViDa's prefix-DLM caches the keys and
values of the image and prompt once for all denoising steps, which only works if the tokens do not change
between steps (per-step pruning inside the LLM, FastV-style, would invalidate that cache at every step).
"""
from __future__ import annotations

import math

import numpy as np
import torch

SELECTORS = ("uniform", "random", "saliency", "text")


def view_budgets(k: int, n_views: int, per_view: int) -> list[int]:
    """Tokens each view keeps: ``k // n_views`` each, the remainder to the first views; clear error past the total."""
    if not 0 < k <= n_views * per_view:
        raise ValueError(f"budget K={k} must be in 1..{n_views * per_view} ({n_views} views x {per_view} tokens)")
    base, extra = divmod(k, n_views)
    return [base + (v < extra) for v in range(n_views)]


def _lattice(m: int, grid: int) -> np.ndarray:
    """``m`` token indices of a grid x grid view spread evenly (a sub-lattice when m is a square)."""
    side = int(round(math.sqrt(m)))
    if side * side == m:
        lines = ((np.arange(side) + 0.5) * grid / side).astype(int)
        return (lines[:, None] * grid + lines[None, :]).ravel()
    return ((np.arange(m) + 0.5) * grid * grid / m).astype(int)


def uniform_selection(k: int, n_views: int = 5, grid: int = 8) -> np.ndarray:
    """A fixed stride over each view (at the default budget, every other row and column: pooling's layout,
    but keeping one original token of each 2x2 block instead of their blend)."""
    mask = np.zeros((n_views, grid * grid), bool)
    for v, m in enumerate(view_budgets(k, n_views, grid * grid)):
        mask[v, _lattice(m, grid)] = True
    return mask


def random_selection(k: int, rng: np.random.Generator, n_views: int = 5, grid: int = 8) -> np.ndarray:
    """``m`` tokens per view drawn uniformly without replacement (seed the generator for a fixed draw)."""
    mask = np.zeros((n_views, grid * grid), bool)
    for v, m in enumerate(view_budgets(k, n_views, grid * grid)):
        mask[v, rng.choice(grid * grid, m, replace=False)] = True
    return mask


def top_per_view(scores, k: int) -> np.ndarray:
    """The ``m`` best-scoring tokens of each view (``scores``: [n_views, tokens]); ties broken by position."""
    scores = np.asarray(scores, dtype=np.float64)
    mask = np.zeros(scores.shape, bool)
    for v, m in enumerate(view_budgets(k, *scores.shape)):
        mask[v, np.argsort(-scores[v], kind="stable")[:m]] = True
    return mask


def saliency_selection(saliency, k: int) -> np.ndarray:
    """Text-agnostic: each view's tokens the pooling head's probe attends to most (VisionZip / HiRED with
    SigLIP's probe in place of a CLS token); the same tokens whatever the question."""
    return top_per_view(saliency, k)


def relevance(patch_text: torch.Tensor, queries: torch.Tensor) -> np.ndarray:
    """[n_views, tokens] text relevance: the best cosine between each token (in SigLIP's joint space) and
    any of the question's query phrases (``queries``: [Q, C], normalised)."""
    return (patch_text @ queries.T).amax(-1).numpy()


def text_selection(scores, k: int, coverage: float = 0.25) -> np.ndarray:
    """Text relevance with a coverage term: each view first keeps its ``round(coverage * K / n_views)`` most
    relevant tokens (so no view, and with it no part of the image, vanishes from the LLM's input); the rest
    of the budget goes to the most relevant tokens anywhere. ``coverage=1`` is a strict per-view budget,
    ``coverage=0`` a plain global top-K. Scores are z-scored over the image first, so the split does not
    depend on the scale of the cosines."""
    if not 0.0 <= coverage <= 1.0:
        raise ValueError(f"coverage must be in [0, 1], not {coverage}")
    scores = np.asarray(scores, dtype=np.float64)
    n_views, per_view = scores.shape
    view_budgets(k, n_views, per_view)  # validates k
    z = (scores - scores.mean()) / (scores.std() + 1e-12)
    floor = min(int(round(coverage * k / n_views)), per_view)
    mask = np.zeros(scores.shape, bool)
    for v in range(n_views):
        mask[v, np.argsort(-z[v], kind="stable")[:floor]] = True
    rest = k - int(mask.sum())
    order = np.argsort(np.where(mask, -np.inf, z).ravel(), kind="stable")[::-1][:rest]
    mask.ravel()[order] = True
    return mask


def select(name: str, k: int, *, saliency=None, scores=None, rng: np.random.Generator | None = None,
           n_views: int = 5, grid: int = 8, coverage: float = 0.25) -> np.ndarray:
    """Dispatch by name (:data:`SELECTORS`); ``saliency`` for "saliency", ``scores`` (text relevance) for "text"."""
    if name == "uniform":
        return uniform_selection(k, n_views, grid)
    if name == "random":
        return random_selection(k, rng if rng is not None else np.random.default_rng(0), n_views, grid)
    if name == "saliency":
        if saliency is None:
            raise ValueError("the saliency selector needs the probe attention (saliency=...)")
        return saliency_selection(saliency, k)
    if name == "text":
        if scores is None:
            raise ValueError("the text selector needs relevance scores (scores=...)")
        return text_selection(scores, k, coverage)
    raise ValueError(f"unknown selector {name!r}; choose from {', '.join(SELECTORS)}")


def recall(mask: np.ndarray, target: np.ndarray) -> float:
    """Share of the target's tokens kept (NaN when the question has no target tokens, e.g. zero tiny stars)."""
    total = int(target.sum())
    return float((mask & target).sum() / total) if total else float("nan")


def grid_coverage(mask: np.ndarray, cell: int = 2) -> float:
    """Share of each view's ``cell`` x ``cell`` blocks (pooling's cells; the last ones smaller when the grid
    is odd, as so400m's 27) that keep at least one token."""
    n_views, tokens = mask.shape
    grid = int(round(math.sqrt(tokens)))
    side = -(-grid // cell)
    block = (np.arange(grid)[:, None] // cell) * side + np.arange(grid)[None, :] // cell
    kept = np.zeros((n_views, side * side), bool)
    for v in range(n_views):
        kept[v, np.unique(block.ravel()[mask[v]])] = True
    return float(kept.mean())


def uniqueness(mask: np.ndarray, features: torch.Tensor, decimals: int = 4) -> float:
    """Distinct feature rows among the kept tokens / K (1.0 unless views repeat one another, as the seed plan's do)."""
    kept = features.reshape(-1, features.shape[-1])[torch.from_numpy(mask.ravel())]
    return float(torch.unique(torch.round(kept, decimals=decimals), dim=0).shape[0] / max(len(kept), 1))
