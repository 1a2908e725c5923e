"""The shapes world: a seeded generator of small synthetic scenes with exact annotations.

Every chapter needs images whose ground truth is known exactly and that cost nothing to download:
coloured geometric shapes on a textured background, each with an exact polygon. This module holds the
geometry, the rendering, the masks (LISA's own polygon raster) and the generator; the text derived from
a scene (captions, questions, referring expressions, reasoning queries) is :mod:`lisalib.world.language`.
The same generator feeds VLM pretraining, SAM pretraining and reasoning segmentation. Same seed, same
data, on every machine (numpy's PCG64 stream + integer rasterisation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

from lisalib.reasonseg.raster import polygon_to_mask

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "green": (34, 160, 60),
    "blue": (35, 85, 220),
    "yellow": (240, 200, 30),
    "purple": (135, 55, 175),
    "orange": (245, 125, 20),
}


@dataclass(frozen=True)
class ShapeKind:
    """Facts about a kind of shape, used by captions and by reasoning queries in later chapters."""

    name: str
    corners: int  # 0 for the circle
    sides: int  # straight sides; 0 for the circle
    can_roll: bool
    plural: str


SHAPE_KINDS: dict[str, ShapeKind] = {
    "circle": ShapeKind("circle", corners=0, sides=0, can_roll=True, plural="circles"),
    "triangle": ShapeKind("triangle", corners=3, sides=3, can_roll=False, plural="triangles"),
    "square": ShapeKind("square", corners=4, sides=4, can_roll=False, plural="squares"),
    "pentagon": ShapeKind("pentagon", corners=5, sides=5, can_roll=False, plural="pentagons"),
    "star": ShapeKind("star", corners=10, sides=10, can_roll=False, plural="stars"),
}

CIRCLE_VERTICES = 48


def shape_polygon(kind: str, center: tuple[float, float], radius: float, rotation: float) -> np.ndarray:
    """Vertices (x, y) of a shape; the circle is a 48-gon so that every shape is an exact polygon."""
    if kind not in SHAPE_KINDS:
        raise ValueError(f"unknown shape kind {kind!r}; known: {sorted(SHAPE_KINDS)}")
    cx, cy = center
    if kind == "circle":
        angles = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
        radii = np.full_like(angles, radius)
    elif kind == "star":
        angles = rotation - np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    else:
        n = SHAPE_KINDS[kind].corners
        angles = rotation - np.pi / 2 + np.arange(n) * 2 * np.pi / n
        radii = np.full_like(angles, radius)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


@dataclass
class ShapeObject:
    kind: str
    colour: str
    center: tuple[float, float]
    radius: float
    rotation: float

    @cached_property
    def polygon(self) -> np.ndarray:
        return shape_polygon(self.kind, self.center, self.radius, self.rotation)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the polygon."""
        x0, y0 = self.polygon.min(axis=0)
        x1, y1 = self.polygon.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass
class Scene:
    """One image's worth of shapes; later objects are painted on top of earlier ones."""

    width: int
    height: int
    background: tuple[int, int, int]
    objects: list[ShapeObject]
    seed: tuple[int, ...]
    noise: float = 4.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ----- pixels -------------------------------------------------------------------------------
    def render(self) -> Image.Image:
        """The RGB image: background with mild seeded noise, shapes filled flat."""
        if "image" not in self._cache:
            rng = np.random.default_rng([*self.seed, 7])
            canvas = np.empty((self.height, self.width, 3), dtype=np.float32)
            canvas[:] = self.background
            canvas += rng.normal(0.0, self.noise, size=canvas.shape).astype(np.float32)
            for obj, mask in zip(self.objects, self.full_masks()):
                canvas[mask] = COLOURS[obj.colour]
            self._cache["image"] = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), "RGB")
        return self._cache["image"].copy()

    def full_masks(self) -> np.ndarray:
        """[N, H, W] bool: each object's whole polygon, occluded parts included."""
        if "full" not in self._cache:
            masks = [polygon_to_mask(o.polygon, self.height, self.width) for o in self.objects]
            self._cache["full"] = np.stack(masks) if masks else np.zeros((0, self.height, self.width), bool)
        return self._cache["full"]

    def visible_masks(self) -> np.ndarray:
        """[N, H, W] bool: what is actually visible of each object (later objects occlude earlier)."""
        if "visible" not in self._cache:
            full = self.full_masks()
            visible = full.copy()
            covered = np.zeros((self.height, self.width), dtype=bool)
            for i in range(len(full) - 1, -1, -1):
                visible[i] &= ~covered
                covered |= full[i]
            self._cache["visible"] = visible
        return self._cache["visible"]

    def find(self, colour: str | None = None, kind: str | None = None) -> list[int]:
        return [
            i
            for i, o in enumerate(self.objects)
            if (colour is None or o.colour == colour) and (kind is None or o.kind == kind)
        ]

    # ----- language (lisalib.world.language) ---------------------------------------------------------
    def position_words(self, index: int, margin: float = 0.06) -> str | None:
        """'top left', 'center', ... or None near a thirds' border (:func:`~lisalib.world.language.position_words`)."""
        from lisalib.world.language import position_words

        return position_words(self, index, margin)

    def caption(self) -> str:
        """The scene's caption (:func:`~lisalib.world.language.caption`)."""
        from lisalib.world.language import caption

        return caption(self)

    def questions(self) -> list[dict]:
        """Unambiguous question/answer pairs (:func:`~lisalib.world.language.questions`)."""
        from lisalib.world.language import questions

        return questions(self)

    def referring_expressions(self, index: int) -> list[str]:
        """Phrases naming object ``index`` only (:func:`~lisalib.world.language.referring_expressions`)."""
        from lisalib.world.language import referring_expressions

        return referring_expressions(self, index)

    def reasoning_queries(self) -> list[dict]:
        """Long queries with one target each (:func:`~lisalib.world.language.reasoning_queries`)."""
        from lisalib.world.language import reasoning_queries

        return reasoning_queries(self)

    def to_dict(self) -> dict:
        """A JSON-ready description (polygons as x/y lists), e.g. for writing annotations."""
        return {
            "width": self.width,
            "height": self.height,
            "seed": list(self.seed),
            "objects": [
                {"kind": o.kind, "colour": o.colour, "polygon": o.polygon.round(2).tolist()} for o in self.objects
            ],
        }


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the generator. Defaults give the 128x128 scenes of the tiny zoo."""

    size: int = 128
    min_objects: int = 1
    max_objects: int = 6
    min_radius: float = 11.0
    max_radius: float = 24.0
    max_overlap: float = 0.15  # largest fraction of either object's area two objects may share
    noise: float = 4.0
    attempts: int = 60


def generate_scene(seed: int | tuple[int, ...], config: SceneConfig = SceneConfig()) -> Scene:
    """One scene, fully determined by ``seed`` and ``config``.

    Each (colour, kind) pair occurs at most once, so "the red circle" always names one object. Objects
    are placed by rejection sampling; if a crowded scene cannot fit the drawn number of objects, it
    keeps the ones it placed (the annotations always describe what is drawn).
    """
    seed_tuple = tuple(int(s) for s in (seed if isinstance(seed, tuple) else (seed,)))
    rng = np.random.default_rng(list(seed_tuple))
    size = config.size
    n_target = int(rng.integers(config.min_objects, config.max_objects + 1))
    background = tuple(int(v) for v in rng.integers(205, 250, size=3))
    pairs = [(c, k) for c in COLOURS for k in SHAPE_KINDS]
    order = rng.permutation(len(pairs))
    objects: list[ShapeObject] = []
    masks: list[np.ndarray] = []
    for pair_index in order:
        if len(objects) == n_target:
            break
        colour, kind = pairs[pair_index]
        for _ in range(config.attempts):
            radius = float(rng.uniform(config.min_radius, config.max_radius))
            cx = float(rng.uniform(radius, size - radius))
            cy = float(rng.uniform(radius, size - radius))
            candidate = ShapeObject(kind, colour, (cx, cy), radius, float(rng.uniform(0, 2 * np.pi)))
            mask = polygon_to_mask(candidate.polygon, size, size)
            area = mask.sum()
            if area == 0:
                continue
            if all((mask & m).sum() <= config.max_overlap * min(area, m.sum()) for m in masks):
                objects.append(candidate)
                masks.append(mask)
                break
    return Scene(size, size, background, objects, seed_tuple, noise=config.noise)


def generate_scenes(n: int, seed: int = 0, config: SceneConfig = SceneConfig()) -> list[Scene]:
    """``n`` scenes; scene ``i`` depends only on ``(seed, i)``, so subsets are stable."""
    return [generate_scene((seed, i), config) for i in range(n)]
