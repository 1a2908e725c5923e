"""The shapes world: a seeded generator of small synthetic scenes with exact annotations.

Every chapter needs images whose ground truth is known exactly and that cost nothing to download:
coloured geometric shapes on a textured background, each with an exact polygon. From a scene we
derive captions, question/answer pairs, referring expressions and masks, so the same generator feeds
VLM pretraining, SAM pretraining, reasoning segmentation, high-resolution token selection and
captioning. Same seed, same data, on every machine (numpy's PCG64 stream + integer rasterisation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image
from skimage.draw import polygon as rasterize_polygon

from lisalib.constants import CHAT_PROMPT, IMAGE_TOKEN

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

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
CAPTION_QUESTION = "describe the image."
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


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise an (N, 2) x/y polygon to a boolean mask (scikit-image's even-odd fill)."""
    rows, cols = rasterize_polygon(polygon[:, 1], polygon[:, 0], shape=(height, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    return mask


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
            masks = [polygon_mask(o.polygon, self.height, self.width) for o in self.objects]
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

    # ----- language -----------------------------------------------------------------------------
    def position_words(self, index: int, margin: float = 0.06) -> str | None:
        """'top left', 'right', 'center', ... or None when the centre sits too close to a boundary.

        The image is split in thirds; objects within ``margin`` (fraction of the side) of a third's
        border get no position word, so that every position answer is unambiguous.
        """
        cx, cy = self.objects[index].center
        horizontal = _third(cx / self.width, ("left", None, "right"), margin)
        vertical = _third(cy / self.height, ("top", None, "bottom"), margin)
        if horizontal is False or vertical is False:
            return None
        if horizontal is None and vertical is None:
            return "center"
        return " ".join(w for w in (vertical, horizontal) if w)

    def caption(self) -> str:
        """'three shapes: a red circle, a blue square and a green star.' listed left to right."""
        order = sorted(range(len(self.objects)), key=lambda i: self.objects[i].center[0])
        names = [f"{article(self.objects[i].colour)} {self.objects[i].name}" for i in order]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        noun = "shape" if len(names) == 1 else "shapes"
        return f"{NUMBER_WORDS[len(names)]} {noun}: {listed}."

    def questions(self) -> list[dict]:
        """Question/answer pairs whose answers are unambiguous in this scene.

        Types: ``colour`` (of a kind that occurs once), ``shape`` (of a colour that occurs once),
        ``count`` (all shapes), ``position`` (of a colour+kind, away from the thirds' borders),
        ``exists`` (yes/no for a colour+kind present or absent).
        """
        qa: list[dict] = []
        kinds = [o.kind for o in self.objects]
        colours = [o.colour for o in self.objects]
        for i, obj in enumerate(self.objects):
            if kinds.count(obj.kind) == 1:
                qa.append(_qa("colour", f"what color is the {obj.kind}?", obj.colour, i))
            if colours.count(obj.colour) == 1:
                qa.append(_qa("shape", f"what shape is the {obj.colour} object?", obj.kind, i))
            where = self.position_words(i)
            if where is not None:
                qa.append(_qa("position", f"where is the {obj.name}?", where, i))
        qa.append(_qa("count", "how many shapes are there?", NUMBER_WORDS[len(self.objects)], None))
        rng = np.random.default_rng([*self.seed, 11])
        present = self.objects[int(rng.integers(len(self.objects)))] if self.objects else None
        if present is not None:
            qa.append(_qa("exists", f"is there {article(present.colour)} {present.name}?", "yes", self.objects.index(present)))
        absent = [(c, k) for c in COLOURS for k in SHAPE_KINDS if not self.find(c, k)]
        c, k = absent[int(rng.integers(len(absent)))]
        qa.append(_qa("exists", f"is there {article(c)} {c} {k}?", "no", None))
        return qa

    def referring_expressions(self, index: int) -> list[str]:
        """Phrases that pick out object ``index`` and no other object in this scene."""
        obj = self.objects[index]
        phrases = [f"the {obj.name}"]
        if len(self.find(kind=obj.kind)) == 1:
            phrases.append(f"the {obj.kind}")
        if len(self.find(colour=obj.colour)) == 1:
            phrases.append(f"the {obj.colour} shape")
        if len(self.objects) > 1:
            xs = np.array([o.center[0] for o in self.objects])
            areas = self.visible_masks().sum(axis=(1, 2))
            ranked_x = np.sort(xs)
            gap = 0.1 * self.width  # only say "leftmost" when no other shape is nearly as far left
            if xs[index] == ranked_x[0] and ranked_x[1] - ranked_x[0] > gap:
                phrases.append("the leftmost shape")
            if xs[index] == ranked_x[-1] and ranked_x[-1] - ranked_x[-2] > gap:
                phrases.append("the rightmost shape")
            ranked = np.sort(areas)
            if areas[index] == ranked[-1] and ranked[-1] > 1.5 * ranked[-2]:
                phrases.append("the largest shape")
            if areas[index] == ranked[0] and ranked[1] > 1.5 * ranked[0]:
                phrases.append("the smallest shape")
        return phrases

    def reasoning_queries(self) -> list[dict]:
        """Queries that need a step of reasoning to find their one target object (ReasonSeg's long queries).

        Each is ``{"type", "text", "target", "is_sentence": True}``; a query is only produced when exactly
        one object satisfies it. Types: ``roll`` (the circle), ``corners`` (a count of corners),
        ``most_corners`` / ``fewest_corners``, ``same_sides`` (as many corners as another shape has
        sides), ``same_colour`` (shares a colour with a named shape), ``closest`` (nearest to a named
        shape), ``largest_of_kind``, ``region`` (the only shape in a part of the image).
        """
        queries: list[dict] = []
        objs = self.objects
        if not objs:
            return queries
        kinds = [o.kind for o in objs]
        colours = [o.colour for o in objs]
        corners = [SHAPE_KINDS[k].corners for k in kinds]
        areas = self.visible_masks().sum(axis=(1, 2))

        def add(kind: str, text: str, target: int) -> None:
            queries.append({"type": kind, "text": text, "target": target, "is_sentence": True})

        if kinds.count("circle") == 1:
            add("roll", "which shape would roll down a hill?", kinds.index("circle"))
        for n in sorted(set(corners) - {0}):
            if corners.count(n) == 1:
                add("corners", f"which shape has {NUMBER_WORDS[n]} corners?", corners.index(n))
        if len(objs) > 1:
            for word, pick in (("most", max), ("fewest", min)):
                best = pick(corners)
                if corners.count(best) == 1:
                    add(f"{word}_corners", f"which shape has the {word} corners?", corners.index(best))
        for j, ref in enumerate(objs):
            sides = SHAPE_KINDS[ref.kind].sides
            if colours.count(ref.colour) == 1 and sides:
                matches = [i for i in range(len(objs)) if i != j and corners[i] == sides]
                if len(matches) == 1:
                    add("same_sides", f"which shape has as many corners as the {ref.colour} one has sides?",
                        matches[0])
            if kinds.count(ref.kind) == 1:
                matches = [i for i in range(len(objs)) if i != j and colours[i] == ref.colour]
                if len(matches) == 1:
                    add("same_colour", f"which shape has the same color as the {ref.kind}?", matches[0])
        if len(objs) > 2:
            centres = np.array([o.center for o in objs])
            for j, ref in enumerate(objs):
                distance = np.linalg.norm(centres - centres[j], axis=1)
                distance[j] = np.inf
                order = np.argsort(distance)
                if distance[order[1]] > 1.5 * distance[order[0]]:
                    add("closest", f"which shape is closest to the {ref.name}?", int(order[0]))
        for kind in SHAPE_KINDS:
            same = [i for i in range(len(objs)) if kinds[i] == kind]
            if len(same) > 1:
                ranked = sorted(same, key=lambda i: areas[i])
                if areas[ranked[-1]] > 1.5 * areas[ranked[-2]]:
                    add("largest_of_kind", f"which {kind} is the largest?", ranked[-1])
        regions = [self.position_words(i, margin=0.0) for i in range(len(objs))]
        for i, region in enumerate(regions):
            if regions.count(region) == 1 and self.position_words(i) is not None:
                add("region", f"which shape is in the {region} of the image?", i)
        return queries

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


def _third(fraction: float, words: tuple, margin: float):
    """Word for the third a fraction falls in; False when within ``margin`` of a border."""
    if abs(fraction - 1 / 3) < margin or abs(fraction - 2 / 3) < margin:
        return False
    return words[min(int(fraction * 3), 2)]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _qa(kind: str, question: str, answer: str, target: int | None) -> dict:
    return {"type": kind, "question": question, "answer": answer, "target": target}


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
            mask = polygon_mask(candidate.polygon, size, size)
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


def vocabulary() -> list[str]:
    """Every word the shapes-world text generators can produce, sorted (for the word-level tokenizer)."""
    words = set(COLOURS) | set(SHAPE_KINDS) | {k.plural for k in SHAPE_KINDS.values()} | set(NUMBER_WORDS)
    words |= {"top", "bottom", "left", "right", "center", "leftmost", "rightmost", "largest", "smallest"}
    templates = [
        CHAT_PROMPT.replace(IMAGE_TOKEN, "").replace("{question}", ""),
        CAPTION_QUESTION,
        "what color is the object? what shape is the object? how many shapes are there?",
        "where is the? is there a an? yes no shape shapes: a, and the . middle",
        "which shape would roll down a hill? has corners most fewest as many one sides same closest to",
        "largest in of image",
        # LISA's segmentation prompt and answer templates (lisalib.reasonseg.dataset), so chapter 3's
        # queries reach the tiny VLM as words rather than <unk>
        "what is this in this image? please output segmentation mask. sure, it is the segmentation result is",
    ]
    for text in templates:
        words |= set(split_words(text))
    return sorted(words)


def split_words(text: str) -> list[str]:
    """Lower-case words and punctuation marks, the same split the tiny tokenizer uses."""
    import re

    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())
