"""Stage 3 of ``tiny-llava``: referring expressions in, a bounding box out, as LLaVA-1.5 learned to point.

LLaVA-1.5 mixes region-level data (RefCOCO's "provide the bounding box coordinate of the region this
sentence describes") into instruction tuning. Here the shapes world's referring expressions and
reasoning queries are answered with the target's box, written as four location tokens
``<loc_x0> <loc_y0> <loc_x1> <loc_y1>`` (32 bins per side, Kosmos-2 / Pix2Seq style), and mixed into the
stage-2 conversations as extra isolated turns, so question answering keeps being trained. Held-out
accuracy is the share of boxes with IoU >= 0.5 against the target's visible extent (RefCOCO's measure).
Chapter 3 needs this skill: a ``<SEG>`` state can only tell SAM where the target is if the LM knows.
"""
from __future__ import annotations

import re

import numpy as np

from lisalib.world import Scene, generate_scenes
from lisalib.zoo.tokenizer import LOCATION_BINS

REC_PROMPT = "please provide the bounding box coordinate of the region this sentence describes: {sentence}"
_LOCATION = re.compile(r"<loc_(\d+)>")


def box_of(scene: Scene, index: int) -> list[float]:
    """[x0, y0, x1, y1] in pixels of object ``index``'s visible part (x1, y1 exclusive)."""
    mask = scene.visible_masks()[index]
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def box_text(box: list[float], width: int, height: int) -> str:
    """Four location tokens, one bin of ``LOCATION_BINS`` per coordinate."""
    scale = (width, height, width, height)
    bins = [min(int(v / s * LOCATION_BINS), LOCATION_BINS - 1) for v, s in zip(box, scale)]
    return " ".join(f"<loc_{b}>" for b in bins)


def parse_box(text: str, width: int, height: int) -> list[float] | None:
    """The first four location tokens of ``text`` as a pixel box (bin centres), or None."""
    bins = [int(b) for b in _LOCATION.findall(text)[:4]]
    if len(bins) < 4 or any(b >= LOCATION_BINS for b in bins):
        return None
    scale = (width, height, width, height)
    return [(b + 0.5) / LOCATION_BINS * s for b, s in zip(bins, scale)]


def box_iou(a: list[float] | None, b: list[float]) -> float:
    """IoU of two [x0, y0, x1, y1] boxes; 0 for a missing prediction."""
    if a is None:
        return 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def grounding_texts(scene: Scene) -> list[tuple[str, str, str]]:
    """("box", prompt, answer) triples: every referring expression of every object and every reasoning
    query, each answered with its target's box."""
    from lisalib.world.language import referring_expressions

    triples = []
    for i in range(len(scene.objects)):
        answer = box_text(box_of(scene, i), scene.width, scene.height)
        triples += [("box", REC_PROMPT.format(sentence=p), answer) for p in referring_expressions(scene, i)]
    for q in scene.reasoning_queries():
        answer = box_text(box_of(scene, q["target"]), scene.width, scene.height)
        triples.append(("box_reason", REC_PROMPT.format(sentence=q["text"]), answer))
    return triples


def heldout_grounding(n_scenes: int, seed: int) -> list[dict]:
    """Per held-out scene: one referring expression per object (phrasings taken in turn) and one reasoning
    query, each with its target's box."""
    from lisalib.world.language import referring_expressions

    items = []
    for scene in generate_scenes(n_scenes, seed=seed):
        for i in range(len(scene.objects)):
            phrases = referring_expressions(scene, i)
            items.append({"scene": scene, "type": "expression", "sentence": phrases[len(items) % len(phrases)],
                          "box": box_of(scene, i)})
        queries = scene.reasoning_queries()
        if queries:
            q = queries[len(items) % len(queries)]
            items.append({"scene": scene, "type": "reason", "sentence": q["text"], "box": box_of(scene, q["target"])})
    return items


def evaluate_grounding(model, processor, n_scenes: int, seed: int) -> dict:
    """Share of held-out boxes at IoU >= 0.5 (``rec``; ``rec_expression`` / ``rec_reason`` by kind) and the
    mean IoU (``rec_miou``)."""
    from lisalib.zoo.inference import answer_questions

    items = heldout_grounding(n_scenes, seed)
    answers = answer_questions(model, processor, [it["scene"].render() for it in items],
                               [REC_PROMPT.format(sentence=it["sentence"]) for it in items], max_new_tokens=5)
    ious = {"expression": [], "reason": []}
    for item, answer in zip(items, answers):
        scene = item["scene"]
        ious[item["type"]].append(box_iou(parse_box(answer, scene.width, scene.height), item["box"]))
    every = ious["expression"] + ious["reason"]
    hit = lambda values: round(float(np.mean([v >= 0.5 for v in values])), 4) if values else 0.0  # noqa: E731
    return {"rec": hit(every), "rec_expression": hit(ious["expression"]), "rec_reason": hit(ious["reason"]),
            "rec_miou": round(float(np.mean(every)), 4), "rec_n": len(every)}
