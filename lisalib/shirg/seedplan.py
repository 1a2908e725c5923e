"""The SHIRG seed plan's multi-view extraction, rebuilt with real tensors so its bugs come out as numbers.

The plan makes "4 x 336^2 + 1 x 672^2" views by ``F.interpolate`` of the one 384 px tensor the tower gets,
concatenates 4 x 576 + 2304 = 4608 patch tokens, slices ``[:3645]`` and scores tokens against LLaDA text
embeddings. Here tokens are the views' raw 14 px pixel patches: any per-view deterministic encoder maps
identical views to identical tokens, so uniqueness and information counts carry over to SigLIP features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lisalib.shirg.cost import LLADA_8B, VISION_WIDTH
from lisalib.shirg.layout import PATCH_SIZE, VIEW_SIZE, token_counts

SMALL, LARGE, COPIES = 336, 672, 4  # the plan's view sizes and the number of "336 views"
SCORE_WEIGHTS = (0.7, 0.3)  # the plan's variance / text-similarity mix


def seed_views(image: torch.Tensor, small: int = SMALL, large: int = LARGE, copies: int = COPIES) -> list:
    """The plan's views: ``copies`` bilinear resizes of ``image`` [B, 3, H, W] to ``small`` and one to ``large``."""
    resize = lambda size: F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)  # noqa: E731
    return [resize(small) for _ in range(copies)] + [resize(large)]


def patch_tokens(view: torch.Tensor, patch: int = PATCH_SIZE) -> torch.Tensor:
    """[B, 3, S, S] -> [B, (S // patch)^2, 3 * patch^2] row-major pixel patches (a stand-in for the encoder)."""
    return F.unfold(view, kernel_size=patch, stride=patch).transpose(1, 2)


def unique_count(tokens: torch.Tensor) -> int:
    """Distinct rows of a [N, D] token matrix."""
    return int(torch.unique(tokens, dim=0).shape[0])


def seed_score(tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The plan's score 0.7 var(token) + 0.3 max_t token . text_t (unnormalised); text must share the width."""
    return SCORE_WEIGHTS[0] * tokens.var(dim=-1) + SCORE_WEIGHTS[1] * (tokens @ text.T).max(dim=-1).values


def interpolation_matrix(source: int, target: int) -> torch.Tensor:
    """[target, source]: 1D bilinear resize (align_corners=False) as a matrix; F.interpolate's 2D bilinear
    resize is ``U @ X @ U.T`` per channel."""
    eye = torch.eye(source, dtype=torch.float64).unsqueeze(0)  # [1, source (channels = basis), source]
    return F.interpolate(eye, size=target, mode="linear", align_corners=False)[0].T


def _unique_bounds(k: int, small: int, n_large: int) -> dict:
    """Fewest / most distinct tokens a top-k can keep from COPIES x ``small`` duplicates + ``n_large`` tokens."""
    fewest = -(-k // COPIES) if k <= COPIES * small else small + (k - COPIES * small)
    most = k if k <= n_large else n_large + -(-(k - n_large) // COPIES)
    return {"top_k_unique_min": fewest, "top_k_unique_max": most}


def _identical_views(views, tokens, generator, grid, patch, top_k) -> dict:
    all_tokens = torch.cat(tokens, dim=1)[0]
    text = torch.randn(8, all_tokens.shape[1], generator=generator)
    picked = all_tokens[seed_score(all_tokens, text).topk(top_k).indices]
    small_unique, n_large = tokens[0].shape[1], tokens[-1].shape[1]
    return {
        "bug": "the four '336 views' are F.interpolate resizes of the same input: identical tensors",
        "views_identical": all(torch.equal(views[0], v) for v in views[1:COPIES]),
        "tokens": all_tokens.shape[0], "unique_tokens": unique_count(all_tokens),
        "tokens_per_small_view": small_unique, "tokens_large_view": n_large,
        "top_k": top_k, "top_k_unique": unique_count(picked),
        # a duplicated token costs COPIES slots: bounds, and the mean if scores were exchangeable
        **_unique_bounds(top_k, small_unique, n_large),
        "top_k_unique_expected": top_k * (small_unique + n_large) / all_tokens.shape[0],
        # the tower's position table has grid^2 entries (so400m: 729); other view sizes need interpolation
        "native_tokens_per_view": grid * grid,
        "needs_position_interpolation": any(v.shape[-1] // patch != grid for v in views),
    }


def _upsampled_large(image: torch.Tensor, large_view: torch.Tensor, patch: int) -> dict:
    source, target = image.shape[-1], large_view.shape[-1]
    up = interpolation_matrix(source, target)
    again = torch.einsum("ts,bcsr,ur->bctu", up, image.double(), up)  # the separable form of F.interpolate
    back = torch.linalg.pinv(up)
    recovered = torch.einsum("st,bctu,ru->bcsr", back, large_view.double(), back)
    plain_down = F.interpolate(large_view, size=(source, source), mode="bilinear", align_corners=False, antialias=True)
    return {
        "bug": f"the {target} view is an upsample of the {source} px tensor the tower receives: no new pixels",
        "input_px": source, "view_px": target, "upscale": target / source, "area_upscale": (target / source) ** 2,
        "tokens": (target // patch) ** 2, "input_px_per_patch": patch * source / target,
        "separable_max_error": float((again - large_view.double()).abs().max()),  # float32 rounding only
        "matrix_rank": int(torch.linalg.matrix_rank(up)),  # = source: the view spans only the input's pixels
        "pinv_recovery_max_error": float((recovered - image.double()).abs().max()),
        "plain_downsample_max_error": float((plain_down - image).abs().max()),
    }


def _slice(tokens, keep: int, top_k: int, generator) -> dict:
    small, n_large = tokens[0].shape[1], tokens[-1].shape[1]
    ids = torch.cat([torch.arange(small)] * COPIES + [small + torch.arange(n_large)])[:keep]
    kept_large = int((ids >= small).sum())
    side = int(round(n_large**0.5))
    sliced = torch.cat(tokens, dim=1)[0, :keep]
    text = torch.randn(8, sliced.shape[1], generator=generator)
    return {
        "bug": f"[:{keep}] of {COPIES}x{small} + {n_large} tokens keeps every duplicate and cuts the large view",
        "concatenated": COPIES * small + n_large, "kept": keep,
        "duplicate_slots": COPIES * small, "repeated_slots": (COPIES - 1) * small,
        "large_view_kept": kept_large, "large_view_dropped": n_large - kept_large,
        "large_view_full_rows": kept_large // side, "large_view_rows": side,
        "large_view_row_fraction": kept_large / n_large,
        "unique_ids": int(torch.unique(ids).numel()), "unique_tokens": unique_count(sliced),
        "unique_fraction": unique_count(sliced) / keep,
        "top_k": top_k, "top_k_unique": unique_count(sliced[seed_score(sliced, text).topk(top_k).indices]),
        "top_k_unique_expected": top_k * unique_count(sliced) / keep,
    }


def _text_space(generator) -> dict:
    patches = torch.randn(1, 4, VISION_WIDTH, generator=generator)
    text = torch.randn(1, 3, LLADA_8B["d_model"], generator=generator)
    try:
        torch.matmul(patches, text.transpose(1, 2))
        error = None
    except RuntimeError as exc:
        error = str(exc).splitlines()[0]
    return {
        "bug": "patch tokens (SigLIP width) scored against LLaDA token embeddings: two different spaces",
        "patch_dim": VISION_WIDTH, "text_dim": LLADA_8B["d_model"], "matmul_error": error,
        "fix": "project patches with mm_projector (1152 -> 4096) before comparing with LLaDA input embeddings; "
               "SigLIP's own 1152-d text space exists only after its pooling head, not per patch",
    }


def seed_plan_bugs(seed: int = 0, size: int = VIEW_SIZE, patch: int = PATCH_SIZE) -> dict:
    """One dict per bug: ``identical_views``, ``upsampled_large``, ``slice_3645``, ``text_space``, computed on
    a random ``size`` px image (LaViDa's view: 384 px, 14 px patches; tiny world: 64, 8) through the plan's
    own resizes, scaled with ``size`` (384 -> 336 / 672; 64 -> 56 / 112). The slice keeps 5 views' worth of
    tokens (5 x 27^2 = 3645; tiny 5 x 8^2 = 320) and the top-k takes LaViDa's pooled budget (5 x 14^2 = 980).
    """
    if size * SMALL % VIEW_SIZE or size * LARGE % VIEW_SIZE:
        raise ValueError(f"size {size} does not scale the plan's {SMALL}/{LARGE} px views to whole pixels")
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=generator)
    views = seed_views(image, size * SMALL // VIEW_SIZE, size * LARGE // VIEW_SIZE)
    tokens = [patch_tokens(v, patch) for v in views]
    lavida = token_counts(2 * size, 2 * size, ((2 * size, 2 * size),), size, patch)  # 1 global + 2x2 crops
    grid, keep, top_k = lavida["grid"], lavida["raw"], lavida["pooled"]
    return {
        "identical_views": _identical_views(views, tokens, generator, grid, patch, top_k),
        "upsampled_large": _upsampled_large(image, views[-1], patch),
        "slice_3645": _slice(tokens, keep, top_k, generator),
        "text_space": _text_space(generator),
    }


def describe(bugs: dict | None = None) -> str:
    """The four bugs in a few lines."""
    b = bugs or seed_plan_bugs()
    a, u, s, t = b["identical_views"], b["upsampled_large"], b["slice_3645"], b["text_space"]
    return "\n".join([
        f"1. {a['bug']}: {a['tokens']} tokens, {a['unique_tokens']} distinct; top-{a['top_k']} of them keeps "
        f"{a['top_k_unique']} distinct (bounds {a['top_k_unique_min']}-{a['top_k_unique_max']}, "
        f"~{a['top_k_unique_expected']:.0f} for exchangeable scores).",
        f"2. {u['bug']}: x{u['upscale']:g} per side ({u['area_upscale']:g}x the pixels, rank {u['matrix_rank']} of "
        f"{u['view_px']}); the input comes back up to float32 rounding (max error {u['pinv_recovery_max_error']:.1e}).",
        f"3. {s['bug']}: {s['duplicate_slots']} duplicate slots + the first {s['large_view_kept']} of "
        f"{s['concatenated'] - s['duplicate_slots']} large-view tokens (top {100 * s['large_view_row_fraction']:.1f}% "
        f"of its rows); {s['unique_tokens']}/{s['kept']} distinct, of which a top-{s['top_k']} keeps "
        f"{s['top_k_unique']} distinct.",
        f"4. {t['bug']}: {t['patch_dim']} vs {t['text_dim']} dims, matmul fails ({t['matmul_error']}).",
    ])
