"""A tower that reads details: chapter 5's stand-in for what so400m learnt from web images full of text.

tiny-siglip was trained on scenes, crops and object names (chapter 00); it never saw a digit as something
to tell apart, and a linear probe reads the digit from its tokens at the majority level
(:mod:`lisalib.shirg.probe`). No selector can help a model whose tokens do not carry the detail, so the
chapter's tower first gets a *detail stage*: a copy of tiny-siglip's vision tower trained with a dense
per-token loss -- every tile token classifies the detail it shows (which digit, striped or plain circle, or
nothing) from the features LaViDa hands its projector (``hidden_states[-2]``). Its scenes come from their own
seed family (9050, i), denser in details than the train (9000, i) and val (9100 + s, i) splits. The stage
stands in for pretraining; LaViDa's own recipe then keeps the tower nearly frozen, and so does this one.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lisalib.shirg.data import box_overlaps, view_grid
from lisalib.world import encoder_views, generate_highres_scene
from lisalib.world.highres import HighResConfig

DETAIL_SEED = 9050  # scenes (9050, i): the detail stage's own, disjoint from train (9000) and val (9100 + s)
CLASSES = [*(str(d) for d in range(10)), "plain", "striped", "none"]
NONE = len(CLASSES) - 1


@dataclass
class DetailRecipe:
    """The detail stage: ``scenes`` detail-dense scenes, ``steps`` AdamW steps of ``batch`` scenes' four tiles."""

    scenes: int = 6000
    steps: int = 5000
    batch: int = 16
    lr: float = 3e-3  # one-cycle peak
    min_share: float = 0.15  # a token is labelled with a detail when it holds this share of the glyph / circle
    none_weight: float = 0.05  # loss weight of the tokens that show no detail (about 60 of 64 per tile)
    min_targets: int = 3
    max_targets: int = 6  # each (colour, shape) once: six colours of squares at most
    seed: int = 0


def detail_config(recipe: DetailRecipe) -> HighResConfig:
    """The high-res world with more small targets per scene and only the two details a token can show."""
    return HighResConfig(min_targets=recipe.min_targets, max_targets=recipe.max_targets, details=("digit", "stripe"),
                         min_distractors=3, max_distractors=8)


def detail_labels(scene, views, min_share: float, none_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """[views, tokens] class index and loss weight: each token holding ``min_share`` of a digit's glyph or of a
    circle's box gets that detail's class (weight 1); the rest "none" (``none_weight``). Global views (4x
    downsampled, glyphs of 1.5 x 2.5 px) get weight 0: nothing there can be read."""
    grid = view_grid(views)
    label = np.full((len(views), grid * grid), NONE, np.int64)
    weight = np.array([[none_weight if v.kind == "tile" else 0.0] * grid * grid for v in views])
    for t in scene.targets:
        if t.detail == "digit":
            box, cls = scene.glyph_box(t), int(t.digit)
        elif t.detail == "stripe":
            box, cls = scene.target_box(t), CLASSES.index("striped" if t.striped else "plain")
        else:
            continue
        for v, view in enumerate(views):
            overlap = box_overlaps(box, view, view.patch_size)
            if view.kind != "tile" or overlap.sum() <= 0:
                continue
            hit = overlap / overlap.sum() >= min_share
            label[v, hit], weight[v, hit] = cls, 1.0
    return label, weight


def detail_data(recipe: DetailRecipe, size: int, patch: int, progress: bool = True) -> dict:
    """``pixels`` [S, 4, 3, size, size] uint8 tiles of the detail scenes, ``labels`` / ``weights`` [S, 4, tokens]."""
    config = detail_config(recipe)
    pixels, labels, weights = [], [], []
    for i in tqdm(range(recipe.scenes), desc="detail scenes", disable=not progress):
        scene = generate_highres_scene((DETAIL_SEED, recipe.seed, i), config)
        views = encoder_views(scene, size, patch)
        label, weight = detail_labels(scene, views, recipe.min_share, recipe.none_weight)
        tiles = [v for v, view in enumerate(views) if view.kind == "tile"]
        pixels.append(np.stack([np.asarray(views[v].image) for v in tiles]))
        labels.append(label[tiles])
        weights.append(weight[tiles])
    return {"pixels": torch.from_numpy(np.stack(pixels)).permute(0, 1, 4, 2, 3).contiguous(),
            "labels": torch.from_numpy(np.stack(labels)), "weights": torch.from_numpy(np.stack(weights)).float()}


def detail_features(vision, pixel_values: torch.Tensor) -> torch.Tensor:
    """What the detail loss reads and LaViDa's projector gets: the tower's ``hidden_states[-2]``."""
    return vision(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2]


def train_detail_tower(siglip, recipe: DetailRecipe = DetailRecipe(), progress: bool = True) -> tuple:
    """``(copy of siglip with its vision tower trained by the detail loss, record)``; ``siglip`` is untouched.

    The last encoder layer and the pooling head get no gradient (LaViDa drops them); the text tower is the
    original one, so scoring text relevance stays the frozen tiny-siglip's job."""
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    model = copy.deepcopy(siglip).train()
    vision = model.vision_model
    size, patch = model.config.vision_config.image_size, model.config.vision_config.patch_size
    data = detail_data(recipe, size, patch, progress)
    head = torch.nn.Linear(model.config.vision_config.hidden_size, len(CLASSES))
    params = [p for n, p in vision.named_parameters()
              if not n.startswith(("head.", "post_layernorm.", f"encoder.layers.{len(vision.encoder.layers) - 1}."))]
    optimizer = torch.optim.AdamW([*params, *head.parameters()], lr=recipe.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.steps,
                                                   pct_start=0.05)
    generator = torch.Generator().manual_seed(recipe.seed)
    losses, n = [], len(data["labels"])
    for _ in tqdm(range(recipe.steps), desc="detail stage", disable=not progress):
        index = torch.randint(n, (recipe.batch,), generator=generator)
        pixels = data["pixels"][index].flatten(0, 1).float() / 127.5 - 1.0  # SigLIP's processor normalisation
        logits = head(detail_features(vision, pixels))
        weight = data["weights"][index].flatten()
        loss = (F.cross_entropy(logits.flatten(0, 1), data["labels"][index].flatten(), reduction="none")
                * weight).sum() / weight.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval().requires_grad_(False)
    seconds = time.perf_counter() - start
    record = {"recipe": asdict(recipe), "seconds": round(seconds, 1), "step_seconds": round(seconds / recipe.steps, 4),
              "final_loss": round(float(np.mean(losses[-100:])), 4), "losses": [round(v, 4) for v in losses[::10]],
              "labelled_tokens": int((data["labels"] != NONE).sum()), "tiles": int(n * data["labels"].shape[1])}
    return model, record


@torch.no_grad()
def tower_view_features(vision, data, chunk: int = 100) -> torch.Tensor:
    """[S, 5, tokens, C] ``hidden_states[-2]`` of every view of an :class:`~lisalib.shirg.data.EncodedScenes`."""
    out = [detail_features(vision, data.pixel_values(range(s, min(s + chunk, len(data.scenes)))))
           for s in range(0, len(data.scenes), chunk)]
    return torch.cat(out).unflatten(0, (len(data.scenes), data.pixels.shape[1]))
