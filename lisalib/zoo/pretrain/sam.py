"""Pretraining of ``tiny-sam``: a real SamModel that segments shapes from point and box prompts.

LISA keeps SAM frozen (or trains only its mask decoder) and relies on SAM already knowing what an
object boundary is. The tiny zoo reproduces that: this SamModel is trained from scratch on shapes-world
masks with SAM's own prompt types, then frozen by later chapters. Its bar is measured the way SAM is
usually quoted: mIoU from a single point at the centre of each object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import SamImageProcessorPil, SamModel, SamProcessor, get_cosine_schedule_with_warmup

from lisalib.reasonseg.masks import centre_point
from lisalib.reasonseg.metrics import iou_from_counts, sample_iou
from lisalib.zoo.inference import segment_from_points
from lisalib.world.scenes import generate_scenes
from lisalib.training.steps import take_step
from lisalib.zoo.configs import TINY_IMAGE_SIZE, tiny_sam_config

TRAIN_SEED = 3000
HELDOUT_SEED = 4000
LOW_RES = TINY_IMAGE_SIZE // 2  # SAM's decoder upsamples the embedding grid 4x: 16 -> 64


@dataclass
class SamRecipe:
    train_scenes: int = 3000
    steps: int = 1200
    batch_size: int = 16
    prompts_per_image: int = 4  # decoder runs per encoder pass: the encoder is the expensive part
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    seed: int = 0


def build_tiny_sam(seed: int = 0) -> tuple[SamModel, SamProcessor]:
    torch.manual_seed(seed)
    model = SamModel(tiny_sam_config())
    with torch.no_grad():
        # transformers draws SAM's random Fourier features with std hidden_size // 2 (48 here): harmless
        # when SAM's weights are loaded over it, but from scratch it turns every point coordinate and the
        # image's positional encoding into aliasing noise. SAM's own PositionEmbeddingRandom uses std 1.
        model.shared_image_embedding.positional_embedding.normal_(0.0, 1.0)
    image_processor = SamImageProcessorPil(
        size={"longest_edge": TINY_IMAGE_SIZE},
        pad_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        mask_size={"longest_edge": LOW_RES},
        mask_pad_size={"height": LOW_RES, "width": LOW_RES},
    )
    return model, SamProcessor(image_processor=image_processor)


def random_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    k = int(rng.integers(len(xs)))
    return float(xs[k]), float(ys[k])


def jittered_box(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> list[float]:
    """The mask's bounding box with each side moved by up to ``jitter`` of the box size (SAM's recipe)."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    w, h = x1 - x0, y1 - y0
    noise = rng.uniform(-jitter, jitter, size=4) * np.array([w, h, w, h])
    box = np.array([x0, y0, x1, y1], dtype=float) + noise
    return np.clip(box, 0, mask.shape[1]).tolist()


def sam_pretraining_losses(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tiny-sam's pretraining mask terms: pixel BCE and soft Dice of one [M, H, W] stack, averaged over masks.

    Not LISA's ``mask_losses`` (:mod:`lisalib.lisa.losses`): the Dice here is smoothed with 1 (LISA:
    scale 1000, eps 1e-6, so empty targets weigh differently), the masks are one equal-sized stack
    rather than per-image lists, and :func:`pretrain_sam` adds them with weight 1 each plus an IoU-head
    term (LISA: 2 x BCE + 0.5 x Dice, no IoU term).
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits.sigmoid().flatten(1)
    flat = target.flatten(1)
    dice = 1 - (2 * (prob * flat).sum(1) + 1) / (prob.sum(1) + flat.sum(1) + 1)
    return bce, dice.mean()


def upsample_logits(pred_masks: torch.Tensor) -> torch.Tensor:
    """[B, P, 1, 64, 64] low-res logits -> [B, P, 128, 128] at the (square, unpadded) input size."""
    b, p = pred_masks.shape[:2]
    flat = pred_masks.reshape(b * p, 1, LOW_RES, LOW_RES)
    up = F.interpolate(flat, size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), mode="bilinear", align_corners=False)
    return up.reshape(b, p, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)


def pretrain_sam(recipe: SamRecipe = SamRecipe(), progress: bool = True):
    """Train tiny-sam from scratch on visible-object masks; returns (model, processor, loss history)."""
    model, processor = build_tiny_sam(recipe.seed)
    scenes = [s for s in generate_scenes(recipe.train_scenes, seed=TRAIN_SEED) if s.objects]
    pixel_values = torch.cat([
        processor.image_processor([s.render() for s in scenes[i:i + 256]], return_tensors="pt")["pixel_values"]
        for i in range(0, len(scenes), 256)
    ])
    masks = [s.visible_masks() for s in scenes]
    rng = np.random.default_rng(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.steps)
    model.train()
    history = []
    bar = tqdm(range(recipe.steps), desc="tiny-sam", disable=not progress)
    for step in bar:
        images = rng.integers(len(scenes), size=recipe.batch_size)
        targets, points, boxes = [], [], []
        for i in images:
            visible = [k for k in range(len(masks[i])) if masks[i][k].sum() >= 4]
            chosen = rng.choice(visible, size=recipe.prompts_per_image)
            targets.append(np.stack([masks[i][k] for k in chosen]))
            points.append([[random_point(masks[i][k], rng)] for k in chosen])
            boxes.append([jittered_box(masks[i][k], rng) for k in chosen])
        prompt = {"input_points": torch.tensor(points), "input_labels": torch.ones(len(images), recipe.prompts_per_image, 1, dtype=torch.long)} \
            if step % 2 == 0 else {"input_boxes": torch.tensor(boxes)}
        out = model(pixel_values=pixel_values[images], multimask_output=False, **prompt)
        logits = upsample_logits(out.pred_masks)
        target = torch.from_numpy(np.stack(targets)).float()
        bce, dice = sam_pretraining_losses(logits.flatten(0, 1), target.flatten(0, 1))
        with torch.no_grad():
            hard = logits > 0
            inter = (hard & (target > 0)).sum((-1, -2)).float()
            union = (hard | (target > 0)).sum((-1, -2)).float()
            iou = iou_from_counts(inter, union)
        iou_loss = F.mse_loss(out.iou_scores.squeeze(-1), iou)  # teaches SAM's own quality head
        loss = bce + dice + iou_loss
        history.append(take_step(loss, list(model.parameters()), optimizer, schedule))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}", iou=f"{iou.mean().item():.3f}")
    model.eval()
    return model, processor, history


def evaluate_sam(model: SamModel, processor: SamProcessor, n_scenes: int = 100, seed: int = HELDOUT_SEED) -> dict:
    """mIoU (LISA's IoU, ``sample_iou``) over every visible object of held-out scenes, each prompted with a
    single point at its centre (``centre_point``: the pixel farthest from the background)."""
    ious = []
    for scene in generate_scenes(n_scenes, seed=seed):
        visible = scene.visible_masks()
        keep = [k for k in range(len(visible)) if visible[k].sum() >= 4]
        if not keep:
            continue
        predicted = segment_from_points(model, processor, scene.render(), [centre_point(visible[k]) for k in keep])
        ious += [sample_iou(mask, visible[k]) for k, mask in zip(keep, predicted)]
    return {"miou": round(float(np.mean(ious)), 4), "n": len(ious)}

