"""Chapter 6's caption sets: shapes-world scenes with five references each (tiny), Flickr30k (real).

CIDEr-D rewards what the references agree on, so one reference per image (004's data) makes it noisy. The
shapes world's caption (:func:`lisalib.world.caption`) is one fixed sentence; :func:`references` adds four
paraphrases in the world's own vocabulary (every word is in tiny-lm's tokenizer): another opening, another
order of the shapes (right to left, top to bottom, largest first). Models train on a reference drawn per
step, as COCO captioners do, and are scored against all five.

Splits are seeded and disjoint by construction: training scenes are ``(TRAIN_SEED, i)``, validation scenes
``(VAL_SEED + seed, i)``, so ``--seed`` chooses a different validation set that never meets the training one.
Real profile: ``lmms-lab/flickr30k`` (Flickr30k's 31,783 images with their 5 human captions, parquet), of
which the first shards are read and split by a seeded permutation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lisalib.world import NUMBER_WORDS, Scene, generate_scenes
from lisalib.world.language import article

TRAIN_SEED = 61000  # scenes (61000, i) train every variant ...
VAL_SEED = 62000  # ... scenes (62000 + seed, i) are a validation split (seed = --seed)
N_REFERENCES = 5
FLICKR = "lmms-lab/flickr30k"  # real profile: Flickr30k, 5 references per image
FLICKR_SHARDS = "data/test-0000[0-1]-of-00009.parquet"  # about 7,000 images (of 31,783), ~950 MB


def _listing(scene: Scene, order: list[int]) -> str:
    names = [f"{article(scene.objects[i].colour)} {scene.objects[i].name}" for i in order]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def references(scene: Scene) -> list[str]:
    """Five captions of one scene: the world's caption (left to right) and four paraphrases."""
    objs = scene.objects
    n = len(objs)
    noun = "shape" if n == 1 else "shapes"
    count = f"{NUMBER_WORDS[n]} {noun}"
    left = sorted(range(n), key=lambda i: objs[i].center[0])
    top = sorted(range(n), key=lambda i: objs[i].center[1])
    areas = scene.visible_masks().sum(axis=(1, 2))
    large = sorted(range(n), key=lambda i: -int(areas[i]))
    there = "there is" if n == 1 else "there are"
    return [
        f"{count}: {_listing(scene, left)}.",
        f"{there} {count}: {_listing(scene, left)}.",
        f"{count}: {_listing(scene, left[::-1])}.",
        f"{count} in the image: {_listing(scene, top)}.",
        f"the image has {count}: {_listing(scene, large)}.",
    ]


@dataclass
class CaptionSet:
    """Images (uint8 [N, H, W, 3] at the encoder's size) and their references; ``ids`` name the images."""

    images: np.ndarray
    refs: list[list[str]]
    ids: list[str]
    source: str = "shapes"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.refs)

    def subset(self, index) -> "CaptionSet":
        index = list(index)
        return CaptionSet(self.images[index], [self.refs[i] for i in index], [self.ids[i] for i in index],
                          self.source, dict(self.meta))


def shapes_split(n: int, split: str, seed: int = 0, size: int = 64) -> CaptionSet:
    """``n`` shapes-world scenes of a split (``train``: (61000, i); ``val``: (62000 + seed, i)) at ``size`` px."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    scene_seed = TRAIN_SEED if split == "train" else VAL_SEED + seed
    if split == "val" and scene_seed == TRAIN_SEED:
        raise ValueError("the validation seed would reuse the training scenes")
    from PIL import Image

    scenes = generate_scenes(n, seed=scene_seed)
    images = np.stack([np.asarray(s.render().resize((size, size), Image.BICUBIC)) for s in scenes])
    return CaptionSet(images, [references(s) for s in scenes], [f"{scene_seed}-{i}" for i in range(n)], "shapes",
                      {"scene_seed": scene_seed})


def flickr_split(n: int, split: str, seed: int = 0, size: int = 224, val_size: int = 500) -> CaptionSet:
    """Real profile: ``n`` Flickr30k images of a split. The shards' images are permuted once (seed 0) and the
    last ``val_size`` are validation; ``seed`` then draws which of them are scored (always disjoint from train)."""
    from datasets import load_dataset  # Colab has it; not a dependency of the tiny profile
    from PIL import Image

    data = load_dataset(FLICKR, data_files={"test": FLICKR_SHARDS}, split="test")
    order = np.random.default_rng(0).permutation(len(data))
    pool = order[:-val_size] if split == "train" else order[-val_size:]
    if split == "val":
        pool = np.random.default_rng(seed).permutation(pool)
    pool = pool[:n]
    rows = data.select(pool.tolist())
    images = np.stack([np.asarray(r["image"].convert("RGB").resize((size, size), Image.BICUBIC)) for r in rows])
    return CaptionSet(images, [list(r["caption"]) for r in rows], [str(r["img_id"]) for r in rows], "flickr30k",
                      {"dataset": FLICKR, "shards": FLICKR_SHARDS})


def pixel_values(images: np.ndarray, processor) -> torch.Tensor:
    """uint8 [N, H, W, 3] already at the encoder's size -> normalised pixels (rescale, mean/std), as the
    image processor computes them, without its PIL round trip."""
    ip = getattr(processor, "image_processor", processor)
    mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() * ip.rescale_factor - mean) / std


def encode_captions(tokenizer, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``bos caption eos`` ids right-padded (pad = the tokenizer's pad, else eos), and the attention mask.

    Captions are cut to ``max_tokens`` tokens before ``eos`` (so every sequence still ends), with
    ``add_special_tokens=False`` so the tiny and the real tokenizers give the same layout.
    """
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = [[bos] + ids[:max_tokens] + [eos] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


__all__ = ["CaptionSet", "FLICKR", "N_REFERENCES", "TRAIN_SEED", "VAL_SEED", "encode_captions", "flickr_split",
           "pixel_values", "references", "shapes_split"]
