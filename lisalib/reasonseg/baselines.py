"""Query-blind baselines: masks chosen without reading the query, the floor a reasoning-segmentation model
must clear before its gIoU says it understood anything.

For a synthetic sample the scene is rebuilt from the seed its annotation records, and three masks are
scored against the ground truth exactly as a model's: every shape in the scene, the largest visible shape,
and one shape at random (seeded per sample). Real ReasonSeg images have no object list: for them
:func:`query_blind_scores` falls back to masks that need no objects, the whole image and a centred box
covering the middle half of each side (ReasonSeg's targets sit near the centre more often than not).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lisalib.constants import MASK_TARGET_VALUE
from lisalib.reasonseg.metrics import ReasonSegMetrics
from lisalib.reasonseg.synth import synth_record
from lisalib.world import Scene, generate_scene

BASELINES = ("every shape", "largest shape", "random shape")
IMAGE_BASELINES = ("whole image", "centre box")


def scene_of(sample: dict) -> tuple[Scene, dict]:
    """The shapes-world scene a synthetic sample was drawn from and its ``synth`` record, the scene checked
    against the sample's ground truth."""
    record = synth_record(sample["path"])
    if "scene_seed" not in record:
        raise ValueError(f"{sample['path']}: no synthetic scene record; query-blind baselines need the scene's "
                         "objects, which only lisalib.reasonseg.synth annotations carry")
    scene = generate_scene(tuple(record["scene_seed"]))
    target = scene.visible_masks()[record["target"]]
    if not np.array_equal(target, np.asarray(sample["mask"]) == MASK_TARGET_VALUE):
        raise ValueError(f"{sample['path']}: the rebuilt scene's target does not match the annotation "
                         "(written by another version of the shapes world?)")
    return scene, record


def query_blind_masks(sample: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """``{baseline: bool [H, W] mask}`` for one synthetic sample, none of them reading the query."""
    scene, record = scene_of(sample)
    visible = scene.visible_masks()
    areas = visible.reshape(len(visible), -1).sum(axis=1)
    pick = int(np.random.default_rng([seed, *record["scene_seed"]]).integers(len(visible)))
    return {"every shape": visible.any(axis=0), "largest shape": visible[int(np.argmax(areas))],
            "random shape": visible[pick]}


def image_blind_masks(sample: dict) -> dict[str, np.ndarray]:
    """``{baseline: bool [H, W] mask}`` that need nothing but the image's size (any ReasonSeg sample)."""
    height, width = np.asarray(sample["mask"]).shape
    box = np.zeros((height, width), dtype=bool)
    box[height // 4:height - height // 4, width // 4:width - width // 4] = True
    return {"whole image": np.ones((height, width), dtype=bool), "centre box": box}


def is_synthetic(sample: dict) -> bool:
    return "scene_seed" in synth_record(sample["path"])


def query_blind_scores(samples: Sequence[dict], seed: int = 0) -> dict[str, dict]:
    """LISA's gIoU / cIoU (overall, short, long) of each baseline over ``samples``: the scene baselines on a
    synthetic split, the image baselines on any other (real ReasonSeg)."""
    synthetic = all(is_synthetic(sample) for sample in samples)
    metrics = {name: ReasonSegMetrics() for name in (BASELINES if synthetic else IMAGE_BASELINES)}
    for sample in samples:
        masks = query_blind_masks(sample, seed) if synthetic else image_blind_masks(sample)
        for name, mask in masks.items():
            metrics[name].update(mask, sample["mask"], sample["is_sentence"])
    return {name: m.compute() for name, m in metrics.items()}
