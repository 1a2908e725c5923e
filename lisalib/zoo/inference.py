"""Inference helpers shared by the zoo's evaluation and the notebooks: ask a VLM, prompt SAM.

They take any (model, processor) pair from :mod:`lisalib.zoo`, tiny or real, so the same call answers
a question with ``tiny-llava`` on a CPU and with ``llava-hf/llava-1.5-7b-hf`` on a GPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lisalib.images import ensure_rgb
from lisalib.constants import chat_prompt

if TYPE_CHECKING:
    from transformers import SamModel, SamProcessor


@torch.no_grad()
def answer_questions(model, processor, images, questions: list[str], max_new_tokens: int = 4,
                     batch_size: int = 32) -> list[str]:
    """Greedy answers, batched with left padding (the processor's default for this tokenizer)."""
    answers: list[str] = []
    images = [ensure_rgb(im) for im in images]
    if len(images) != len(questions):
        raise ValueError(f"got {len(images)} images for {len(questions)} questions")
    for start in range(0, len(questions), batch_size):
        prompts = [chat_prompt(q) for q in questions[start:start + batch_size]]
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
