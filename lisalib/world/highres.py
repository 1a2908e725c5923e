"""The high-resolution shapes world: large scenes whose answers hide in details only resolution reveals.

SHIRG exists because pooling an image to a fixed token budget loses small details (LaViDa: DocVQA 43.2 ->
58.7 going from one 384 px view to 768 px multi-view). This module gives the tiny world the same property:
canvases larger than the 128 px world (default 256x256), many ordinary distractors, and one to three small
targets carrying a digit (3x5 bitmap font, scaled), a thin stripe, or being a tiny star. It also makes the
views a LaViDa-style multi-view encoder sees (one global view + a 2x2 grid of tiles at twice its resolution,
scaled down to 64 px views of 8 px patches) and measures, before any training, how much of each target
survives in them (:func:`resolution_statistics`). Shapes, colours, polygons and masks are :mod:`.scenes`'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from lisalib.reasonseg.raster import polygon_to_mask
from lisalib.world.language import NUMBER_WORDS, article, split_words, vocabulary
from lisalib.world.scenes import COLOURS, SHAPE_KINDS, Scene, SceneConfig, ShapeObject

# 3x5 glyphs, rows top to bottom ("1" = ink); scaled by an integer, so rendering is exact
DIGIT_FONT: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}
DETAIL_KINDS = {"digit": "square", "stripe": "circle", "star": "star"}  # the shape each detail sits on
COUNT_WORDS = NUMBER_WORDS + ["eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                              "nineteen", "twenty"] + [f"twenty {w}" for w in NUMBER_WORDS[1:10]] + ["thirty"]
VIEW_SIZE = 64  # LaViDa's 384 px SigLIP view, scaled down
PATCH_SIZE = 8  # so a view is an 8x8 patch grid (LaViDa: 27x27 of 14 px)
TARGET_GAP = 3  # px of background kept around every small target


def glyph_mask(digit: str, scale: int = 2) -> np.ndarray:
    """[5*scale, 3*scale] bool: the digit's 3x5 glyph, each cell a scale x scale block."""
    cells = np.array([[c == "1" for c in row] for row in DIGIT_FONT[digit]])
    return np.kron(cells, np.ones((scale, scale), bool)).astype(bool)


@dataclass(frozen=True)
class HighResConfig:
    """Knobs of the high-resolution generator; defaults give 256x256 scenes whose digits read at tile resolution only.

    Distractor radii are the 128 px world's (11-24 px) times ``radius_scale`` (default: min side / 128, i.e.
    the same shapes drawn on a bigger canvas). Targets must be smaller than every distractor, and a digit
    target must be big enough to hold its glyph.
    """

    width: int = 256
    height: int = 256
    min_distractors: int = 6
    max_distractors: int = 14
    radius_scale: float | None = None
    min_targets: int = 1
    max_targets: int = 3
    min_target_radius: float = 8.0
    max_target_radius: float = 10.0
    details: tuple[str, ...] = ("digit", "stripe", "star")
    glyph_scale: int = 2  # 3x5 font -> 6x10 px glyphs
    stripe_width: float = 1.0
    max_overlap: float = 0.15
    noise: float = 4.0
    attempts: int = 60

    @property
    def distractor_radii(self) -> tuple[float, float]:
        scale = self.radius_scale if self.radius_scale is not None else min(self.width, self.height) / 128
        return SceneConfig().min_radius * scale, SceneConfig().max_radius * scale

    @property
    def min_digit_radius(self) -> float:
        """Smallest square radius holding the centred glyph with a rim (half side >= glyph height / 2 + 0.5)."""
        return (5 * self.glyph_scale / 2 + 0.5) * math.sqrt(2)

    def __post_init__(self):
        if min(self.width, self.height) < VIEW_SIZE:
            raise ValueError(f"canvas {self.width}x{self.height} is smaller than a {VIEW_SIZE} px view")
        if not 1 <= self.min_targets <= self.max_targets or not 0 <= self.min_distractors <= self.max_distractors:
            raise ValueError("need 1 <= min_targets <= max_targets and 0 <= min_distractors <= max_distractors")
        if self.max_distractors + self.max_targets > len(COLOURS) * len(SHAPE_KINDS):
            raise ValueError(f"at most {len(COLOURS) * len(SHAPE_KINDS)} objects: each (colour, kind) occurs once")
        if not self.details or set(self.details) - set(DETAIL_KINDS):
            raise ValueError(f"details must be a non-empty subset of {sorted(DETAIL_KINDS)}, got {self.details}")
        if not 1 <= self.glyph_scale <= 2 * TARGET_GAP or self.stripe_width <= 0:
            raise ValueError(f"need 1 <= glyph_scale <= {2 * TARGET_GAP} and stripe_width > 0")
        if not 0 < self.min_target_radius <= self.max_target_radius:
            raise ValueError("need 0 < min_target_radius <= max_target_radius")
        smallest = self.distractor_radii[0]
        if self.max_target_radius >= smallest:
            raise ValueError(f"max_target_radius {self.max_target_radius} is too large: small targets must be "
                             f"smaller than the smallest distractor (radius {smallest:g})")
        if "digit" in self.details and self.min_target_radius < self.min_digit_radius:
            raise ValueError(f"min_target_radius {self.min_target_radius} cannot hold a {3 * self.glyph_scale}x"
                             f"{5 * self.glyph_scale} px digit (needs >= {self.min_digit_radius:.2f})")


@dataclass(frozen=True)
class SmallTarget:
    """A small object (``scene.objects[index]``) and its detail: a digit on a square, a stripe (or none) on
    a circle, or being a tiny star; ``origin`` is the glyph's top-left pixel, ``angle`` the stripe's."""

    index: int
    detail: str
    digit: str | None = None
    striped: bool = False
    angle: float = 0.0
    origin: tuple[int, int] | None = None


@dataclass
class HighResScene(Scene):
    """A :class:`Scene` whose last objects are small targets; details are painted over them in an ink colour."""

    targets: list[SmallTarget] = field(default_factory=list)
    glyph_scale: int = 2
    stripe_width: float = 1.0

    def render(self) -> Image.Image:
        if "detailed" not in self._cache:
            canvas = np.asarray(super().render()).copy()
            for t in self.targets:
                canvas[self.ink_mask(t)] = self.ink_colour(t)
            self._cache["detailed"] = Image.fromarray(canvas, "RGB")
        return self._cache["detailed"].copy()

    def ink_colour(self, target: SmallTarget) -> tuple[int, int, int]:
        """Black or white, whichever contrasts more with the target's colour."""
        r, g, b = COLOURS[self.objects[target.index].colour]
        return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)

    def ink_mask(self, target: SmallTarget) -> np.ndarray:
        """[H, W] bool: the detail's pixels (glyph or stripe), always inside the target; empty for stars."""
        mask = np.zeros((self.height, self.width), bool)
        if target.detail == "digit":
            glyph = glyph_mask(target.digit, self.glyph_scale)
            x, y = target.origin
            mask[y:y + glyph.shape[0], x:x + glyph.shape[1]] = glyph
        elif target.striped:
            cx, cy = self.objects[target.index].center
            rows, cols = np.mgrid[0:self.height, 0:self.width] + 0.5
            distance = np.abs((cols - cx) * math.sin(target.angle) - (rows - cy) * math.cos(target.angle))
            mask = (distance <= self.stripe_width / 2) & self.full_masks()[target.index]
        return mask

    def target_box(self, target: SmallTarget) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 pixel edges of the target's mask (columns x0..x1-1, rows y0..y1-1)."""
        rows, cols = np.nonzero(self.full_masks()[target.index])
        return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1

    def glyph_box(self, target: SmallTarget) -> tuple[int, int, int, int]:
        x, y = target.origin
        return x, y, x + 3 * self.glyph_scale, y + 5 * self.glyph_scale

    def target_name(self, target: SmallTarget) -> str:
        size = "tiny" if target.detail == "star" else "small"
        return f"{size} {self.objects[target.index].name}"

    def caption(self, details: bool = False) -> str:
        """:func:`highres_caption`."""
        return highres_caption(self, details)

    def questions(self) -> list[dict]:
        """:func:`highres_questions`."""
        return highres_questions(self)

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["targets"] = [{"index": t.index, "detail": t.detail, "digit": t.digit, "striped": t.striped,
                            "box": list(self.target_box(t))} for t in self.targets]
        return data


def generate_highres_scene(seed: int | tuple[int, ...], config: HighResConfig = HighResConfig()) -> HighResScene:
    """One large scene, fully determined by ``seed`` and ``config``.

    Targets are placed first (apart from each other by a gap), then distractors by rejection sampling as in
    :func:`~lisalib.world.scenes.generate_scene`, never touching a target; targets are painted last, so they
    are fully visible. Each (colour, kind) pair occurs at most once, so "the small red square" names one object.
    """
    seed_tuple = tuple(int(s) for s in (seed if isinstance(seed, tuple) else (seed,)))
    rng = np.random.default_rng(list(seed_tuple))
    w, h = config.width, config.height
    background = tuple(int(v) for v in rng.integers(205, 250, size=3))
    n_targets = int(rng.integers(config.min_targets, config.max_targets + 1))
    n_distractors = int(rng.integers(config.min_distractors, config.max_distractors + 1))
    used: set[tuple[str, str]] = set()
    reserved = np.zeros((h, w), bool)  # targets plus their gap: distractors keep out
    small: list[tuple[ShapeObject, dict]] = []
    for _ in range(n_targets):
        detail = config.details[int(rng.integers(len(config.details)))]
        kind = DETAIL_KINDS[detail]
        colours = [c for c in COLOURS if (c, kind) not in used]
        colour = colours[int(rng.integers(len(colours)))]
        for _ in range(config.attempts):
            radius = float(rng.uniform(config.min_target_radius, config.max_target_radius))
            margin = radius + TARGET_GAP
            cx, cy = float(rng.uniform(margin, w - margin)), float(rng.uniform(margin, h - margin))
            if detail == "digit":  # centre the glyph on the plate, its cells on a glyph_scale grid
                step = config.glyph_scale
                cx, cy = _snap(cx, 3 * step, step), _snap(cy, 5 * step, step)
            # squares axis-aligned (a plate for the glyph), stars at any angle
            rotation = float(rng.uniform(0, 2 * math.pi)) if kind == "star" else math.pi / 4 * (kind == "square")
            obj = ShapeObject(kind, colour, (cx, cy), radius, rotation)
            zone = _box_zone(polygon_to_mask(obj.polygon, h, w), TARGET_GAP)
            if not (zone & reserved).any():
                break
        else:
            continue
        extra: dict = {}
        if detail == "digit":
            extra["digit"] = str(int(rng.integers(10)))
            extra["origin"] = (round(cx - 1.5 * config.glyph_scale), round(cy - 2.5 * config.glyph_scale))
        elif detail == "stripe":
            extra["striped"] = bool(rng.random() < 0.5)
            extra["angle"] = float(rng.integers(4)) * math.pi / 4
        used.add((colour, kind))
        reserved |= zone
        small.append((obj, {"detail": detail, **extra}))

    low, high = config.distractor_radii
    pairs = [(c, k) for c in COLOURS for k in SHAPE_KINDS if (c, k) not in used]
    distractors: list[ShapeObject] = []
    masks: list[np.ndarray] = []
    for pair_index in rng.permutation(len(pairs)):
        if len(distractors) == n_distractors:
            break
        colour, kind = pairs[pair_index]
        for _ in range(config.attempts):
            radius = float(rng.uniform(low, high))
            cx, cy = float(rng.uniform(radius, w - radius)), float(rng.uniform(radius, h - radius))
            candidate = ShapeObject(kind, colour, (cx, cy), radius, float(rng.uniform(0, 2 * math.pi)))
            mask = polygon_to_mask(candidate.polygon, h, w)
            area = mask.sum()
            if area == 0 or (mask & reserved).any():
                continue
            if all((mask & m).sum() <= config.max_overlap * min(area, m.sum()) for m in masks):
                distractors.append(candidate)
                masks.append(mask)
                break
    objects = distractors + [obj for obj, _ in small]
    targets = [SmallTarget(len(distractors) + i, **extra) for i, (_, extra) in enumerate(small)]
    return HighResScene(w, h, background, objects, seed_tuple, noise=config.noise, targets=targets,
                        glyph_scale=config.glyph_scale, stripe_width=config.stripe_width)


def generate_highres_scenes(n: int, seed: int = 0, config: HighResConfig = HighResConfig()) -> list[HighResScene]:
    """``n`` scenes; scene ``i`` depends only on ``(seed, i)``."""
    return [generate_highres_scene((seed, i), config) for i in range(n)]


def _snap(centre: float, extent: int, step: int) -> float:
    """The centre nearest ``centre`` whose ``extent``-long span starts on a multiple of ``step``: at the tiles'
    resolution (half the canvas by default) each glyph cell is then exactly one pixel, as printed text sits
    on a scanner's grid; unaligned glyphs blur across pixel rows and read ~78% instead of 100% there."""
    return round((centre - extent / 2) / step) * step + extent / 2


def _box_zone(mask: np.ndarray, gap: int) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    zone = np.zeros_like(mask)
    zone[max(rows.min() - gap, 0):rows.max() + gap + 1, max(cols.min() - gap, 0):cols.max() + gap + 1] = True
    return zone


# ----- language ----------------------------------------------------------------------------------------
def highres_caption(scene: HighResScene, details: bool = False) -> str:
    """:func:`~lisalib.world.language.caption`'s style over all shapes, left to right, targets as "a small red
    square" / "a tiny green star"; with ``details``, "a small red square with the digit 7", "... with a stripe"."""
    names = {i: scene.objects[i].name for i in range(len(scene.objects))}
    for t in scene.targets:
        names[t.index] = scene.target_name(t)
        if details and t.detail == "digit":
            names[t.index] += f" with the digit {t.digit}"
        elif details and t.striped:
            names[t.index] += " with a stripe"
    order = sorted(names, key=lambda i: scene.objects[i].center[0])
    listed = [f"{article(names[i])} {names[i]}" for i in order]
    text = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    return f"{COUNT_WORDS[len(listed)]} {'shape' if len(listed) == 1 else 'shapes'}: {text}."


def highres_questions(scene: HighResScene) -> list[dict]:
    """Questions only a target's detail answers, each with the boxes (x0, y0, x1, y1) of the targets involved.

    Types: ``digit`` ("which digit is on the small red square?" -> "7"), ``stripe`` ("is there a stripe on the
    small blue circle?" -> "yes"/"no"), ``tiny_count`` ("how many tiny stars are there?" -> "two"; number
    words, as the 128 px world's counts). Unambiguous: each (colour, kind) occurs once per scene.
    """
    qa = []
    for t in scene.targets:
        name, box = scene.target_name(t), [scene.target_box(t)]
        if t.detail == "digit":
            qa.append(_qa("digit", f"which digit is on the {name}?", t.digit, t.index, box))
        elif t.detail == "stripe":
            qa.append(_qa("stripe", f"is there a stripe on the {name}?", "yes" if t.striped else "no", t.index, box))
    stars = [t for t in scene.targets if t.detail == "star"]
    qa.append(_qa("tiny_count", "how many tiny stars are there?", COUNT_WORDS[len(stars)], None,
                  [scene.target_box(t) for t in stars]))
    return qa


def _qa(kind: str, question: str, answer: str, target: int | None, boxes: list) -> dict:
    return {"type": kind, "question": question, "answer": answer, "target": target, "boxes": boxes}


def highres_vocabulary() -> list[str]:
    """:func:`~lisalib.world.language.vocabulary` plus every word the high-resolution texts add."""
    extra = " ".join(["small tiny which digit is on the how many stars are there? a stripe with shapes: , and .",
                      *DIGIT_FONT, *COUNT_WORDS])
    return sorted(set(vocabulary()) | set(split_words(extra)))


# ----- views -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """One encoder view: ``kind`` "global" or "tile" (``row``, ``col`` in the 2x2 grid). A canvas pixel x maps
    to view pixel ``x * scale[0] - offset[0]`` (same for y); ``boxes[i]`` is target i's box there (clipped,
    None when outside the view) and ``patches[i]`` the row-major patch indices that box touches."""

    kind: str
    row: int
    col: int
    image: Image.Image
    scale: tuple[float, float]
    offset: tuple[float, float]
    patch_size: int
    boxes: list
    patches: list


def encoder_views(scene: HighResScene, view_size: int = VIEW_SIZE, patch_size: int = PATCH_SIZE) -> list[View]:
    """LaViDa's views, scaled down: ``[global] + tiles`` (tiles row-major), as its ``process_anyres_image``.

    The global view is the canvas resized to ``view_size`` (aspect distorted, as LaViDa); the tiles cut the
    canvas resized into a ``2 * view_size`` square with its aspect kept and black padding (LaViDa's
    ``resize_and_pad_image``), i.e. twice the global view's resolution. Bicubic, as SigLIP's processor.
    A view need not be a multiple of the patch (so400m: 384 px = 27 x 14 + 6): the grid is ``view_size //
    patch_size`` and pixels past it are never seen, as SigLIP's valid-padding patch embedding drops them.
    """
    if not 0 < patch_size <= view_size:
        raise ValueError(f"patch_size {patch_size} must be in 1..view_size ({view_size})")
    if scene.width < view_size or scene.height < view_size:
        raise ValueError(f"canvas {scene.width}x{scene.height} is smaller than a {view_size} px view")
    image = scene.render()
    boxes = [scene.target_box(t) for t in scene.targets]
    views = [_view("global", 0, 0, image.resize((view_size, view_size), Image.BICUBIC),
                   (view_size / scene.width, view_size / scene.height), (0.0, 0.0), patch_size, boxes)]
    (new_w, new_h), (pad_x, pad_y) = _letterbox(scene.width, scene.height, 2 * view_size)
    padded = Image.new("RGB", (2 * view_size, 2 * view_size))
    padded.paste(image.resize((new_w, new_h), Image.BICUBIC), (pad_x, pad_y))
    for row in range(2):
        for col in range(2):
            tile = padded.crop((col * view_size, row * view_size, (col + 1) * view_size, (row + 1) * view_size))
            offset = (col * view_size - pad_x, row * view_size - pad_y)
            views.append(_view("tile", row, col, tile, (new_w / scene.width, new_h / scene.height), offset,
                               patch_size, boxes))
    return views


def _letterbox(width: int, height: int, side: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Size of the canvas resized to fit a ``side`` square (aspect kept) and its centring padding."""
    if side / width < side / height:
        new_w, new_h = side, min(math.ceil(height * side / width), side)
    else:
        new_w, new_h = min(math.ceil(width * side / height), side), side
    return (new_w, new_h), ((side - new_w) // 2, (side - new_h) // 2)


def _view(kind, row, col, image, scale, offset, patch_size, boxes) -> View:
    size, grid = image.width, image.width // patch_size
    mapped, patches = [], []
    for x0, y0, x1, y1 in boxes:
        u0, u1 = max(x0 * scale[0] - offset[0], 0.0), min(x1 * scale[0] - offset[0], float(size))
        v0, v1 = max(y0 * scale[1] - offset[1], 0.0), min(y1 * scale[1] - offset[1], float(size))
        if u1 <= u0 or v1 <= v0:
            mapped.append(None)
            patches.append([])
            continue
        mapped.append((u0, v0, u1, v1))
        cols = range(int(u0 // patch_size), min(math.ceil(u1 / patch_size), grid))
        rows = range(int(v0 // patch_size), min(math.ceil(v1 / patch_size), grid))
        patches.append([r * grid + c for r in rows for c in cols])
    return View(kind, row, col, image, scale, offset, patch_size, mapped, patches)


# ----- what survives ------------------------------------------------------------------------------------
def read_digit(image: Image.Image | np.ndarray, box: tuple[int, int, int, int], plate: tuple[int, int, int]) -> str:
    """Nearest-template reading of the glyph in ``box`` (canvas pixels): the digit whose 3x5 glyph, scaled to
    the box, correlates best with the pixels' distance from the ``plate`` colour."""
    x0, y0, x1, y1 = box
    crop = np.asarray(image, dtype=np.float64)[y0:y1, x0:x1]
    ink = np.linalg.norm(crop - np.asarray(plate, dtype=np.float64), axis=-1).ravel()
    scores = {}
    for digit, rows in DIGIT_FONT.items():
        cells = np.array([[c == "1" for c in row] for row in rows], dtype=np.float64)
        template = cells[np.arange(y1 - y0) * 5 // (y1 - y0)][:, np.arange(x1 - x0) * 3 // (x1 - x0)].ravel()
        scores[digit] = np.corrcoef(ink, template)[0, 1] if ink.std() > 0 else -np.inf
    return max(scores, key=scores.get)


def degraded_canvases(scene: HighResScene, view_size: int = VIEW_SIZE) -> dict[str, Image.Image]:
    """The canvas as each encoder sees it, resized back to canvas size: ``full``, ``tiles`` (the 2x2 grid's
    resolution) and ``global`` (the one view's), with the same bicubic resizes as :func:`encoder_views`."""
    image = scene.render()
    size = (scene.width, scene.height)
    (new_w, new_h), _ = _letterbox(scene.width, scene.height, 2 * view_size)
    return {
        "full": image,
        "tiles": image.resize((new_w, new_h), Image.BICUBIC).resize(size, Image.BICUBIC),
        "global": image.resize((view_size, view_size), Image.BICUBIC).resize(size, Image.BICUBIC),
    }


def resolution_statistics(scenes: list[HighResScene], view_size: int = VIEW_SIZE,
                          patch_size: int = PATCH_SIZE) -> dict[str, float]:
    """How much of the small targets each encoder input keeps, measured on pixels, before any training.

    ``global_one_patch`` / ``tiles_one_patch``: fraction of targets whose box touches at most one patch of
    the global view / of the four tiles together (one token would have to carry the whole target);
    ``global_patches`` / ``tiles_patches``: mean patches touched; ``digit_read_<full|tiles|global>``: the
    template reader's accuracy on each resolution; ``ink_<digit|stripe>_<tiles|global>``: mean fraction of a
    detail's ink (its pixels' distance from the plate colour) that survives the resizes (1.0 at full resolution).
    """
    one = {"global": [], "tiles": []}
    count = {"global": [], "tiles": []}
    read = {"full": [], "tiles": [], "global": []}
    ink = {f"{d}_{k}": [] for d in ("digit", "stripe") for k in ("tiles", "global")}
    for scene in scenes:
        views = encoder_views(scene, view_size, patch_size)
        canvases = degraded_canvases(scene, view_size)
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in canvases.items()}
        for i, t in enumerate(scene.targets):
            spans = {"global": len(views[0].patches[i]), "tiles": sum(len(v.patches[i]) for v in views[1:])}
            for k, n in spans.items():
                one[k].append(n <= 1)
                count[k].append(n)
            plate = COLOURS[scene.objects[t.index].colour]
            if t.detail == "digit":
                for k in read:
                    read[k].append(read_digit(canvases[k], scene.glyph_box(t), plate) == t.digit)
            mask = scene.ink_mask(t)
            if mask.any():
                full_contrast = np.linalg.norm(np.subtract(scene.ink_colour(t), plate))
                for k in ("tiles", "global"):
                    kept = np.linalg.norm(arrays[k][mask] - np.asarray(plate, np.float64), axis=-1) / full_contrast
                    ink[f"{t.detail}_{k}"].append(float(np.clip(kept, 0, 1).mean()))
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    stats = {"targets": len(one["global"]), "digits": len(read["full"])}
    stats |= {f"{k}_one_patch": mean(v) for k, v in one.items()}
    stats |= {f"{k}_patches": mean(v) for k, v in count.items()}
    stats |= {f"digit_read_{k}": mean(v) for k, v in read.items()}
    stats |= {f"ink_{k}": mean(v) for k, v in ink.items()}
    return stats
