"""The language of the shapes world: captions, questions and answers, referring expressions, reasoning
queries, and the closed vocabulary the tiny tokenizer is built from.

Every text is derived from a :class:`~lisalib.world.scenes.Scene` and is only produced when it is
unambiguous in that scene (one object answers it), so answers and segmentation targets are exact.
``Scene.caption()``, ``Scene.questions()``, ... delegate here.
"""
from __future__ import annotations

import re

import numpy as np

from lisalib.constants import CHAT_PROMPT, IMAGE_TOKEN
from lisalib.world.scenes import COLOURS, SHAPE_KINDS, Scene

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
CAPTION_QUESTION = "describe the image."


def position_words(scene: Scene, index: int, margin: float = 0.06) -> str | None:
    """'top left', 'right', 'center', ... or None when the centre sits too close to a boundary.

    The image is split in thirds; objects within ``margin`` (fraction of the side) of a third's
    border get no position word, so that every position answer is unambiguous.
    """
    cx, cy = scene.objects[index].center
    horizontal = _third(cx / scene.width, ("left", None, "right"), margin)
    vertical = _third(cy / scene.height, ("top", None, "bottom"), margin)
    if horizontal is False or vertical is False:
        return None
    if horizontal is None and vertical is None:
        return "center"
    return " ".join(w for w in (vertical, horizontal) if w)


def caption(scene: Scene) -> str:
    """'three shapes: a red circle, a blue square and a green star.' listed left to right."""
    order = sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].center[0])
    names = [f"{article(scene.objects[i].colour)} {scene.objects[i].name}" for i in order]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    noun = "shape" if len(names) == 1 else "shapes"
    return f"{NUMBER_WORDS[len(names)]} {noun}: {listed}."


def questions(scene: Scene) -> list[dict]:
    """Question/answer pairs whose answers are unambiguous in this scene.

    Types: ``colour`` (of a kind that occurs once), ``shape`` (of a colour that occurs once),
    ``count`` (all shapes), ``position`` (of a colour+kind, away from the thirds' borders),
    ``exists`` (yes/no for a colour+kind present or absent).
    """
    qa: list[dict] = []
    kinds = [o.kind for o in scene.objects]
    colours = [o.colour for o in scene.objects]
    for i, obj in enumerate(scene.objects):
        if kinds.count(obj.kind) == 1:
            qa.append(_qa("colour", f"what color is the {obj.kind}?", obj.colour, i))
        if colours.count(obj.colour) == 1:
            qa.append(_qa("shape", f"what shape is the {obj.colour} object?", obj.kind, i))
        where = position_words(scene, i)
        if where is not None:
            qa.append(_qa("position", f"where is the {obj.name}?", where, i))
    qa.append(_qa("count", "how many shapes are there?", NUMBER_WORDS[len(scene.objects)], None))
    rng = np.random.default_rng([*scene.seed, 11])
    present = scene.objects[int(rng.integers(len(scene.objects)))] if scene.objects else None
    if present is not None:
        qa.append(_qa("exists", f"is there {article(present.colour)} {present.name}?", "yes", scene.objects.index(present)))
    absent = [(c, k) for c in COLOURS for k in SHAPE_KINDS if not scene.find(c, k)]
    c, k = absent[int(rng.integers(len(absent)))]
    qa.append(_qa("exists", f"is there {article(c)} {c} {k}?", "no", None))
    return qa


def referring_expressions(scene: Scene, index: int) -> list[str]:
    """Phrases that pick out object ``index`` and no other object in this scene."""
    obj = scene.objects[index]
    phrases = [f"the {obj.name}"]
    if len(scene.find(kind=obj.kind)) == 1:
        phrases.append(f"the {obj.kind}")
    if len(scene.find(colour=obj.colour)) == 1:
        phrases.append(f"the {obj.colour} shape")
    if len(scene.objects) > 1:
        xs = np.array([o.center[0] for o in scene.objects])
        areas = scene.visible_masks().sum(axis=(1, 2))
        ranked_x = np.sort(xs)
        gap = 0.1 * scene.width  # only say "leftmost" when no other shape is nearly as far left
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


def reasoning_queries(scene: Scene) -> list[dict]:
    """Queries that need a step of reasoning to find their one target object (ReasonSeg's long queries).

    Each is ``{"type", "text", "target", "is_sentence": True}``; a query is only produced when exactly
    one object satisfies it. Types: ``roll`` (the circle), ``corners`` (a count of corners),
    ``most_corners`` / ``fewest_corners``, ``same_sides`` (as many corners as another shape has
    sides), ``same_colour`` (shares a colour with a named shape), ``closest`` (nearest to a named
    shape), ``largest_of_kind``, ``region`` (the only shape in a part of the image).
    """
    queries: list[dict] = []
    objs = scene.objects
    if not objs:
        return queries
    kinds = [o.kind for o in objs]
    colours = [o.colour for o in objs]
    corners = [SHAPE_KINDS[k].corners for k in kinds]
    areas = scene.visible_masks().sum(axis=(1, 2))

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
    regions = [position_words(scene, i, margin=0.0) for i in range(len(objs))]
    for i, region in enumerate(regions):
        if regions.count(region) == 1 and position_words(scene, i) is not None:
            add("region", f"which shape is in the {region} of the image?", i)
    return queries


def _third(fraction: float, words: tuple, margin: float):
    """Word for the third a fraction falls in; False when within ``margin`` of a border."""
    if abs(fraction - 1 / 3) < margin or abs(fraction - 2 / 3) < margin:
        return False
    return words[min(int(fraction * 3), 2)]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _qa(kind: str, question: str, answer: str, target: int | None) -> dict:
    return {"type": kind, "question": question, "answer": answer, "target": target}


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
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())
