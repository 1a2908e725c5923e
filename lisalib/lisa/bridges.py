"""The new modules LISA-style models add between pretrained backbones (the ``projections`` group).

``VisionToSam`` lets SAM's mask decoder read CLIP's patch grid (the single-pass ``vlm`` design);
``VisionToVlm`` lets the LLM read SAM's image embedding (``sam``); ``SegTokenToSam`` (the seed design's
``seg_token_to_sam``) and ``TextHiddenFcs`` (LISA's ``text_hidden_fcs``) turn the LLM's ``<SEG>`` state
into SAM's prompt token; ``SegTokenToPoint`` turns it into a click SAM's prompt encoder embeds.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VisionToSam(nn.Module):
    """CLIP patch features ``[B, g*g, D]`` -> a SAM image embedding ``[B, C, S, S]``.

    Linear -> GELU -> LayerNorm to SAM's channel count (seed design), then the token sequence is laid
    back on its g x g grid and bilinearly resized to SAM's S x S (24 -> 64 real, 8 -> 16 tiny).
    """

    def __init__(self, vision_dim: int, sam_channels: int, sam_grid: int):
        super().__init__()
        self.linear = nn.Linear(vision_dim, sam_channels)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(sam_channels)
        self.sam_grid = sam_grid

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.act(self.linear(patch_features.to(self.linear.weight))))  # its device and dtype
        batch, length, channels = tokens.shape
        side = math.isqrt(length)
        if side * side != length:
            raise ValueError(f"{length} patch tokens do not form a square grid")
        grid = tokens.transpose(1, 2).reshape(batch, channels, side, side)  # CLIP patches are row-major
        return F.interpolate(grid, size=(self.sam_grid, self.sam_grid), mode="bilinear", align_corners=False)


class VisionToVlm(nn.Module):
    """A SAM image embedding ``[B, C, S, S]`` -> CLIP-like patch features ``[B, g*g, D]``.

    SAM's S x S grid is average-pooled to CLIP's g x g (so the LLM sees as many image tokens as LLaVA
    was trained with), then Linear -> GELU -> LayerNorm into CLIP's feature width; LLaVA's own projector
    takes it from there.
    """

    def __init__(self, sam_channels: int, vision_dim: int, vlm_grid: int):
        super().__init__()
        self.linear = nn.Linear(sam_channels, vision_dim)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(vision_dim)
        self.vlm_grid = vlm_grid

    def forward(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(image_embeddings.to(self.linear.weight), self.vlm_grid)
        tokens = pooled.flatten(2).transpose(1, 2)
        return self.norm(self.act(self.linear(tokens)))


class SegTokenToSam(nn.Module):
    """The seed design's ``seg_token_to_sam``: Linear -> GELU -> LayerNorm, LLM width -> SAM prompt width."""

    def __init__(self, llm_dim: int, sam_channels: int):
        super().__init__()
        self.linear = nn.Linear(llm_dim, sam_channels)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(sam_channels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.linear(hidden.to(self.linear.weight))))


class TextHiddenFcs(nn.Module):
    """LISA's ``text_hidden_fcs``: Linear(d, d) -> ReLU -> Linear(d, 256) -> Dropout(0)."""

    def __init__(self, llm_dim: int, sam_channels: int):
        super().__init__()
        self.fc1 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(llm_dim, sam_channels)
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.act(self.fc1(hidden.to(self.fc1.weight)))))


class SegTokenToPoint(nn.Module):
    """The ``<SEG>`` state -> where to click, by pointing at one of the image tokens the LLM reads.

    A pointer head: the ``<SEG>`` state is a query, the ``g x g`` image tokens (CLIP's patches after
    LLaVA's projector, the LLM's input) are keys, and their scaled dot products are logits over the
    patches; each image token also predicts where inside its patch the target's centre lies (sigmoid
    offsets). The click is the best patch's corner plus its offset, as a fraction of the grid's frame.
    Why not regress ``(x, y)`` from the state: under LISA's losses that learnt next to nothing in the CPU
    budget (the L1 error stayed near always-the-mean), while matching the query against tokens in
    which each shape's colour and kind are already readable is a lookup. Why the LLM's input and not
    its last-layer image states: no loss ever trained the latter (labels skip image positions). SAM's
    prompt encoder then embeds the click exactly as a user's, a prompt language its decoder speaks.
    """

    def __init__(self, llm_dim: int, key_dim: int = 128):
        super().__init__()
        self.query = nn.Linear(llm_dim, key_dim)
        self.key = nn.Linear(llm_dim, key_dim)
        self.offset = nn.Linear(llm_dim, 2)
        self.scale = key_dim ** -0.5

    def forward(self, seg_states: torch.Tensor, image_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, D]`` and ``[N, T, D]`` -> patch logits ``[N, T]`` and in-patch offsets ``[N, T, 2]`` in (0, 1)."""
        query = self.query(seg_states.to(self.query.weight))
        keys = self.key(image_tokens.to(self.key.weight))
        logits = torch.einsum("nd,ntd->nt", query, keys) * self.scale
        return logits, self.offset(image_tokens.to(self.offset.weight)).sigmoid()

    @staticmethod
    def click(logits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """The chosen patch's corner plus its offset: ``[N, 2]`` (x, y) fractions of the grid's frame."""
        grid = math.isqrt(logits.shape[-1])
        best = logits.argmax(dim=-1)
        corner = torch.stack([best % grid, torch.div(best, grid, rounding_mode="floor")], dim=-1).to(offsets)
        chosen = offsets[torch.arange(len(best), device=best.device), best]
        return (corner + chosen) / grid

    @staticmethod
    def targets(points: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid-frame fractions ``[N, 2]`` -> (patch index ``[N]``, -100 where outside the frame or NaN;
        in-patch offset ``[N, 2]``)."""
        cells = points * grid
        inside = ~points.isnan().any(dim=-1) & (cells >= 0).all(dim=-1) & (cells < grid).all(dim=-1)
        safe = torch.where(inside[:, None], cells, torch.zeros_like(cells))
        col, row = safe.floor().long().unbind(-1)
        index = torch.where(inside, row * grid + col, torch.full_like(col, -100))
        return index, safe - safe.floor()
