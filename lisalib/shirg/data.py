"""Chapter 5's data: high-resolution scenes, their small-detail questions, and each view's tiny-siglip tokens.

Every scene of :mod:`lisalib.world.highres` is cut into LaViDa's views (one global view + 2x2 tiles,
:func:`~lisalib.world.highres.encoder_views`) and encoded once by the frozen tiny-siglip tower:
``features`` (``hidden_states[-2]``, what LaViDa hands its projector), ``saliency`` (the attention-pooling
head's probe attention over the last layer, the text-agnostic score) and ``patch_text`` (each token mapped
into SigLIP's joint space, for text relevance). Questions come with the tokens their targets touch, so a
selection can be scored by recall before any language model runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from lisalib.world import COLOURS, encoder_views, generate_highres_scene, highres_caption
from lisalib.world.highres import PATCH_SIZE, VIEW_SIZE, HighResConfig, HighResScene, View
from lisalib.zoo.pretrain.siglip import _project_patches, text_embeddings

TRAIN_SEED = 9000  # scenes (9000, i) train chapter 5's VLM ...
VAL_SEED = 9100  # ... scenes (9100 + seed, i) are its validation splits (seed 0 by default)
N_VIEWS = 5  # global + 2x2 tiles
GRID = VIEW_SIZE // PATCH_SIZE  # 8 x 8 tokens per view
_NAME = re.compile(r"\b(small|tiny) (\w+) (\w+)\b")


@dataclass
class Sample:
    """One question about one scene; ``scene_index`` points into the :class:`EncodedScenes` it came from and
    ``target_tokens`` is the [5, 64] bool map of tokens whose patch touches a target box of the question."""

    scene_index: int
    type: str
    question: str
    answer: str
    target_tokens: np.ndarray
    boxes: list


@dataclass
class EncodedScenes:
    """Scenes, their views and their tokens, indexed alike; ``samples`` are all their questions."""

    scenes: list
    views: list
    features: torch.Tensor  # [S, 5, 64, C] hidden_states[-2]
    saliency: torch.Tensor  # [S, 5, 64] probe attention of the pooling head, per view (sums to 1 per view)
    patch_text: torch.Tensor  # [S, 5, 64, C] tokens in SigLIP's joint space, L2-normalised
    samples: list
    pixels: torch.Tensor | None = None  # [S, 5, 3, 64, 64] uint8 views (a tower being trained re-encodes them)
    captions: list = field(default_factory=list)  # one detailed caption per scene (training only), as Samples

    def subset(self, samples: list) -> "EncodedScenes":
        """The same scenes with only ``samples`` (e.g. one question type)."""
        return EncodedScenes(self.scenes, self.views, self.features, self.saliency, self.patch_text, samples,
                             self.pixels, self.captions)

    def pixel_values(self, scene_indices) -> torch.Tensor:
        """[len * 5, 3, 64, 64] SigLIP inputs of these scenes (rescale 1/255, mean 0.5, std 0.5, as its processor)."""
        return self.pixels[list(scene_indices)].flatten(0, 1).float() / 127.5 - 1.0


def view_grid(views: list[View]) -> int:
    """Tokens per side of a view (8 tiny; 27 for so400m's 384 px / 14 px, whose last 6 px are never a token)."""
    return views[0].image.width // views[0].patch_size


def box_tokens(views: list[View], box: tuple) -> np.ndarray:
    """[n_views, grid*grid] bool: the tokens of each view whose patch a canvas-pixel box touches."""
    patch_size = views[0].patch_size
    grid = view_grid(views)
    touched = np.zeros((len(views), grid * grid), bool)
    x0, y0, x1, y1 = box
    for v, view in enumerate(views):
        size = view.image.width
        u0, u1 = max(x0 * view.scale[0] - view.offset[0], 0.0), min(x1 * view.scale[0] - view.offset[0], size)
        w0, w1 = max(y0 * view.scale[1] - view.offset[1], 0.0), min(y1 * view.scale[1] - view.offset[1], size)
        if u1 <= u0 or w1 <= w0:
            continue
        cols = np.arange(int(u0 // patch_size), min(int(np.ceil(u1 / patch_size)), grid))
        rows = np.arange(int(w0 // patch_size), min(int(np.ceil(w1 / patch_size)), grid))
        if not len(cols) or not len(rows):
            continue
        touched[v, (rows[:, None] * grid + cols[None, :]).ravel()] = True
    return touched


def box_overlaps(box: tuple, view: View, cell: int) -> np.ndarray:
    """[side*side] area (view pixels) of a canvas-pixel box inside each ``cell``-pixel square of the view."""
    x0, y0, x1, y1 = box
    u0, u1 = x0 * view.scale[0] - view.offset[0], x1 * view.scale[0] - view.offset[0]
    w0, w1 = y0 * view.scale[1] - view.offset[1], y1 * view.scale[1] - view.offset[1]
    edges = np.arange(view.image.width // cell + 1) * cell
    width = np.clip(np.minimum(u1, edges[1:]) - np.maximum(u0, edges[:-1]), 0, None)
    height = np.clip(np.minimum(w1, edges[1:]) - np.maximum(w0, edges[:-1]), 0, None)
    return (height[:, None] * width[None, :]).ravel()


def query_texts(question: str) -> list[str]:
    """The phrases text relevance scores a question by: the object it names ("which digit is on the small
    red square?" -> ["the small red square"]), or, for the tiny-star count, every tiny star it could be.

    Why not the question itself: tiny-siglip's text tower was trained on captions and object names only
    (chapter 00), so a question is out of its distribution while the name inside it is not (TRIM and
    SparseVLM likewise score with the question's content words). Unknown questions fall back to themselves.
    """
    if "tiny stars" in question:
        return [f"the tiny {colour} star" for colour in COLOURS]
    match = _NAME.search(question)
    return [f"the {match.group(0)}"] if match else [question]


def scene_samples(scene: HighResScene, views: list[View], scene_index: int) -> list[Sample]:
    """The scene's small-detail questions (:func:`~lisalib.world.highres.highres_questions`) with target tokens."""
    samples = []
    for qa in scene.questions():
        touched = np.zeros((len(views), view_grid(views) ** 2), bool)
        for box in qa["boxes"]:
            touched |= box_tokens(views, box)
        samples.append(Sample(scene_index, qa["type"], qa["question"], qa["answer"], touched, qa["boxes"]))
    return samples


@torch.no_grad()
def encode_scenes(siglip, processor, scenes: list[HighResScene], batch_views: int = 200,
                  progress: bool = True, captions: bool = False) -> EncodedScenes:
    """Views, tokens and questions of ``scenes``, encoded by the frozen SigLIP (one pass, eval mode); the
    view and patch sizes are the tower's (64 / 8 tiny, 384 / 14 for so400m)."""
    siglip.eval()
    vision = siglip.vision_model
    size, patch = siglip.config.vision_config.image_size, siglip.config.vision_config.patch_size
    device = next(siglip.parameters()).device
    dtype = next(siglip.parameters()).dtype
    all_views, samples, caption_samples = [], [], []
    for i, scene in enumerate(tqdm(scenes, desc="views", disable=not progress)):
        all_views.append(encoder_views(scene, size, patch))
        samples += scene_samples(scene, all_views[-1], i)
        if captions:
            caption_samples.append(Sample(i, "caption", "", highres_caption(scene, details=True),
                                          np.zeros((len(all_views[-1]), view_grid(all_views[-1]) ** 2), bool), []))
        scene._cache.clear()  # a 256 px scene caches ~1 MB of masks; they are re-made on demand
    images = [v.image for views in all_views for v in views]
    features, saliency, patch_text = [], [], []
    for start in tqdm(range(0, len(images), batch_views), desc="tiny-siglip", disable=not progress):
        pixels = processor(images=images[start:start + batch_views], return_tensors="pt")["pixel_values"]
        out = vision(pixel_values=pixels.to(device, dtype), output_hidden_states=True)
        features.append(out.hidden_states[-2].float().cpu())
        saliency.append(probe_attention(vision.head, out.last_hidden_state).float().cpu())
        tokens = _project_patches(siglip, out.hidden_states[-2])
        patch_text.append(torch.nn.functional.normalize(tokens.float(), dim=-1).cpu())
    shape = (len(scenes), N_VIEWS, (size // patch) ** 2)
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)
    return EncodedScenes(scenes, all_views, torch.cat(features).view(*shape, -1), torch.cat(saliency).view(shape),
                         torch.cat(patch_text).view(*shape, -1), samples,
                         pixels.reshape(len(scenes), N_VIEWS, *pixels.shape[1:]).contiguous(), caption_samples)


def probe_attention(head, hidden: torch.Tensor) -> torch.Tensor:
    """[N, T] attention of SigLIP's pooling-head probe over the tokens (averaged over heads; sums to 1).

    SigLIP has no CLS token whose attention VisionZip or PruMerge could read; its attention-pooling head's
    single learned query is the nearest thing, and ``head(last_hidden_state)`` is the image embedding.
    """
    probe = head.probe.expand(hidden.shape[0], -1, -1)
    _, weights = head.attention(probe, hidden, hidden, need_weights=True, average_attn_weights=True)
    return weights[:, 0]


def scaled_config(factor: int = 1) -> HighResConfig:
    """The high-res world drawn ``factor`` times larger (canvas, targets, glyph cells, stripes): ``factor=3``
    gives LaViDa's own 768 px canvas for so400m's 384 px views (tiles at full resolution)."""
    return HighResConfig(width=256 * factor, height=256 * factor, min_target_radius=8.0 * factor,
                         max_target_radius=10.0 * factor, glyph_scale=2 * factor, stripe_width=1.0 * factor)


def make_scenes(n: int, seed: int, split: str = "val", factor: int = 1) -> list[HighResScene]:
    """``n`` high-res scenes of the train split (scenes (9000, i)) or of val split ``seed`` ((9100 + seed, i)),
    at :func:`scaled_config` ``factor`` (1: the tiny tower's 256 px canvas)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    base = TRAIN_SEED if split == "train" else VAL_SEED + seed
    config = scaled_config(factor)
    return [generate_highres_scene((base, i), config) for i in range(n)]


@torch.no_grad()
def query_embeddings(siglip, processor, samples: list[Sample]) -> list[torch.Tensor]:
    """Per sample, the [Q, C] normalised text embeddings of its :func:`query_texts` (each phrase encoded once)."""
    phrases = sorted({p for s in samples for p in query_texts(s.question)})
    table = dict(zip(phrases, text_embeddings(siglip, processor, phrases)))
    return [torch.stack([table[p] for p in query_texts(s.question)]) for s in samples]
