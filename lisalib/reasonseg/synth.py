"""A synthetic reasoning-segmentation set from the shapes world, written in ReasonSeg's own format.

Each sample is one scene, one target object and a list of queries that all pick out that target:
either short referring phrases (``is_sentence: false``, from ``Scene.referring_expressions``: "the red
circle", "the leftmost shape") or long implicit queries (``is_sentence: true``, from
``Scene.reasoning_queries``: "which shape would roll down a hill?"). Writing PNG + LabelMe-style JSON
means :mod:`lisalib.reasonseg.dataset` reads this set and the real ReasonSeg through the same code.

Ignore region: **the occluded part of the target** (its full polygon minus what is visible, i.e. the
pixels where a shape drawn later covers it) is labelled ``ignore``. Those pixels are genuinely ambiguous
for "segment the red circle": amodal segmentation says they belong to the circle, what the image shows
says they belong to the shape on top. Marking them 255 scores neither reading as an error, as ReasonSeg
does for its ambiguous regions. Everything visible is exact, so nothing else is ignored.

Polygons are written pixel-exact: each connected part of the target (and of the ignore region) is traced
along its boundary pixel centres (scikit-image's marching squares, snapped to the inside pixel), so
LISA's fill-plus-outline raster of the written points reproduces the scene's masks exactly; every
sample is checked by reading it back before it is written.

Splits use disjoint scene seeds ``(seed, 0x5253, split_id, i)``; the constant keeps them apart from the
zoo's pretraining scenes ``(1000..4000, i)``. Same arguments, same bytes.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.measure import find_contours, label

from lisalib.cli import dataclass_parser
from lisalib.constants import MASK_IGNORE_VALUE, MASK_TARGET_VALUE
from lisalib.reasonseg.dataset import Annotation, mask_from_annotation
from lisalib.reasonseg.raster import polygon_to_mask
from lisalib.world.scenes import Scene, SceneConfig, generate_scene

SPLITS = {"train": 0, "val": 1, "test": 2}
STREAM = 0x5253  # "RS": separates these scenes from every other use of generate_scene
TARGET_LABEL = "target"
IGNORE_LABEL = "ignore (occluded part of the target)"
SHORT_TYPE = "referring"
MAX_SCENES_PER_SAMPLE = 20


def scene_seed(seed: int, split: str, index: int) -> tuple[int, int, int, int]:
    """Seed tuple of scene ``index`` of a split; tuples of different splits never coincide."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    return (int(seed), STREAM, SPLITS[split], int(index))


def target_masks(scene: Scene, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(visible, ignore) bool masks of object ``index``: what is seen, and its part hidden by later shapes."""
    full, visible = scene.full_masks()[index], scene.visible_masks()[index]
    return visible, full & ~visible


def mask_to_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Integer x/y polygons, one per 8-connected part, whose LISA raster equals ``mask`` exactly.

    Raises ``ValueError`` when a part cannot be written as one polygon (a part with a hole).
    """
    mask = np.asarray(mask, dtype=bool)
    parts = label(mask, connectivity=2)
    polygons = []
    for part in range(1, parts.max() + 1):
        region = parts == part
        padded = np.pad(region, 1)
        contour = max(find_contours(padded.astype(np.float32), 0.5, fully_connected="high"), key=len)
        # each contour point sits between an inside and an outside pixel centre: snap it inside
        low, high = np.floor(contour).astype(int), np.ceil(contour).astype(int)
        pixels = np.where(padded[low[:, 0], low[:, 1]][:, None], low, high) - 1
        keep = np.any(pixels != np.roll(pixels, 1, axis=0), axis=1)  # drop repeats (the contour is closed)
        pixels = pixels[keep] if keep.any() else pixels[:1]
        steps = pixels - np.roll(pixels, 1, axis=0)
        corner = np.any(steps != np.roll(steps, -1, axis=0), axis=1)  # drop points inside straight runs
        pixels = pixels[corner] if corner.any() else pixels[:1]
        xy = pixels[:, ::-1]
        if len(xy) < 3:
            xy = np.vstack([xy, np.repeat(xy[-1:], 3 - len(xy), axis=0)])
        if not np.array_equal(polygon_to_mask(xy, *mask.shape), region):
            raise ValueError("a connected part of the mask has a hole and cannot be written as one polygon")
        polygons.append(xy)
    return polygons


@dataclass
class SynthSample:
    """One sample before it is written: the scene, the chosen target and its queries."""

    scene: Scene
    target: int
    texts: list[str]
    is_sentence: bool
    query_type: str
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def annotation(self) -> dict:
        """The ReasonSeg JSON for this sample (plus a ``synth`` record of where it came from)."""
        if "annotation" not in self._cache:
            self._cache["annotation"] = self._build_annotation()
        return dict(self._cache["annotation"])

    def _build_annotation(self) -> dict:
        visible, ignore = target_masks(self.scene, self.target)
        shapes = [{"label": name, "points": p.tolist(), "shape_type": "polygon"}
                  for name, mask in ((TARGET_LABEL, visible), (IGNORE_LABEL, ignore)) for p in mask_to_polygons(mask)]
        return {
            "text": self.texts,
            "is_sentence": self.is_sentence,
            "shapes": shapes,
            "imageHeight": self.scene.height,
            "imageWidth": self.scene.width,
            "synth": {"scene_seed": list(self.scene.seed), "target": self.target,
                      "target_name": self.scene.objects[self.target].name, "query_type": self.query_type},
        }

    def gt_mask(self) -> np.ndarray:
        """The uint8 mask the reader must produce: 1 visible target, 255 its occluded part."""
        visible, ignore = target_masks(self.scene, self.target)
        return np.where(visible, MASK_TARGET_VALUE, np.where(ignore, MASK_IGNORE_VALUE, 0)).astype(np.uint8)


def synth_record(image_path: str | Path) -> dict:
    """The ``synth`` record this module writes into each annotation (scene seed, target, its name, query
    type); ``{}`` for an annotation without one, e.g. real ReasonSeg, or one that cannot be read."""
    try:
        annotation = json.loads(Path(image_path).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return annotation.get("synth") or {}


def choose_sample(scene: Scene, rng: np.random.Generator, long_fraction: float = 0.5) -> SynthSample | None:
    """Pick short or long (long with probability ``long_fraction``), then a query type, then a target.

    Long samples pick a query type uniformly among those the scene offers (so rare types are not drowned
    by common ones); all queries naming the same target become the sample's ``text`` list. A scene with
    no long query gives a short sample instead. ``None`` when no object is visible.
    """
    visible = scene.visible_masks().any(axis=(1, 2))
    if not visible.any():
        return None
    wants_long = rng.random() < long_fraction
    queries = [q for q in scene.reasoning_queries() if visible[q["target"]]] if wants_long else []
    if queries:
        types = sorted({q["type"] for q in queries})
        query_type = types[int(rng.integers(len(types)))]
        of_type = [q for q in queries if q["type"] == query_type]
        chosen = of_type[int(rng.integers(len(of_type)))]
        others = [q["text"] for q in queries if q["target"] == chosen["target"] and q is not chosen]
        return SynthSample(scene, chosen["target"], [chosen["text"], *others], True, query_type)
    candidates = np.flatnonzero(visible)
    target = int(candidates[int(rng.integers(len(candidates)))])
    phrases = scene.referring_expressions(target)
    phrases = [phrases[i] for i in rng.permutation(len(phrases))]
    return SynthSample(scene, target, phrases, False, SHORT_TYPE)


def generate_split(split: str, n: int, seed: int = 0, long_fraction: float = 0.5,
                   config: SceneConfig = SceneConfig()) -> tuple[list[SynthSample], int]:
    """``n`` samples of a split and the number of scenes skipped (nothing visible, or not writable)."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0.0 <= long_fraction <= 1.0:
        raise ValueError(f"long_fraction must be in [0, 1], got {long_fraction}")
    samples: list[SynthSample] = []
    index = skipped = 0
    while len(samples) < n:
        if index >= MAX_SCENES_PER_SAMPLE * max(n, 1):
            raise RuntimeError(f"only {len(samples)} of {n} samples after {index} scenes; check the SceneConfig")
        seed_tuple = scene_seed(seed, split, index)
        scene = generate_scene(seed_tuple, config)
        sample = choose_sample(scene, np.random.default_rng([*seed_tuple, 13]), long_fraction)
        index += 1
        if sample is None:
            skipped += 1
            continue
        try:
            sample.annotation()
        except ValueError:
            skipped += 1
            continue
        samples.append(sample)
    return samples, skipped


def write_split(out: str | Path, split: str, n: int, seed: int = 0, long_fraction: float = 0.5,
                config: SceneConfig = SceneConfig(), overwrite: bool = False) -> dict:
    """Write ``out/split/{split}_{i:05d}.png|.json`` and return a summary (counts by type, short/long).

    Every sample is read back through LISA's mask rules and compared with the scene before writing.
    """
    folder = Path(out) / split
    existing = sorted(folder.glob("*.png")) + sorted(folder.glob("*.json")) if folder.is_dir() else []
    if existing and not overwrite:
        raise FileExistsError(f"{folder} already holds {len(existing)} sample file(s); use overwrite=True "
                              "(--overwrite) to replace them")
    for path in existing:
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    samples, skipped = generate_split(split, n, seed, long_fraction, config)
    types: Counter[str] = Counter()
    ignore_samples = 0
    for i, sample in enumerate(samples):
        stem = f"{split}_{i:05d}"
        annotation = sample.annotation()
        annotation["imagePath"] = f"{stem}.png"
        check = _read_back(annotation, folder / f"{stem}.json", sample.scene)
        if not np.array_equal(check, sample.gt_mask()):
            raise AssertionError(f"{stem}: the written polygons do not reproduce the scene's mask")
        sample.scene.render().save(folder / f"{stem}.png", format="PNG")
        (folder / f"{stem}.json").write_text(json.dumps(annotation), encoding="utf-8")
        types[sample.query_type] += 1
        ignore_samples += bool((check == MASK_IGNORE_VALUE).any())
    long_count = sum(s.is_sentence for s in samples)
    return {
        "folder": str(folder), "split": split, "n": len(samples), "seed": seed, "long_fraction": long_fraction,
        "short": len(samples) - long_count, "long": long_count, "types": dict(sorted(types.items())),
        "with_ignore": ignore_samples, "scenes_skipped": skipped,
    }


def _read_back(annotation: dict, path: Path, scene: Scene) -> np.ndarray:
    shapes = [(s["label"], np.asarray(s["points"], dtype=np.float64)) for s in annotation["shapes"]]
    parsed = Annotation(path, annotation["text"], annotation["is_sentence"], shapes)
    return mask_from_annotation(parsed, scene.height, scene.width)


@dataclass
class SynthArgs:
    out: str = field(metadata={"help": "dataset root; samples go to OUT/SPLIT/"})
    split: str = field(default="val", metadata={"help": "which split (disjoint seeds)", "choices": sorted(SPLITS)})
    n: int = field(default=200, metadata={"help": "number of samples (ReasonSeg val has 200)"})
    seed: int = field(default=0, metadata={"help": "base seed"})
    long_fraction: float = field(default=0.5, metadata={"help": "probability that a sample uses long reasoning queries"})
    overwrite: bool = field(default=False, metadata={"help": "replace sample files already in OUT/SPLIT"})
    json: bool = field(default=False, metadata={"help": "print the summary as JSON"})


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(SynthArgs, "python -m lisalib.reasonseg.synth",
                              "Write a synthetic ReasonSeg-format split (PNG + JSON per sample) from the shapes world.")
    (args,) = parser.parse_args_into_dataclasses(argv)
    try:
        summary = write_split(args.out, args.split, args.n, args.seed, args.long_fraction, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {summary['n']} samples to {summary['folder']}: {summary['short']} short, {summary['long']} long, "
              f"{summary['with_ignore']} with an ignore region")
        for name, count in summary["types"].items():
            print(f"  {name:<16} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
