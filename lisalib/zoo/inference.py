"""Inference helpers shared by the zoo's evaluation and the notebooks: ask a VLM, prompt SAM.

They take any (model, processor) pair from :mod:`lisalib.zoo`, tiny or real, so the same call answers
a question with ``tiny-llava`` on a CPU and with ``llava-hf/llava-1.5-7b-hf`` on a GPU.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import torch

from lisalib.images import ensure_rgb
from lisalib.constants import chat_prompt

if TYPE_CHECKING:
    from transformers import SamModel, SamProcessor


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """A short answer as the VQA scorer compares it: lower case, no punctuation or articles, number words
    as digits, only the first sentence ("Two." and "there are 2" -> "2" and "there are 2")."""
    text = text.strip().lower().split("\n")[0]
    text = re.split(r"(?<=[a-z0-9])[.!?](\s|$)", text)[0]
    words = [w for w in re.sub(r"[^\w\s]", " ", text).split() if w not in _ARTICLES]
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words)


def answers_match(answer: str, truth: str) -> bool:
    """Exact match after :func:`normalize_answer` on both sides (the tutorial's VQA accuracy)."""
    return normalize_answer(answer) == normalize_answer(truth)


@torch.no_grad()
def answer_questions(model, processor, images, questions: list[str], max_new_tokens: int = 4,
                     batch_size: int = 32, suffix: str = "") -> list[str]:
    """Greedy answers, batched with left padding (set here: a right-padded batch would generate after pads).

    ``suffix`` is appended to each question on a new line: LLaVA-1.5's short-answer instruction on the real
    profile ("Answer the question using a single word or phrase."), nothing for ``tiny-llava``.
    """
    processor.tokenizer.padding_side = "left"
    answers: list[str] = []
    images = [ensure_rgb(im) for im in images]
    if len(images) != len(questions):
        raise ValueError(f"got {len(images)} images for {len(questions)} questions")
    for start in range(0, len(questions), batch_size):
        prompts = [chat_prompt(f"{q}\n{suffix}" if suffix else q) for q in questions[start:start + batch_size]]
        inputs = processor(images=images[start:start + batch_size], text=prompts, return_tensors="pt", padding=True)
        inputs = inputs.to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        answers += [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


@torch.no_grad()
def segment_from_points(model: SamModel, processor: SamProcessor, image, points: list[tuple[float, float]]) -> np.ndarray:
    """Masks [P, H, W] bool for one image at its own size, one positive point each.

    Points are (x, y) pixel indices of the image (column, row), as :func:`lisalib.reasonseg.masks.centre_point`
    gives them; SAM's prompt encoder adds the half pixel to reach the pixel centre.
    """
    image = ensure_rgb(image)
    if not points:
        raise ValueError("give at least one (x, y) point prompt")
    inputs = processor(images=image, input_points=[[[list(p)] for p in points]], return_tensors="pt")
    inputs = inputs.to(model.device)
    out = model(pixel_values=inputs["pixel_values"].to(model.dtype), input_points=inputs["input_points"],
                multimask_output=False)
    masks = processor.image_processor.post_process_masks(
        out.pred_masks.float().cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
    )[0]
    return masks[:, 0].numpy()
