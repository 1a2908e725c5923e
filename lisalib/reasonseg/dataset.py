"""ReasonSeg, read exactly as LISA reads it (``get_mask_from_json`` in ``utils/data_processing.py`` of
https://github.com/dvlab-research/LISA; the data: the ReasonSeg release linked from that README).

A sample is an image plus a LabelMe-style JSON with the same stem::

    {"text": ["the thing you would sit on", ...], "is_sentence": true,
     "shapes": [{"label": "target", "points": [[x, y], ...]}, {"label": "ignore", ...}, ...]}

LISA's rules, reproduced here because gIoU/cIoU depend on every one of them:

* shapes labelled ``flag`` (case-insensitive, exact) are skipped;
* every polygon is rasterised filled *and* outlined, after truncating its points to int32;
* polygons are painted in descending order of their own rasterised area (small ones end on top);
* the value is 255 where the label contains ``ignore`` (case-insensitive here), else 1;
* the JSON is read as UTF-8, falling back to cp1252.

Rasterisation is :mod:`lisalib.reasonseg.raster`: LISA's own ``cv2.polylines`` + ``cv2.fillPoly`` calls
on the int32 points, so masks are pixel-identical to LISA's, polygons leaving the image included.

Deliberate departures, each an error or warning instead of a silent guess: a polygon with fewer than 3
points is an error (cv2 would draw a line); points outside the image are warned about (OpenCV clips
the painted region to the image, as in LISA; the vertices are not moved); a sample whose mask has no
target pixel is an error unless ``allow_empty=True`` (LISA keeps such samples and scores an empty
prediction 1.0 on them). Images get their EXIF orientation applied,
as ``cv2.imread`` (LISA's loader) and LabelMe do.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from lisalib.constants import IMAGE_TOKEN, MASK_TARGET_VALUE, SEG_TOKEN
from lisalib.images import ImageInputError, ensure_rgb
from lisalib.reasonseg.raster import paint_shapes

SHORT_QUESTION = "{image}\n What is {text} in this image? Please output segmentation mask."
LONG_QUESTION = "{image}\n {text} Please output segmentation mask."
ANSWER_TEMPLATES = (
    "It is {seg}.",
    "Sure, {seg}.",
    "Sure, it is {seg}.",
    "Sure, the segmentation result is {seg}.",
    "{seg}.",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
REQUIRED_KEYS = ("text", "is_sentence", "shapes")


class ReasonSegError(ValueError):
    """A sample that cannot be read as ReasonSeg; the message starts with the offending file."""

    def __init__(self, path: str | Path, message: str):
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class ReasonSegWarning(UserWarning):
    """Something LISA would accept silently but that probably is an annotation mistake."""


REASONSEG_ENV = "LISALIB_REASONSEG"  # a root holding LISA's ReasonSeg (train/, val/) or a hub copy (val/)


def chapter_data(split: str, synthetic: str | Path = "data/reasonseg_synth") -> tuple[Path, bool]:
    """``(root, is_real)`` for chapters 3-4: ``$LISALIB_REASONSEG`` when it holds ``split/``, else the
    synthetic root (written by the chapter when missing). Tables say which one they scored."""
    import os

    real = os.environ.get(REASONSEG_ENV)
    if real and (Path(real) / split).is_dir():
        return Path(real), True
    return Path(synthetic), False


# ----- prompts ------------------------------------------------------------------------------------
def question(text: str, is_sentence: bool, image_token: str = IMAGE_TOKEN) -> str:
    """LISA's evaluation prompt: long queries are used as they are, short phrases go into 'What is ...'."""
    template = LONG_QUESTION if is_sentence else SHORT_QUESTION
    return template.format(image=image_token, text=text)


def answer_templates(seg_token: str = SEG_TOKEN) -> list[str]:
    """LISA's training answers with the segmentation token filled in."""
    return [t.format(seg=seg_token) for t in ANSWER_TEMPLATES]


def user_query(text: str) -> str:
    """A learner's own query in LISA's prompt, as training and evaluation ask it: a sentence (ending in
    "?" or ".") as a long query, anything else as a short phrase ("What is ... in this image?")."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("the query is empty: type a phrase ('the red circle') or a question")
    return question(text, is_sentence=text.endswith(("?", ".")), image_token="").strip()


def eval_answer(seg_token: str = SEG_TOKEN) -> str:
    """The teacher-forced answer LISA's validation uses (no generation): ``'<SEG>.'``."""
    return ANSWER_TEMPLATES[-1].format(seg=seg_token)


# ----- annotations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Annotation:
    """A validated JSON: the queries, whether they are sentences, and (label, points) per polygon."""

    path: Path
    texts: list[str]
    is_sentence: bool
    shapes: list[tuple[str, np.ndarray]]  # flags already removed; points (N, 2) float x/y


def read_annotation(json_path: str | Path) -> Annotation:
    """Parse and validate one ReasonSeg JSON (UTF-8, then cp1252 as LISA does); flags are dropped."""
    path = Path(json_path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ReasonSegError(path, f"cannot be read ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as error:
            raise ReasonSegError(path, "is neither UTF-8 nor cp1252 text") from error
    try:
        anno = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ReasonSegError(path, f"is not valid JSON ({error.msg} at {where})") from error
    if not isinstance(anno, dict):
        raise ReasonSegError(path, f"must hold a JSON object, found {type(anno).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in anno]
    if missing:
        raise ReasonSegError(path, f"is missing key(s) {missing}; a ReasonSeg JSON needs {list(REQUIRED_KEYS)}")
    texts = anno["text"]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ReasonSegError(path, f"'text' must be a non-empty list of non-empty strings, got {texts!r:.80}")
    if not isinstance(anno["is_sentence"], bool):
        raise ReasonSegError(path, f"'is_sentence' must be true or false, got {anno['is_sentence']!r}")
    if not isinstance(anno["shapes"], list):
        raise ReasonSegError(path, f"'shapes' must be a list, got {type(anno['shapes']).__name__}")
    shapes = []
    for index, shape in enumerate(anno["shapes"]):
        if not isinstance(shape, dict) or "label" not in shape or "points" not in shape:
            raise ReasonSegError(path, f"shape {index} must be an object with 'label' and 'points'")
        label = shape["label"]
        if not isinstance(label, str):
            raise ReasonSegError(path, f"shape {index}: 'label' must be a string, got {label!r}")
        if label.lower() == "flag":  # LISA: "meaningless deprecated annotations"
            continue
        shapes.append((label, _points(shape["points"], path, index, label)))
    return Annotation(path, list(texts), anno["is_sentence"], shapes)


def _points(points: Any, path: Path, index: int, label: str) -> np.ndarray:
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ReasonSegError(path, f"shape {index} ({label!r}): points must be a list of [x, y] numbers") from error
    if array.ndim != 2 or array.shape[1] != 2:
        raise ReasonSegError(path, f"shape {index} ({label!r}): points must be [x, y] pairs, got shape {array.shape}")
    if len(array) < 3:
        raise ReasonSegError(path, f"shape {index} ({label!r}): a polygon needs at least 3 points, got {len(array)}")
    if not np.isfinite(array).all() or np.abs(array).max() > 2**30:
        raise ReasonSegError(path, f"shape {index} ({label!r}): points must be finite pixel coordinates")
    return array


# ----- ground truth -------------------------------------------------------------------------------
def mask_from_annotation(annotation: Annotation, height: int, width: int, allow_empty: bool = False) -> np.ndarray:
    """The uint8 ground truth (0 background, 1 target, 255 ignore), painted as LISA paints it."""
    for index, (label, points) in enumerate(annotation.shapes):
        xy = points.astype(np.int32)
        if (xy < 0).any() or (xy[:, 0] >= width).any() or (xy[:, 1] >= height).any():
            warnings.warn(ReasonSegWarning(
                f"{annotation.path}: shape {index} ({label!r}) has points outside the {width}x{height} image; "
                "the polygon is clipped to the image"), stacklevel=2)
    result = paint_shapes(annotation.shapes, height, width)
    if not allow_empty and not (result == MASK_TARGET_VALUE).any():
        raise ReasonSegError(annotation.path, "has no target pixel once flags and ignore regions are applied "
                                              "(pass allow_empty=True to keep such samples, as LISA does)")
    return result


# ----- samples ------------------------------------------------------------------------------------
@dataclass
class ReasonSegSample:
    image: Image.Image  # RGB
    mask: np.ndarray  # uint8 [H, W]: 0, 1 or 255
    texts: list[str]
    is_sentence: bool
    path: str  # the image file

    def as_dict(self) -> dict:
        return {"image": self.image, "mask": self.mask, "texts": self.texts, "is_sentence": self.is_sentence,
                "path": self.path}


def read_image(image_path: str | Path) -> Image.Image:
    """Decode an image to RGB with its EXIF orientation applied; errors name the file."""
    path = Path(image_path)
    try:
        with Image.open(path) as handle:
            handle.load()
            image = ImageOps.exif_transpose(handle)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise ReasonSegError(path, f"cannot be decoded as an image ({error})") from error
    try:
        return ensure_rgb(image)
    except ImageInputError as error:
        raise ReasonSegError(path, str(error)) from error


def read_sample(image_path: str | Path, json_path: str | Path | None = None,
                allow_empty: bool = False) -> ReasonSegSample:
    """One sample: the image and its JSON (same stem, ``.json``, unless given)."""
    image_path = Path(image_path)
    annotation = read_annotation(json_path if json_path is not None else image_path.with_suffix(".json"))
    image = read_image(image_path)
    mask = mask_from_annotation(annotation, image.height, image.width, allow_empty=allow_empty)
    return ReasonSegSample(image, mask, annotation.texts, annotation.is_sentence, str(image_path))


def collate_list(batch: list[dict]) -> list[dict]:
    """DataLoader ``collate_fn`` keeping samples as they are (images differ in size; LISA evaluates batch 1)."""
    return list(batch)


class ReasonSegDataset(Dataset):
    """A folder of ReasonSeg samples (``root/split/*.jpg|png`` + ``.json``), e.g. LISA's ``ReasonSeg/val``.

    Items are dicts with ``image`` (PIL RGB), ``mask`` (uint8 0/1/255), ``texts``, ``is_sentence`` and
    ``path``; ``transform`` (optional) is applied to that dict. Files are checked lazily, so a broken
    sample raises :class:`ReasonSegError` when it is read.
    """

    def __init__(self, root: str | Path, split: str | None = None, allow_empty: bool = False,
                 transform: Callable[[dict], Any] | None = None):
        folder = Path(root) / split if split else Path(root)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such ReasonSeg folder")
        self.folder = folder
        self.image_paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.image_paths:
            raise ReasonSegError(folder, f"holds no {'/'.join(IMAGE_SUFFIXES)} images")
        orphans = [p for p in self.image_paths if not p.with_suffix(".json").is_file()]
        if orphans:
            raise ReasonSegError(orphans[0], f"has no {orphans[0].stem}.json next to it "
                                             f"({len(orphans)} image(s) in {folder} lack an annotation)")
        self.allow_empty = allow_empty
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> Any:
        item = read_sample(self.image_paths[index], allow_empty=self.allow_empty).as_dict()
        return self.transform(item) if self.transform is not None else item
