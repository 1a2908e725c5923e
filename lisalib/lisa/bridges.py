"""The new modules LISA-style models add between pretrained backbones (the ``projections`` group).

``VisionToSam`` lets SAM's mask decoder read CLIP's patch grid (the single-pass ``vlm`` design);
``VisionToVlm`` lets the LLM read SAM's image embedding (``sam``); ``SegTokenToSam`` (the seed design's
``seg_token_to_sam``) and ``TextHiddenFcs`` (LISA's ``text_hidden_fcs``) turn the LLM's ``<SEG>`` state
into SAM's prompt token.
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
