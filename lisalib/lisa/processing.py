"""Turn images, questions, answers and masks into the tensors a LISA model takes.

One object pairs the VLM's processor (text + CLIP pixels; any family of :mod:`lisalib.backbones`, whose
adapter writes the prompt and the family's view) with SAM's processor (SAM pixels and the
resize/pad geometry needed to bring masks back to the original image). It owns the ``<SEG>`` token: it
adds it to the tokenizer, builds teacher-forcing labels, and refuses a training sample whose answer does
not contain one ``<SEG>`` per ground-truth mask.

The three vision sources see the image in different geometries:

- ``dual`` (LISA): CLIP gets its processor's view (shortest edge resized, centre crop), SAM gets its own
  (longest edge resized, zero-padded bottom/right to a square). Each head reads its own encoder.
- ``vlm``: SAM's mask decoder reads CLIP's patch grid, so CLIP must see the same frame SAM's masks live
  in: the image is first padded bottom/right to a square (with CLIP's mean colour, as LLaVA-1.5's
  ``pad`` mode does), which CLIP then resizes without cropping. No SAM pixels are produced.
- ``sam``: only SAM pixels are produced; the LLM's image tokens come from SAM's embedding.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AddedToken, SamProcessor

from lisalib.backbones import LlavaAdapter, adapter_for
from lisalib.backbones.base import pad_to_square
from lisalib.constants import LABEL_IGNORE_INDEX, MASK_TARGET_VALUE, SEG_TOKEN
from lisalib.images import ensure_rgb

VISION_SOURCES = ("dual", "vlm", "sam")
_CONFIG_NAME = "lisa_processor.json"


class LisaInputError(ValueError):
    """Raised for a batch that cannot be processed as asked (empty, mismatched lengths, missing <SEG>)."""


__all__ = ["LisaInputError", "LisaProcessor", "grid_to_image", "image_to_grid", "mask_points", "pad_to_square",
           "postprocess_masks"]


class LisaProcessor:
    """The VLM processor and the SAM processor, plus ``<SEG>``. See the module docstring for geometries."""

    def __init__(self, vlm_processor, sam_processor: SamProcessor, seg_token: str = SEG_TOKEN):
        self.vlm_processor = vlm_processor
        self.backbone = adapter_for(processor=vlm_processor)  # processor-side adapter of the VLM's family
        self.sam_processor = sam_processor
        self.tokenizer = vlm_processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation appends on the right; modeling's positions assume it
        self.seg_token = seg_token
        if seg_token not in self.tokenizer.get_vocab():
            # a plain added token (not "special"), matched before the word splitter and kept by decode(),
            # so answers read "... <SEG> ." exactly as the model produced them
            self.tokenizer.add_tokens([AddedToken(seg_token, normalized=False, special=False)])

    # ----- identity ----------------------------------------------------------------------------------
    @property
    def seg_token_id(self) -> int:
        # convert_tokens_to_ids, not tokenizer(seg_token): SentencePiece may prepend a space piece (LISA #55)
        return self.tokenizer.convert_tokens_to_ids(self.seg_token)

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.vlm_processor.image_token)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        self.vlm_processor.save_pretrained(directory / "vlm_processor")
        self.sam_processor.save_pretrained(directory / "sam_processor")
        settings = {"seg_token": self.seg_token}
        if not isinstance(self.backbone, LlavaAdapter):
            settings["family"] = self.backbone.family
        (directory / _CONFIG_NAME).write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "LisaProcessor":
        directory = Path(directory)
        settings = json.loads((directory / _CONFIG_NAME).read_text())
        from lisalib.backbones import ADAPTERS

        vlm_processor = ADAPTERS[settings.get("family", "llava")]().load_processor(directory / "vlm_processor")
        return cls(vlm_processor, SamProcessor.from_pretrained(directory / "sam_processor"),
                   seg_token=settings["seg_token"])

    @staticmethod
    def is_saved_in(directory: str | os.PathLike) -> bool:
        return (Path(directory) / _CONFIG_NAME).is_file()

    # ----- batches -----------------------------------------------------------------------------------
    def __call__(self, images, queries, answers: Sequence[str] | None = None, masks=None,
                 vision_source: str = "dual", require_seg: bool = False) -> dict:
        """Batch for :meth:`LisaForReasoningSegmentation.forward` (answers given) or ``segment`` (not).

        ``images``: PIL images or uint8 arrays (one per sample); ``queries``: the user's questions, wrapped
        in LLaVA-1.5's template here. ``answers``: teacher-forced replies; the labels then cover the answer
        and ``</s>``. ``masks``: per sample an ``[n, H, W]`` (or ``[H, W]``) array at the image's size, one
        per ``<SEG>`` in the answer. ``require_seg``: every answer must contain a ``<SEG>``.
        """
        images, queries = _as_list(images), _as_list(queries)
        if len(images) == 0:
            raise LisaInputError("empty batch: give at least one image and one query")
        if len(images) != len(queries):
            raise LisaInputError(f"{len(images)} images but {len(queries)} queries; give one query per image")
        if vision_source not in VISION_SOURCES:
            raise LisaInputError(f"vision_source must be one of {VISION_SOURCES}, got {vision_source!r}")
        images = [ensure_rgb(image) for image in images]
        prompts = [self.backbone.prompt(self.vlm_processor, query) for query in queries]
        if answers is not None:
            answers = _as_list(answers)
            if len(answers) != len(images):
                raise LisaInputError(f"{len(images)} images but {len(answers)} answers")
        elif masks is not None:
            raise LisaInputError("masks need teacher-forced answers containing <SEG>; pass answers=[...]")
        gt_masks = self._check_masks(images, answers, masks, require_seg) if answers is not None else None

        view = self.backbone.vlm_view if vision_source == "vlm" else self.backbone.dual_view
        clip_views = [view(image, self.vlm_processor) for image in images]
        prompt_only = None
        if isinstance(self.backbone, LlavaAdapter):  # LLaVA and the traditional composite
            texts = prompts if answers is None else [f"{p} {a}{self.tokenizer.eos_token}" for p, a in zip(prompts, answers)]
            text_batch = self.vlm_processor(images=clip_views, text=texts, padding=True, return_tensors="pt")
        else:
            text_batch, prompt_only = self.backbone.text_batch(self.vlm_processor, clip_views, prompts, answers,
                                                               self.tokenizer.eos_token)
        sam_batch = self.sam_processor(images=images, return_tensors="pt")

        batch = {
            "input_ids": text_batch["input_ids"],
            "attention_mask": text_batch["attention_mask"],
            "original_sizes": sam_batch["original_sizes"],
            "reshaped_input_sizes": sam_batch["reshaped_input_sizes"],
            "vision_source": vision_source,
        }
        if vision_source in ("dual", "vlm"):
            batch["vlm_pixel_values"] = text_batch["pixel_values"]
        if vision_source in ("dual", "sam"):
            batch["sam_pixel_values"] = sam_batch["pixel_values"]
        extras = self.backbone.extras(text_batch)
        if extras:
            batch["vlm_inputs"] = extras
        if answers is not None and isinstance(self.backbone, LlavaAdapter):
            batch["labels"] = self._labels(batch["input_ids"], batch["attention_mask"], prompts)
        elif answers is not None:
            batch["labels"] = self._family_labels(text_batch, prompt_only)
        if gt_masks is not None:
            batch["gt_masks"] = gt_masks
            batch["gt_points"] = [mask_points(group) for group in gt_masks]
        return batch

    def _check_masks(self, images, answers, masks, require_seg) -> list[torch.Tensor] | None:
        seg_counts = [answer.count(self.seg_token) for answer in answers]
        if require_seg:
            missing = [i for i, n in enumerate(seg_counts) if n == 0]
            if missing:
                raise LisaInputError(
                    f"teacher-forced answer(s) {missing} contain no {self.seg_token}: the mask decoder is prompted "
                    f"by the {self.seg_token} token's hidden state, so a forced answer must contain it "
                    f"(e.g. {answers[missing[0]]!r} -> '{self.seg_token} .')"
                )
        if masks is None:
            return None
        masks = _as_list(masks)
        if len(masks) != len(images):
            raise LisaInputError(f"{len(images)} images but {len(masks)} mask groups; give one group per image")
        result = []
        for i, (image, group, n_seg) in enumerate(zip(images, masks, seg_counts)):
            group = torch.as_tensor(np.asarray(group) if not torch.is_tensor(group) else group)
            if group.ndim == 2:
                group = group[None]
            if group.ndim != 3 or tuple(group.shape[1:]) != (image.height, image.width):
                raise LisaInputError(
                    f"sample {i}: masks must be [n, H, W] at the image size {image.height}x{image.width}, "
                    f"got {tuple(group.shape)}"
                )
            if group.shape[0] != n_seg:
                raise LisaInputError(
                    f"sample {i}: {group.shape[0]} ground-truth mask(s) but {n_seg} {self.seg_token} token(s) in "
                    f"the answer {answers[i]!r}; each mask is predicted from one {self.seg_token}"
                )
            # LISA trains on mask == 1: the ignore value (255) counts as background
            result.append(group.float() if group.dtype == torch.bool else (group == MASK_TARGET_VALUE).float())
        return result

    def _labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Copy of input_ids with prompt, image and padding tokens set to -100: loss only on the answer."""
        labels = input_ids.clone()
        labels[attention_mask == 0] = LABEL_IGNORE_INDEX
        for row, prompt in enumerate(prompts):
            prompt_ids = self.tokenizer(prompt).input_ids
            n_images = prompt_ids.count(self.image_token_id)
            real = attention_mask[row].nonzero().flatten()
            n_image_tokens = int((input_ids[row] == self.image_token_id).sum())
            n_prompt = len(prompt_ids) + n_image_tokens - n_images
            prompt_part = input_ids[row, real[:n_prompt]]
            expected = _expand_image_tokens(prompt_ids, self.image_token_id, n_image_tokens // max(n_images, 1))
            if prompt_part.tolist() != expected:
                raise LisaInputError(
                    f"sample {row}: the tokenizer merges the end of the prompt with the answer, so the answer's "
                    "tokens cannot be labelled; start the answer with a space-separated word"
                )
            labels[row, real[:n_prompt]] = LABEL_IGNORE_INDEX
        return labels

    def _family_labels(self, text_batch, prompt_only) -> torch.Tensor:
        """Labels for a non-LLaVA family: the answer only. A prefix-LM batch says where the answer is
        (``token_type_ids`` 1); otherwise the prompt is the first tokens of each row, as long as the prompt
        alone tokenizes to (checked)."""
        input_ids, attention_mask = text_batch["input_ids"], text_batch["attention_mask"]
        labels = input_ids.clone()
        labels[attention_mask == 0] = LABEL_IGNORE_INDEX
        if prompt_only is None:
            labels[text_batch["token_type_ids"] == 0] = LABEL_IGNORE_INDEX
            return labels
        for row in range(input_ids.shape[0]):
            real = attention_mask[row].nonzero().flatten()
            prompt_ids = prompt_only["input_ids"][row][prompt_only["attention_mask"][row].bool()]
            if input_ids[row, real[: len(prompt_ids)]].tolist() != prompt_ids.tolist():
                raise LisaInputError(
                    f"sample {row}: the tokenizer merges the end of the prompt with the answer, so the answer's "
                    "tokens cannot be labelled; start the answer with a space-separated word"
                )
            labels[row, real[: len(prompt_ids)]] = LABEL_IGNORE_INDEX
        return labels

    # ----- text --------------------------------------------------------------------------------------
    def decode(self, token_ids: torch.Tensor) -> str:
        """Generated ids to text; <SEG> stays visible, </s> and padding do not."""
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()


def mask_points(masks: torch.Tensor) -> torch.Tensor:
    """``[n, 2]`` inside-centres (:func:`lisalib.reasonseg.masks.centre_point`) of ``[n, H, W]`` 0/1 masks as
    fractions ``(x / W, y / H)``, the point route's target; NaN for an empty mask."""
    from lisalib.reasonseg.masks import centre_point

    height, width = masks.shape[-2:]
    points = torch.full((masks.shape[0], 2), float("nan"))
    for k, mask in enumerate(masks):
        target = mask.numpy() == MASK_TARGET_VALUE
        if target.any():
            x, y = centre_point(target)
            points[k] = torch.tensor([x / width, y / height])
    return points


def grid_to_image(points: torch.Tensor, sizes: torch.Tensor, vision_source: str) -> torch.Tensor:
    """Fractions of the LLM's image-token grid ``[N, 2]`` -> fractions ``(x / W, y / H)`` of each original image.

    ``sizes`` are the images' ``(H, W)``. The grid covers CLIP's view: for ``dual`` the central square
    (shortest edge resized, centre crop), for ``vlm`` and ``sam`` the image padded bottom/right to a square.
    """
    height, width = sizes.to(points).unbind(-1)
    if vision_source == "dual":
        side = torch.minimum(height, width)
        x = ((width - side) / 2 + points[:, 0] * side) / width
        y = ((height - side) / 2 + points[:, 1] * side) / height
    else:
        side = torch.maximum(height, width)
        x, y = points[:, 0] * side / width, points[:, 1] * side / height
    return torch.stack([x, y], dim=-1)


def image_to_grid(points: torch.Tensor, sizes: torch.Tensor, vision_source: str) -> torch.Tensor:
    """The inverse of :func:`grid_to_image` (a point CLIP's centre crop cut away lands outside [0, 1))."""
    height, width = sizes.to(points).unbind(-1)
    if vision_source == "dual":
        side = torch.minimum(height, width)
        x = (points[:, 0] * width - (width - side) / 2) / side
        y = (points[:, 1] * height - (height - side) / 2) / side
    else:
        side = torch.maximum(height, width)
        x, y = points[:, 0] * width / side, points[:, 1] * height / side
    return torch.stack([x, y], dim=-1)


def postprocess_masks(low_res: torch.Tensor, original_size: Sequence[int], reshaped_size: Sequence[int],
                      pad_size: int) -> torch.Tensor:
    """LISA's post-processing: low-res logits -> SAM's padded square -> crop the image part -> original size.

    Same arithmetic as ``SamImageProcessor.post_process_masks(binarize=False)`` (a test checks it), a
    function of tensors so that training losses are computed inside the model's ``forward``.
    """
    masks = F.interpolate(low_res[:, None].float(), size=(pad_size, pad_size), mode="bilinear", align_corners=False)
    masks = masks[..., : int(reshaped_size[0]), : int(reshaped_size[1])]
    masks = F.interpolate(masks, size=(int(original_size[0]), int(original_size[1])), mode="bilinear",
                          align_corners=False)
    return masks[:, 0]


def _as_list(value) -> list:
    if isinstance(value, (str, Image.Image, np.ndarray)) or torch.is_tensor(value):
        return [value]
    return list(value)


def _expand_image_tokens(ids: list[int], image_token_id: int, count: int) -> list[int]:
    out: list[int] = []
    for token in ids:
        out.extend([token] * count if token == image_token_id else [token])
    return out
