"""LaViDa's multi-view image layout, re-implemented and parametrised: views, tokens, pooling, LLM-side counts.

LaViDa (``process_anyres_image``) picks the best pinpoint canvas for an image (LLaVA's rule), letterboxes
the image into it, cuts it into ``view_size`` crops row-major and puts a plain resize of the whole image
first (aspect distorted): ``[global] + crops``. SigLIP so400m/14 sees 27x27 = 729 tokens per 384 px view
(27 * 14 = 378: the last 6 px of every view are never seen), the projector maps them to the LLM width,
bilinear 2D pooling takes 27 -> ceil(27/2) = 14, and ``spatial_unpad`` tiles the crops' pooled maps,
crops them back to the image's aspect and adds a newline token per row. Everything here takes
``(view_size, patch_size)``, so the same code serves the real size (384, 14) and the tiny world (64, 8).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

VIEW_SIZE = 384  # SigLIP so400m/14-384 input
PATCH_SIZE = 14
LAVIDA_PINPOINTS = ((768, 768),)  # llava/train/sanity_test.py and the SHIRG fork: always 1 global + 2x2 crops
STAGE2_PINPOINTS = ((384, 768), (768, 384), (768, 768), (1152, 384), (384, 1152))  # LaViDa's stage-2 script
POOL_STRIDE = 2
POOL_MODES = ("bilinear", "average", "max")


# ----- checks -----------------------------------------------------------------------------------------
def _check_size(width, height, what: str = "image") -> tuple[int, int]:
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in (width, height)):
        raise ValueError(f"{what} size must be two positive integers (width, height), got {width}x{height}")
    return int(width), int(height)


def check_view(view_size: int, patch_size: int) -> int:
    """The patch grid per side, ``view_size // patch_size``; a remainder is allowed (so400m: 384 = 27 * 14
    + 6, the last 6 px unseen), a view smaller than one patch is not."""
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in (view_size, patch_size)):
        raise ValueError(f"view_size and patch_size must be positive integers, got {view_size} and {patch_size}")
    if patch_size > view_size:
        raise ValueError(f"patch_size {patch_size} is larger than view_size {view_size}: no token fits a view")
    return view_size // patch_size


def _check_pinpoints(pinpoints, view_size: int) -> tuple[tuple[int, int], ...]:
    points = tuple(_check_size(*p, what="pinpoint") for p in pinpoints)
    if not points:
        raise ValueError("pinpoints must name at least one (width, height) canvas")
    for w, h in points:
        if w % view_size or h % view_size:
            raise ValueError(f"pinpoint {w}x{h} is not a multiple of view_size {view_size}: its crops would "
                             f"not be whole views")
    return points


# ----- image side: LLaVA's anyres rules ---------------------------------------------------------------
def select_best_resolution(size: tuple[int, int], pinpoints: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """LLaVA's rule: the pinpoint (width, height) keeping the most image pixels after an aspect-preserving
    fit (capped at the image's own pixel count), ties broken by the least wasted canvas area."""
    width, height = _check_size(*size)
    best, best_effective, best_waste = None, -1, math.inf
    for w, h in (_check_size(*p, what="pinpoint") for p in pinpoints):
        scale = min(w / width, h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = w * h - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (w, h), effective, waste
    if best is None:
        raise ValueError("pinpoints must name at least one (width, height) canvas")
    return best


def letterbox_geometry(size: tuple[int, int], target: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((new_w, new_h), (pad_x, pad_y)): the image fitted into ``target`` with its aspect kept (the long
    side fills, the other is rounded up) and centred; the rest of the canvas is black padding."""
    width, height = _check_size(*size)
    tw, th = _check_size(*target, what="target")
    if tw / width < th / height:
        new_w, new_h = tw, min(math.ceil(height * tw / width), th)
    else:
        new_w, new_h = min(math.ceil(width * th / height), tw), th
    return (new_w, new_h), ((tw - new_w) // 2, (th - new_h) // 2)


def resize_and_pad(image: Image.Image, target: tuple[int, int], resample=Image.BICUBIC) -> Image.Image:
    """The image letterboxed into a black ``target`` canvas (:func:`letterbox_geometry`)."""
    (new_w, new_h), offset = letterbox_geometry(image.size, target)
    canvas = Image.new("RGB", tuple(target))
    canvas.paste(image.convert("RGB").resize((new_w, new_h), resample), offset)
    return canvas


def divide_to_patches(image: Image.Image, view_size: int) -> list[Image.Image]:
    """``view_size`` square crops of a canvas, row-major (LaViDa's "patches": whole views, not ViT patches)."""
    if image.width % view_size or image.height % view_size:
        raise ValueError(f"canvas {image.width}x{image.height} is not a multiple of view_size {view_size}")
    return [image.crop((x, y, x + view_size, y + view_size))
            for y in range(0, image.height, view_size) for x in range(0, image.width, view_size)]


@dataclass(frozen=True)
class AnyresView:
    """One encoder view: ``kind`` "global" or "tile" (LaViDa's crops; ``row``, ``col`` in the crop grid).
    An original-image pixel x maps to view pixel ``x * scale[0] - offset[0]`` (same for y), the convention
    of :class:`lisalib.world.highres.View`; ``image`` is None for geometry-only views."""

    kind: str
    row: int
    col: int
    scale: tuple[float, float]
    offset: tuple[float, float]
    view_size: int
    image: Image.Image | None = None

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """View pixel (u, v) -> original-image pixel (x, y) (may fall outside the image: padding)."""
        return (u + self.offset[0]) / self.scale[0], (v + self.offset[1]) / self.scale[1]

    def to_view(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale[0] - self.offset[0], y * self.scale[1] - self.offset[1]


def view_geometry(size: tuple[int, int], pinpoints=LAVIDA_PINPOINTS, view_size: int = VIEW_SIZE) -> list[AnyresView]:
    """The views' geometry (no pixels): global first, then the crops of the best pinpoint canvas row-major."""
    width, height = _check_size(*size)
    points = _check_pinpoints(pinpoints, view_size)
    best = select_best_resolution((width, height), points)
    (new_w, new_h), (pad_x, pad_y) = letterbox_geometry((width, height), best)
    views = [AnyresView("global", 0, 0, (view_size / width, view_size / height), (0.0, 0.0), view_size)]
    for row in range(best[1] // view_size):
        for col in range(best[0] // view_size):
            views.append(AnyresView("tile", row, col, (new_w / width, new_h / height),
                                    (float(col * view_size - pad_x), float(row * view_size - pad_y)), view_size))
    return views


def anyres_views(image: Image.Image, pinpoints=LAVIDA_PINPOINTS, view_size: int = VIEW_SIZE,
                 resample=Image.BICUBIC) -> list[AnyresView]:
    """LaViDa's ``process_anyres_image``: ``[global] + crops`` with their pixels and geometry.

    The global view is a plain resize to ``view_size`` square (aspect distorted, as LaViDa without its
    ``DEBUG_FIX_PADDING``); crops come from the image letterboxed into the best pinpoint canvas.
    Bicubic, as SigLIP's processor.
    """
    image = image.convert("RGB")
    views = view_geometry(image.size, pinpoints, view_size)
    best = select_best_resolution(image.size, pinpoints)
    crops = divide_to_patches(resize_and_pad(image, best, resample), view_size)
    pixels = [image.resize((view_size, view_size), resample)] + crops
    return [AnyresView(v.kind, v.row, v.col, v.scale, v.offset, v.view_size, p) for v, p in zip(views, pixels)]


# ----- token side --------------------------------------------------------------------------------------
class Token(NamedTuple):
    """One encoder token: its view, (row, col) in the view's patch grid, its box (x0, y0, x1, y1) in
    original-image pixels clipped to the image, and the fraction of its area that is letterbox padding."""

    view: int
    row: int
    col: int
    box: tuple[float, float, float, float]
    padding: float

    @property
    def covers_padding(self) -> bool:
        return self.padding > 0


@dataclass(frozen=True)
class TokenLayout:
    """Every encoder token of an image in (view, row, col) order, with the views they come from.

    ``seen_px = grid * patch_size`` pixels of each view side reach a token; ``unseen_px`` (so400m: 6) are
    cut off by the valid-padding patch embedding and never seen.
    """

    size: tuple[int, int]
    best_resolution: tuple[int, int]
    view_size: int
    patch_size: int
    grid: int
    views: list[AnyresView]
    tokens: list[Token]

    @property
    def seen_px(self) -> int:
        return self.grid * self.patch_size

    @property
    def unseen_px(self) -> int:
        return self.view_size - self.seen_px

    def boxes(self) -> np.ndarray:
        """[N, 4] float boxes in original-image pixels."""
        return np.array([t.box for t in self.tokens], dtype=np.float64).reshape(-1, 4)

    def index(self) -> np.ndarray:
        """[N, 3] int (view, row, col)."""
        return np.array([(t.view, t.row, t.col) for t in self.tokens], dtype=np.int64).reshape(-1, 3)


def token_layout(width: int, height: int, pinpoints=LAVIDA_PINPOINTS, view_size: int = VIEW_SIZE,
                 patch_size: int = PATCH_SIZE) -> TokenLayout:
    """Per-token records of LaViDa's views for a ``width`` x ``height`` image (see :class:`TokenLayout`)."""
    width, height = _check_size(width, height)
    grid = check_view(view_size, patch_size)
    views = view_geometry((width, height), pinpoints, view_size)
    tokens = []
    for index, view in enumerate(views):
        for row in range(grid):
            for col in range(grid):
                x0, y0 = view.to_image(col * patch_size, row * patch_size)
                x1, y1 = view.to_image((col + 1) * patch_size, (row + 1) * patch_size)
                cx0, cx1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
                cy0, cy1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
                inside = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
                tokens.append(Token(index, row, col, (cx0, cy0, cx1, cy1), max(0.0, 1.0 - inside)))
    best = select_best_resolution((width, height), pinpoints)
    return TokenLayout((width, height), best, view_size, patch_size, grid, views, tokens)


# ----- pooling and projection --------------------------------------------------------------------------
def pooled_grid(grid: int, stride: int = POOL_STRIDE, mode: str = "bilinear") -> int:
    """Side of a view's map after LaViDa's ``get_2dPool``: bilinear resizes to ceil(grid / stride) (27 -> 14),
    average / max pooling floor it (27 -> 13)."""
    if mode not in POOL_MODES:
        raise ValueError(f"pool mode must be one of {POOL_MODES}, got {mode!r}")
    return math.ceil(grid / stride) if mode == "bilinear" else grid // stride


def pool_2d(features: torch.Tensor, grid: int, stride: int = POOL_STRIDE, mode: str = "bilinear") -> torch.Tensor:
    """[B, grid*grid, D] -> [B, p*p, D], p = :func:`pooled_grid`: the tokens as a D-channel map, pooled."""
    if features.dim() != 3 or features.shape[1] != grid * grid:
        raise ValueError(f"features must be [B, {grid * grid}, D] for a {grid}x{grid} grid, "
                         f"got {tuple(features.shape)}")
    b, _, d = features.shape
    side = pooled_grid(grid, stride, mode)
    maps = features.transpose(1, 2).reshape(b, d, grid, grid)
    if mode == "bilinear":
        maps = F.interpolate(maps, size=(side, side), mode="bilinear", align_corners=False)
    elif mode == "average":
        maps = F.avg_pool2d(maps, stride)
    else:
        maps = F.max_pool2d(maps, stride)
    return maps.flatten(2).transpose(1, 2)


def project_then_pool(features: torch.Tensor, projector: nn.Module, grid: int, stride: int = POOL_STRIDE,
                      mode: str = "bilinear") -> torch.Tensor:
    """LaViDa's ``encode_images`` order: projector on all grid*grid tokens, then 2D pooling of the result."""
    return pool_2d(projector(features), grid, stride, mode)


def pool_then_project(features: torch.Tensor, projector: nn.Module, grid: int, stride: int = POOL_STRIDE,
                      mode: str = "bilinear") -> torch.Tensor:
    """The paper's stated order (pool, then project): not the same with a GELU projector."""
    return projector(pool_2d(features, grid, stride, mode))


# ----- LLM side: spatial_unpad -------------------------------------------------------------------------
def unpad_slices(size: tuple[int, int], map_shape: tuple[int, int]) -> tuple[slice, slice]:
    """(row slice, col slice) LLaVA-NeXT's ``unpad_image`` keeps of a tiled [rows, cols] feature map for an
    image of ``size`` = (width, height): the letterbox padding cut off along the short side, with the
    float scale and int() truncation of the original (a 640x480 image keeps 22 of 28 rows, not 21)."""
    width, height = _check_size(*size)
    rows, cols = map_shape
    if width / height > cols / rows:
        kept = int(height * (cols / width))
        pad = (rows - kept) // 2
        return slice(pad, rows - pad), slice(0, cols)
    kept = int(width * (rows / height))
    pad = (cols - kept) // 2
    return slice(0, rows), slice(pad, cols - pad)


def llm_layout(width: int, height: int, pinpoints=LAVIDA_PINPOINTS, view_size: int = VIEW_SIZE,
               patch_size: int = PATCH_SIZE, stride: int = POOL_STRIDE, mode: str = "bilinear") -> list:
    """The LLM's image tokens in order: (view, row, col) of a pooled token, or None for a newline token.

    The global view's pooled tokens first (row-major), then the crops' pooled maps tiled into one
    (crop_rows * p) x (crop_cols * p) map, unpadded (:func:`unpad_slices`), one newline after each row.
    """
    width, height = _check_size(width, height)
    p = pooled_grid(check_view(view_size, patch_size), stride, mode)
    best = select_best_resolution((width, height), _check_pinpoints(pinpoints, view_size))
    crop_rows, crop_cols = best[1] // view_size, best[0] // view_size
    order: list = [(0, r, c) for r in range(p) for c in range(p)]
    row_slice, col_slice = unpad_slices((width, height), (crop_rows * p, crop_cols * p))
    for big_r in range(crop_rows * p)[row_slice]:
        for big_c in range(crop_cols * p)[col_slice]:
            order.append((1 + (big_r // p) * crop_cols + big_c // p, big_r % p, big_c % p))
        order.append(None)
    return order


def merge_spatial_unpad(pooled: torch.Tensor, order: list, newline: torch.Tensor) -> torch.Tensor:
    """[views, p*p, D] pooled features + :func:`llm_layout` order + [D] newline -> [len(order), D]."""
    p = math.isqrt(pooled.shape[1])
    rows = [newline if item is None else pooled[item[0], item[1] * p + item[2]] for item in order]
    return torch.stack(rows)


def token_counts(width: int, height: int, pinpoints=LAVIDA_PINPOINTS, view_size: int = VIEW_SIZE,
                 patch_size: int = PATCH_SIZE) -> dict:
    """Token counts of one image through LaViDa: ``views``, ``raw`` (encoder tokens), ``pooled`` (after
    bilinear 2D pooling) and ``llm`` (after ``spatial_unpad``: global pooled tokens + kept crop tokens +
    one newline per kept row; the length of :func:`llm_layout`)."""
    grid = check_view(view_size, patch_size)
    p = pooled_grid(grid)
    best = select_best_resolution(_check_size(width, height), _check_pinpoints(pinpoints, view_size))
    crop_rows, crop_cols = best[1] // view_size, best[0] // view_size
    views = 1 + crop_rows * crop_cols
    row_slice, col_slice = unpad_slices((width, height), (crop_rows * p, crop_cols * p))
    kept_rows = len(range(crop_rows * p)[row_slice])
    kept_cols = len(range(crop_cols * p)[col_slice])
    return {"views": views, "raw": views * grid * grid, "pooled": views * p * p,
            "llm": p * p + kept_rows * (kept_cols + 1), "grid": grid, "pooled_grid": p, "best_resolution": best,
            "crop_grid": (crop_rows, crop_cols), "tiled_map": (crop_rows * p, crop_cols * p),
            "unpadded_map": (kept_rows, kept_cols), "newlines": kept_rows}


# ----- the SigLIP tower LaViDa uses --------------------------------------------------------------------
def so400m_vision_config(**overrides):
    """``SiglipVisionConfig`` of google/siglip-so400m-patch14-384 from the shipped config (no network)."""
    from transformers import SiglipVisionConfig

    from lisalib.accounting.registry import model_spec

    values = dict(model_spec("siglip-so400m-patch14-384").config["vision_config"])
    values.pop("model_type", None)
    return SiglipVisionConfig(**(values | overrides))


def truncated_tower(model: nn.Module) -> nn.Module:
    """LaViDa's ``load_model`` in place: delete the last encoder layer (27 -> 26) and replace the head by
    Identity. Works on a ``SiglipVisionModel`` of any transformers version (5.x has no ``vision_model``
    attribute) and on a ``SiglipModel``; the config is left as loaded, as LaViDa leaves it."""
    core = getattr(model, "vision_model", model)
    if len(core.encoder.layers) < 2:
        raise ValueError("the tower needs at least two encoder layers to drop its last one")
    del core.encoder.layers[-1:]
    core.head = nn.Identity()
    return model


def lavida_features(tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """What LaViDa's tower returns: ``hidden_states[-1]`` of the truncated tower, before ``post_layernorm``
    (equal to the full tower's ``hidden_states[-2]``), checked to be one token per patch."""
    core = getattr(tower, "vision_model", tower)
    features = core(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-1]
    grid = pixel_values.shape[-1] // core.config.patch_size
    if features.shape[1] != grid * grid:
        raise ValueError(f"expected {grid * grid} tokens per view, got {features.shape[1]}")
    return features
