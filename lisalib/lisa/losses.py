"""LISA's training objective: text cross-entropy + per-mask BCE + per-mask Dice, weighted 1.0 / 2.0 / 0.5.

The mask terms are computed on logits already resized to each image's original resolution, averaged
over pixels within a mask and then over all masks of the batch (N + 1e-8 in the denominator, so a batch
without masks contributes 0). Dice uses LISA's scale s = 1000 and eps = 1e-6:
D = 1 - (2*sum(p*y) + s*eps) / (sum(p) + sum(y) + s*eps), p = sigmoid(logits). The large scale keeps an
empty ground truth from dominating the loss. Source: ``dice_loss``, ``sigmoid_ce_loss`` and
``LISAForCausalLM.forward`` in ``model/LISA.py`` of https://github.com/dvlab-research/LISA.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DICE_SCALE = 1000.0
DICE_EPS = 1e-6
MASK_COUNT_EPS = 1e-8


@dataclass(frozen=True)
class LossWeights:
    """LISA's defaults (model/LISA.py): ce 1.0, bce 2.0, dice 0.5."""

    ce: float = 1.0
    bce: float = 2.0
    dice: float = 0.5
    location: float = 0.0  # not LISA's: the point route's L1 (LisaConfig.location_loss_weight)


def sigmoid_bce_per_mask(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over the pixels of each mask: [n, H, W] -> [n]."""
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return loss.flatten(1).mean(dim=1)


def dice_per_mask(logits: torch.Tensor, targets: torch.Tensor, scale: float = DICE_SCALE,
                  eps: float = DICE_EPS) -> torch.Tensor:
    """LISA's Dice loss of each mask: [n, H, W] -> [n]."""
    probs = logits.sigmoid().flatten(1)
    targets = targets.to(probs.dtype).flatten(1)
    numerator = 2 * (probs * targets).sum(dim=1) / scale
    denominator = (probs.sum(dim=1) + targets.sum(dim=1)) / scale
    return 1 - (numerator + eps) / (denominator + eps)


def mask_losses(pred_logits: Sequence[torch.Tensor], gt_masks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE and mean Dice over every mask of a batch.

    ``pred_logits[i]`` and ``gt_masks[i]`` are image ``i``'s masks, ``[n_i, H_i, W_i]`` (images may differ
    in size, which is why this takes lists rather than one tensor).
    """
    if len(pred_logits) != len(gt_masks):
        raise ValueError(f"{len(pred_logits)} predicted mask groups but {len(gt_masks)} ground-truth groups")
    bce_sum, dice_sum, count = None, None, 0
    for pred, gt in zip(pred_logits, gt_masks):
        if pred.shape != gt.shape:
            raise ValueError(f"predicted masks {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
        if pred.shape[0] == 0:
            continue
        bce, dice = sigmoid_bce_per_mask(pred, gt).sum(), dice_per_mask(pred, gt).sum()
        bce_sum = bce if bce_sum is None else bce_sum + bce
        dice_sum = dice if dice_sum is None else dice_sum + dice
        count += pred.shape[0]
    if count == 0:
        zero = torch.zeros((), device=pred_logits[0].device if len(pred_logits) else None)
        return zero, zero
    return bce_sum / (count + MASK_COUNT_EPS), dice_sum / (count + MASK_COUNT_EPS)


def location_loss(patch_logits: torch.Tensor, offsets: torch.Tensor, target_patch: torch.Tensor,
                  target_offset: torch.Tensor) -> torch.Tensor:
    """The point route's loss: cross-entropy of the patch that holds the target's inside-centre, plus the
    L1 error of that patch's predicted in-patch offset. Targets with patch -100 (an empty mask, or a
    centre outside the LLM's view of the image) are left out; 0 when none is left."""
    keep = target_patch >= 0
    if not bool(keep.any()):
        return patch_logits.sum() * 0.0
    ce = F.cross_entropy(patch_logits[keep].float(), target_patch[keep])
    chosen = offsets[keep][torch.arange(int(keep.sum()), device=offsets.device), target_patch[keep]]
    return ce + (chosen - target_offset[keep].to(chosen)).abs().sum(dim=-1).mean()


def total_loss(ce: torch.Tensor | float, bce: torch.Tensor | float, dice: torch.Tensor | float,
               weights: LossWeights = LossWeights(), location: torch.Tensor | float = 0.0) -> torch.Tensor | float:
    """ce_weight * CE + bce_weight * BCE + dice_weight * Dice (+ location_weight * L1 of the point route)."""
    loss = weights.ce * ce + weights.bce * bce + weights.dice * dice
    return loss + weights.location * location if weights.location else loss
