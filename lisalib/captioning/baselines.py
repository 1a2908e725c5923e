"""Captions that need no learning, scored with the same code as the models.

- ``most_frequent``: the one training reference that occurs most often, given to every image;
- ``nearest_neighbour``: each image gets the first reference of the training image closest to it in the
  frozen SigLIP's pooled embedding space (cosine), the retrieval baseline of Devlin et al. (2015) reduced to
  k = 1. It uses the same vision tower the captioners read, so a captioner below it has learnt less from
  the features than a lookup table does;
- ``nearest_neighbour_patches``: the same lookup on the mean of the tower's last-layer patch tokens, the very
  features the captioners read (no attention-pooling head, which tiny-siglip trained contrastively on this
  world's captions): a captioner below it is not just missing the head.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from lisalib.captioning.data import CaptionSet, pixel_values
from lisalib.captioning.metrics import score_captions


def most_frequent_caption(train: CaptionSet) -> str:
    counts = Counter(r for refs in train.refs for r in refs)
    return max(sorted(counts), key=counts.__getitem__)


@torch.no_grad()
def tower_embeddings(siglip, processor, images, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm ``(pooled, patches)`` [N, D] each, from one pass of the vision tower: its attention-pooling
    head's embedding (what ``SiglipModel.get_image_features`` returns) and the mean of its last-layer patch
    tokens (``last_hidden_state``, what the captioners read)."""
    tower = getattr(siglip, "vision_model", siglip)
    pooled, patches = [], []
    for start in range(0, len(images), batch_size):
        out = tower(pixel_values=pixel_values(images[start:start + batch_size], processor))
        pooled.append(out.pooler_output)
        patches.append(out.last_hidden_state.mean(1))
    return F.normalize(torch.cat(pooled).float(), dim=-1), F.normalize(torch.cat(patches).float(), dim=-1)


def image_embeddings(siglip, processor, images, batch_size: int = 128) -> torch.Tensor:
    """[N, D] unit-norm pooled image embeddings (the tower's attention-pooling head)."""
    return tower_embeddings(siglip, processor, images, batch_size)[0]


def patch_embeddings(siglip, processor, images, batch_size: int = 128) -> torch.Tensor:
    """[N, D] unit-norm means of the vision tower's last-layer patch tokens."""
    return tower_embeddings(siglip, processor, images, batch_size)[1]


def nearest_captions(keys: torch.Tensor, queries: torch.Tensor, train: CaptionSet) -> list[str]:
    """The first reference of the training image nearest (cosine) to each query."""
    return [train.refs[j][0] for j in (queries @ keys.T).argmax(dim=1).tolist()]


def nearest_neighbour_captions(siglip, processor, train: CaptionSet, val: CaptionSet, embed=image_embeddings) -> list[str]:
    """The first reference of each val image's nearest training image (cosine of ``embed``'s vectors)."""
    return nearest_captions(embed(siglip, processor, train.images), embed(siglip, processor, val.images), train)


def baseline_scores(siglip, processor, train: CaptionSet, val: CaptionSet) -> dict:
    """``{name: {bleu4, rouge_l, cider, ..., "example"}}`` for the three baselines on ``val`` (one tower pass
    per image serves both lookups)."""
    frequent = most_frequent_caption(train)
    (train_pooled, train_patches), (val_pooled, val_patches) = (tower_embeddings(siglip, processor, d.images)
                                                                for d in (train, val))
    rows = {"most_frequent": [frequent] * len(val),
            "nearest_neighbour": nearest_captions(train_pooled, val_pooled, train),
            "nearest_neighbour_patches": nearest_captions(train_patches, val_patches, train)}
    return {name: {**score_captions(val.refs, caps), "example": caps[0]} for name, caps in rows.items()}


__all__ = ["baseline_scores", "image_embeddings", "most_frequent_caption", "nearest_captions",
           "nearest_neighbour_captions", "patch_embeddings", "tower_embeddings"]
