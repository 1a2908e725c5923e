"""LISA-style reasoning segmentation: one model class, three ways of encoding the image.

LISA (Lai et al., CVPR 2024) lets a multimodal LLM answer with a special ``<SEG>`` token; the LLM's
last-layer hidden state for it is projected into SAM's prompt space and SAM's mask decoder turns it into
a mask. The backbones are the stock transformers classes (``LlavaForConditionalGeneration`` or another VLM
family's, ``SamModel``), loaded through :mod:`lisalib.zoo`; what differs between VLM families (where the
vision tower sits, the vision grid, positions, masks, prompts) is asked of the family's adapter
(:mod:`lisalib.backbones`). This module wires the backbones with the bridges of
:mod:`lisalib.lisa.bridges` as ``LisaConfig.vision_source`` says (:mod:`lisalib.lisa.configuration`). An
encoder a single-pass model never runs is not built at all. ``<SEG>`` states are located on the token
ids after the image tokens have been expanded, so no "255 image tokens" offset arithmetic is needed.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
import transformers
from transformers import PreTrainedModel, SamModel
from transformers.utils import ModelOutput
from transformers.utils import logging as transformers_logging

from lisalib.lisa.bridges import SegTokenToPoint, SegTokenToSam, TextHiddenFcs, VisionToSam, VisionToVlm
from lisalib.lisa.configuration import LisaConfig
from lisalib.lisa.losses import location_loss, mask_losses, total_loss
from lisalib.lisa.processing import LisaInputError, LisaProcessor, grid_to_image, image_to_grid, postprocess_masks
from lisalib.training.recipes import DEFAULT_GROUPS, check_groups, seg_row_config


# ----- outputs -------------------------------------------------------------------------------------
class ImageFeatures(NamedTuple):
    """What one encoding of a batch of images provides: LLM image tokens and SAM's image embedding."""

    llm: torch.Tensor  # [B, T, D_llm], already through the VLM's projector (connector)
    sam: torch.Tensor  # [B, C, S, S]


@dataclass
class LisaOutput(ModelOutput):
    """``loss`` = ce_weight*CE + bce_weight*BCE + dice_weight*Dice (+ location_weight*L1 on the point route);
    masks are logits, grouped per image; points are fractions of each image's width and height."""

    loss: torch.Tensor | None = None
    ce_loss: torch.Tensor | None = None
    bce_loss: torch.Tensor | None = None
    dice_loss: torch.Tensor | None = None
    location_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    low_res_masks: list[torch.Tensor] | None = None  # per image [n_seg, 4S, 4S]
    pred_masks: list[torch.Tensor] | None = None  # per image [n_seg, H, W] at the original size
    seg_embeddings: torch.Tensor | None = None  # [N_seg, C] prompts given to SAM
    pred_points: list[torch.Tensor] | None = None  # per image [n_seg, 2] (x / W, y / H), point route only


@dataclass
class SegmentationResult:
    """One image's answer: the text and one mask per ``<SEG>`` at the image's original size."""

    text: str
    masks: np.ndarray  # [n_seg, H, W] bool
    mask_logits: torch.Tensor  # [n_seg, H, W] float
    points: np.ndarray | None = None  # [n_seg, 2] (x, y) pixels of the predicted click (point route only)


# ----- the model -----------------------------------------------------------------------------------
class LisaForReasoningSegmentation(PreTrainedModel):
    """A VLM (LLaVA or another family) + SAM + bridges; see the module docstring. Build it with :meth:`from_parts`."""

    config: LisaConfig
    config_class = LisaConfig
    base_model_prefix = "lisa"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: LisaConfig, vlm: PreTrainedModel | None = None, sam: SamModel | None = None):
        super().__init__(config)
        self.backbone = config.backbone  # the VLM family's adapter (holds no weights)
        self.vlm = vlm if vlm is not None else getattr(transformers, self.backbone.model_class_name)(config.vlm_config)
        self.sam = sam if sam is not None else SamModel(config.sam_config)
        vision_dim, llm_dim = self.backbone.vision_dim, self.backbone.text_dim
        if config.vision_source == "vlm":
            self.vision_to_sam = VisionToSam(vision_dim, config.sam_channels, config.sam_grid)
            self.sam.vision_encoder = None  # never run: the mask decoder reads the VLM's vision grid
        elif config.vision_source == "sam":
            self.vision_to_vlm = VisionToVlm(config.sam_channels, vision_dim, config.vlm_grid)
            self.backbone.drop_vision_tower(self.vlm)  # never run: the LLM reads SAM's embedding
        projection = SegTokenToSam if config.seg_projection == "seg_token_to_sam" else TextHiddenFcs
        if config.seg_prompt in ("embedding", "both"):
            self.seg_projection = projection(llm_dim, config.sam_channels)
        if config.seg_prompt in ("point", "both"):
            self.seg_to_point = SegTokenToPoint(llm_dim)
        self.processor: LisaProcessor | None = None
        self.post_init()

    # ----- construction ------------------------------------------------------------------------------
    @classmethod
    def from_parts(cls, vlm: str = "tiny-llava", sam: str = "tiny-sam", vision_source: str = "dual", *,
                   dtype: str | torch.dtype | None = None, load_in_4bit: bool = False, load_in_8bit: bool = False,
                   device: str | None = None, **config_kwargs) -> "LisaForReasoningSegmentation":
        """Load the pretrained VLM and SAM (zoo names, directories or hub ids) and add the bridges.

        ``load_in_4bit`` quantizes the LLM only (NF4; ``load_in_8bit``: LLM.int8()): the vision tower, the
        projector and ``lm_head`` stay in ``dtype`` (the family adapter's ``quant_skip``), as LISA's chat.py
        keeps its visual modules out of quantization. A quantized model is
        placed on ``device`` as it loads (each process of a multi-GPU run passes its own; default: GPU 0
        when there is one); SAM and the bridges follow it.
        """
        from lisalib.zoo import load_sam, load_vlm

        quantized = load_in_4bit or load_in_8bit
        skip = vlm_skip_modules(vlm) if quantized else None
        placement = {"": torch.device(device)} if quantized and device is not None else None
        extra = {"load_in_8bit": True} if load_in_8bit else {}
        vlm_model, vlm_processor = load_vlm(vlm, dtype=dtype, load_in_4bit=load_in_4bit, skip_modules=skip,
                                            device_map=placement, **extra)
        sam_model, sam_processor = load_sam(sam, dtype=dtype)
        if quantized:
            device = vlm_model.get_input_embeddings().weight.device
        elif device is not None:
            vlm_model.to(device)
        if device is not None:
            sam_model.to(device)
        return cls.from_models(vlm_model, sam_model, LisaProcessor(vlm_processor, sam_processor), vision_source,
                               **config_kwargs)

    @classmethod
    def from_models(cls, vlm: PreTrainedModel, sam: SamModel, processor: LisaProcessor,
                    vision_source: str = "dual", **config_kwargs) -> "LisaForReasoningSegmentation":
        """Wrap already-loaded backbones; adds the ``<SEG>`` row to the embeddings if the vocabulary needs it."""
        rows = vlm.get_input_embeddings().num_embeddings
        if len(processor.tokenizer) > rows:  # only grow: llava-1.5-hf already has 64 spare rows (32064)
            # new rows start at the old rows' mean (Hewitt 2021): <SEG> begins as an average token
            verbosity = transformers_logging.get_verbosity()
            transformers_logging.set_verbosity_error()  # the resize logs its method at warning level
            try:
                vlm.resize_token_embeddings(len(processor.tokenizer), mean_resizing=True)
            finally:
                transformers_logging.set_verbosity(verbosity)
        # attn_implementation={} keeps each loaded backbone's attention setting; None would reset them all
        config = LisaConfig(vlm_config=vlm.config, sam_config=sam.config, vision_source=vision_source,
                            seg_token_id=processor.seg_token_id, attn_implementation={}, **config_kwargs)
        model = cls(config, vlm=vlm, sam=sam)
        model._place_bridges()
        model.processor = processor
        return model.eval()

    def _place_bridges(self) -> None:
        """Put the new (randomly initialised) bridges on the device and in the dtype of what they feed."""
        sam_param = next(self.sam.mask_decoder.parameters())
        for name in ("vision_to_sam", "seg_projection", "seg_to_point"):
            if hasattr(self, name):
                getattr(self, name).to(device=sam_param.device, dtype=sam_param.dtype)
        if hasattr(self, "vision_to_vlm"):
            projector = next(self.backbone.projector(self.vlm).parameters())
            self.vision_to_vlm.to(device=projector.device, dtype=projector.dtype)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Weights and config as usual, plus the processor (tokenizer with ``<SEG>``) when one is attached."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.processor is not None:
            self.processor.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if LisaProcessor.is_saved_in(pretrained_model_name_or_path):
            model.processor = LisaProcessor.from_pretrained(pretrained_model_name_or_path)
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.vlm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.vlm.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.vlm.get_output_embeddings()

    # ----- the vision path ---------------------------------------------------------------------------
    def vision_encoders(self) -> dict[str, nn.Module]:
        """The image encoders this model holds (a single-pass model holds one)."""
        encoders = {}
        tower = self.backbone.vision_tower(self.vlm)
        if tower is not None:
            encoders[f"vlm.{self.backbone.vision_attr}"] = tower
        if self.sam.vision_encoder is not None:
            encoders["sam.vision_encoder"] = self.sam.vision_encoder
        return encoders

    def encode_images(self, vlm_pixel_values: torch.Tensor | None = None, sam_pixel_values: torch.Tensor | None = None,
                      vlm_inputs: dict | None = None) -> ImageFeatures:
        """Run the vision path of ``config.vision_source``: two encoders for ``dual``, one otherwise.
        ``vlm_inputs``: the family's extra processor outputs (Qwen2-VL's ``image_grid_thw``, ...)."""
        source = self.config.vision_source
        if source in ("dual", "vlm"):
            _require(vlm_pixel_values, "vlm_pixel_values", source)
            llm_features, patches = self.clip_encode(vlm_pixel_values, vlm_inputs)
            if source == "dual":
                _require(sam_pixel_values, "sam_pixel_values", source)
                sam_features = self.sam_encode(sam_pixel_values)
            else:
                sam_features = self.vision_to_sam(patches)
        else:
            _require(sam_pixel_values, "sam_pixel_values", source)
            sam_features = self.sam_encode(sam_pixel_values)
            llm_features = self.backbone.projector(self.vlm)(self.vision_to_vlm(sam_features))
        return ImageFeatures(llm_features, sam_features)

    def clip_encode(self, pixel_values: torch.Tensor, vlm_inputs: dict | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass of the VLM's vision tower: LLM image tokens ``[B, T, D_llm]`` and the vision grid.

        The grid ``[B, r*c, D_vision]`` is, for LLaVA, its selected CLIP layer without CLS -- exactly what its
        projector saw -- and what ``vision_to_sam`` reads in the ``vlm`` design; each family's adapter says
        what it is for that family (``lisalib.backbones``).
        """
        return self.backbone.encode(self.vlm, pixel_values, _on(vlm_inputs, self.vlm.device))

    def sam_encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One pass of SAM's ViT: the image embedding ``[B, C, S, S]`` its mask decoder reads."""
        encoder = self.sam.vision_encoder
        return encoder(pixel_values.to(encoder.device, encoder.dtype)).last_hidden_state

    # ----- the language path -------------------------------------------------------------------------
    def embed_inputs(self, input_ids: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the image tokens replaced by the image features (as LLaVA does)."""
        return self.backbone.embed(self.vlm, input_ids, image_features)

    def language_forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         input_ids: torch.Tensor | None = None, vlm_inputs: dict | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-layer hidden states (after the final norm, as LISA takes them) and the LM logits. Positions
        are the family's (left-padding aware; Qwen2-VL's M-RoPE needs ``input_ids`` and ``vlm_inputs``)."""
        hidden = self.backbone.language_forward(self.vlm, inputs_embeds, attention_mask, input_ids,
                                                _on(vlm_inputs, inputs_embeds.device))
        return hidden, self.vlm.lm_head(hidden)

    def select_seg_states(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states that prompt SAM, one per ``<SEG>``, and the batch row each belongs to."""
        if self.config.seg_token_id is None:
            raise ValueError("config.seg_token_id is not set; build the model with from_parts/from_models")
        rows, cols = (input_ids == self.config.seg_token_id).nonzero(as_tuple=True)
        if self.config.seg_hidden_state == "preceding":
            if bool((cols == 0).any()):
                raise LisaInputError("<SEG> is the first token of a sequence: there is no preceding hidden state")
            cols = cols - 1
        return hidden[rows, cols], rows

    def predict_points(self, image_tokens: torch.Tensor, seg_states: torch.Tensor, rows: torch.Tensor,
                       original_sizes: torch.Tensor | None):
        """The point route: (patch logits ``[N, T]``, in-patch offsets ``[N, T, 2]``, clicks ``[N, 2]`` as
        fractions of each original image's width and height). ``image_tokens`` ``[B, T, D]`` are the image
        features the LLM reads (after LLaVA's projector), one row per image."""
        if original_sizes is None:
            raise LisaInputError("the point route needs original_sizes (the processor adds them)")
        logits, offsets = self.seg_to_point(seg_states, image_tokens[rows.to(image_tokens.device)])
        grid_points = SegTokenToPoint.click(logits, offsets)
        sizes = original_sizes.to(grid_points.device)[rows.to(grid_points.device)]
        return logits, offsets, grid_to_image(grid_points, sizes, self.config.vision_source)

    # ----- the mask path -----------------------------------------------------------------------------
    def decode_masks(self, sam_features: torch.Tensor, seg_states: torch.Tensor, image_index: torch.Tensor,
                     reshaped_sizes: torch.Tensor | None = None, points: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One low-res mask logit map per ``<SEG>``: ``[N, 4S, 4S]``, plus LISA's prompt tokens ``[N, C]``
        (None when not used). ``points``: the point route's clicks ``[N, 2]``, fractions of each image.

        Each ``<SEG>`` prompts its own decoder call with the "no mask" dense embedding and
        ``multimask_output=False``, as in LISA. Its sparse prompt is LISA's one learned token
        (``seg_prompt="embedding"``), a positive click at the predicted point through SAM's prompt encoder
        (``"point"``; the point lives in the image part of SAM's padded square, so ``reshaped_sizes``, each
        image's ``(h, w)`` there, are needed), or the click's tokens followed by LISA's (``"both"``).
        """
        prompt = self.config.seg_prompt
        side = 4 * self.config.sam_grid
        tokens = self.seg_projection(seg_states) if prompt in ("embedding", "both") else None
        if prompt != "embedding" and points is None:
            raise LisaInputError(f"seg_prompt={prompt!r} needs the predicted points (see predict_points)")
        count = seg_states.shape[0]
        if count == 0:
            return sam_features.new_zeros((0, side, side)), tokens
        embeddings = sam_features[image_index]
        encoder = self.sam.prompt_encoder
        if points is not None:
            if reshaped_sizes is None:
                raise LisaInputError("the point route needs reshaped_input_sizes (the processor adds them)")
            frame = reshaped_sizes.to(points)[image_index.to(points.device)].flip(-1)  # (w, h) per <SEG>
            # detached: the click is trained by the location loss alone (with a regression head, the mask
            # losses' gradient through SAM's Fourier features kept its error at the always-the-mean level)
            clicks = (points.detach() * frame)[:, None, None, :].to(embeddings.dtype)  # [N, 1 prompt, 1 point, xy]
            labels = torch.ones(count, 1, 1, dtype=torch.long, device=embeddings.device)
            sparse, dense = encoder(input_points=clicks, input_labels=labels, input_boxes=None, input_masks=None)
            if tokens is not None:
                sparse = torch.cat([sparse, tokens[:, None, None, :].to(sparse.dtype)], dim=2)
        else:
            _, dense = encoder(input_points=None, input_labels=None, input_boxes=None, input_masks=None)
            sparse = tokens[:, None, None, :]  # [N, 1 prompt, 1 token, C]
        positional = self.sam.get_image_wide_positional_embeddings().repeat(count, 1, 1, 1)
        low_res, _ = self.sam.mask_decoder(
            image_embeddings=embeddings,
            image_positional_embeddings=positional,
            sparse_prompt_embeddings=sparse.to(embeddings.dtype),
            dense_prompt_embeddings=dense.to(embeddings.dtype),
            multimask_output=False,
        )
        return low_res[:, 0, 0], tokens

    # ----- forward -----------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                vlm_pixel_values: torch.Tensor | None = None, sam_pixel_values: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, gt_masks: Sequence[torch.Tensor] | None = None,
                original_sizes: torch.Tensor | None = None, reshaped_input_sizes: torch.Tensor | None = None,
                image_features: ImageFeatures | None = None, vision_source: str | None = None,
                gt_points: Sequence[torch.Tensor] | None = None, vlm_inputs: dict | None = None) -> LisaOutput:
        """Teacher-forced pass: text logits, one mask per ``<SEG>``, and LISA's losses when targets are given.

        ``image_features`` (from :meth:`encode_images`) skips the vision path, e.g. to reuse one encoding
        across generation and the final pass. ``vision_source`` (set by the processor) guards against a
        batch prepared for another geometry. ``vlm_inputs``: the family's extra processor outputs.
        """
        if vision_source is not None and vision_source != self.config.vision_source:
            raise LisaInputError(f"batch was prepared for vision_source={vision_source!r} but the model is "
                                 f"{self.config.vision_source!r}; call the processor with the model's source")
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise LisaInputError(f"input_ids must be a non-empty [batch, length] tensor, got {tuple(input_ids.shape)}")
        input_ids = input_ids.to(self.vlm.get_input_embeddings().weight.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(input_ids.device)
        batch = input_ids.shape[0]
        vlm_inputs = _on(vlm_inputs, input_ids.device)
        features = image_features if image_features is not None else self.encode_images(vlm_pixel_values,
                                                                                         sam_pixel_values, vlm_inputs)
        hidden, logits = self.language_forward(self.embed_inputs(input_ids, features.llm), attention_mask,
                                               input_ids, vlm_inputs)

        seg_states, image_index = self.select_seg_states(input_ids, hidden)
        counts = torch.bincount(image_index, minlength=batch).tolist()
        if gt_masks is not None:
            if len(gt_masks) != batch:
                raise LisaInputError(f"{len(gt_masks)} ground-truth mask groups for a batch of {batch}")
            for i, (n_seg, gt) in enumerate(zip(counts, gt_masks)):
                if n_seg != gt.shape[0]:
                    raise LisaInputError(f"sample {i}: {gt.shape[0]} ground-truth mask(s) but {n_seg} <SEG> token(s) "
                                         "in the teacher-forced text; put one <SEG> in the answer per mask")
        point_logits = offsets = points = None
        if self.config.seg_prompt != "embedding":
            point_logits, offsets, points = self.predict_points(features.llm, seg_states, image_index, original_sizes)
        low_res, prompts = self.decode_masks(features.sam, seg_states, image_index.to(features.sam.device),
                                             reshaped_input_sizes, points)
        low_res_groups = list(low_res.split(counts))
        point_groups = list(points.split(counts)) if points is not None else None
        pred_masks = None
        if original_sizes is not None and reshaped_input_sizes is not None:
            pad = self.config.sam_config.vision_config.image_size
            pred_masks = [postprocess_masks(group, original_sizes[i], reshaped_input_sizes[i], pad)
                          for i, group in enumerate(low_res_groups)]

        ce = bce = dice = loss = location = None
        if labels is not None:
            ce = self.vlm.loss_function(logits=logits, labels=labels.to(logits.device),
                                        vocab_size=logits.shape[-1])
        if gt_masks is not None:
            if pred_masks is None:
                raise LisaInputError("gt_masks need original_sizes and reshaped_input_sizes (the processor adds them)")
            bce, dice = mask_losses(pred_masks, [gt.to(m.device) for gt, m in zip(gt_masks, pred_masks)])
        if points is not None and gt_points is not None:
            sizes = original_sizes.to(points.device)[image_index.to(points.device)]
            grid_targets = image_to_grid(torch.cat([g.to(points) for g in gt_points]), sizes, self.config.vision_source)
            target_patch, target_offset = SegTokenToPoint.targets(grid_targets, math.isqrt(point_logits.shape[-1]))
            location = location_loss(point_logits, offsets, target_patch, target_offset)
        if ce is not None or bce is not None:
            zero = logits.new_zeros(())
            loss = total_loss(ce if ce is not None else zero, bce if bce is not None else zero,
                              dice if dice is not None else zero, self.config.loss_weights,
                              location if location is not None else 0.0)
        return LisaOutput(loss=loss, ce_loss=ce, bce_loss=bce, dice_loss=dice, location_loss=location, logits=logits,
                          low_res_masks=low_res_groups, pred_masks=pred_masks, seg_embeddings=prompts,
                          pred_points=point_groups)

    # ----- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def segment(self, images, queries, answers: Sequence[str] | None = None, max_new_tokens: int = 32,
                mask_threshold: float = 0.0, processor: LisaProcessor | None = None,
                **generate_kwargs) -> list[SegmentationResult]:
        """Answer each query about its image; return the text and one mask per ``<SEG>`` at original size.

        Without ``answers`` the model generates (greedy unless ``generate_kwargs`` say otherwise); an answer
        without ``<SEG>`` gets no mask. With ``answers`` the text is teacher-forced (LISA's validation: one
        forward with ``"[SEG]."``) and each answer must contain ``<SEG>``. Images are encoded once either way.
        """
        processor = processor if processor is not None else self.processor
        if processor is None:
            raise ValueError("no processor: build the model with from_parts() or pass processor=LisaProcessor(...)")
        if processor.seg_token_id != self.config.seg_token_id:
            raise ValueError(f"processor's <SEG> id {processor.seg_token_id} != model's {self.config.seg_token_id}")
        source = self.config.vision_source
        if answers is not None:
            batch = processor(images, queries, answers=answers, vision_source=source, require_seg=True)
            batch.pop("labels")
            out = self(**batch)
            texts = list(answers) if not isinstance(answers, str) else [answers]
        else:
            batch = processor(images, queries, vision_source=source)
            device = self.vlm.get_input_embeddings().weight.device
            input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            vlm_inputs = _on(batch.get("vlm_inputs"), device)
            features = self.encode_images(batch.get("vlm_pixel_values"), batch.get("sam_pixel_values"), vlm_inputs)
            tokenizer = processor.tokenizer
            # an <image> token in the answer would be taken for an image slot in the final pass
            suppress = [processor.image_token_id, *(generate_kwargs.pop("suppress_tokens", None) or [])]
            new_tokens = self.backbone.generate(self.vlm, input_ids, attention_mask, features.llm, vlm_inputs,
                                                max_new_tokens=max_new_tokens, suppress_tokens=suppress,
                                                **{"do_sample": False, "pad_token_id": tokenizer.pad_token_id,
                                                   "eos_token_id": tokenizer.eos_token_id, **generate_kwargs})
            valid = _up_to_first(new_tokens, tokenizer.eos_token_id) & (new_tokens != tokenizer.pad_token_id)
            new_tokens = new_tokens.masked_fill(~valid, tokenizer.pad_token_id)
            # one more pass over prompt + answer gives every position's last hidden state (LISA re-runs the
            # sequence too); the image features are reused, so the encoders still ran once
            out = self(input_ids=torch.cat([input_ids, new_tokens], dim=1),
                       attention_mask=torch.cat([attention_mask, valid.long()], dim=1),
                       original_sizes=batch["original_sizes"], reshaped_input_sizes=batch["reshaped_input_sizes"],
                       image_features=features, vlm_inputs=self.backbone.extend_extras(vlm_inputs, new_tokens.shape[1]))
            texts = [processor.decode(row[keep]) for row, keep in zip(new_tokens, valid)]
        sizes = batch["original_sizes"].tolist()
        points = out.pred_points or [None] * len(texts)
        return [SegmentationResult(text=text, masks=(logits > mask_threshold).cpu().numpy(),
                                   mask_logits=logits.float().cpu(),
                                   points=None if p is None else (p.float().cpu() * torch.tensor([w, h])).numpy())
                for text, logits, p, (h, w) in zip(texts, out.pred_masks, points, sizes)]

    # ----- what trains -------------------------------------------------------------------------------
    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each of :data:`lisalib.training.recipes.TRAINABLE_GROUPS`.

        ``seg_row`` is the ``<SEG>`` row of the input embeddings and of ``lm_head`` as peft trainable tokens
        (one ``[1, D]`` tensor each, empty until :meth:`set_trainable` adds them); ``lora`` is empty until
        adapters are injected (``lisalib.lisa.train.add_lora``).
        """
        bridges = [getattr(self, name) for name in ("vision_to_sam", "vision_to_vlm", "seg_projection", "seg_to_point")
                   if hasattr(self, name)]
        language = self.backbone.language_model(self.vlm)
        if self.backbone.trains_projector():  # traditional mode: the image -> text connector is new too
            bridges.append(self.backbone.projector(self.vlm))
        return {
            "projections": [p for module in bridges for p in module.parameters()],
            "seg_row": [p for name, p in self.vlm.named_parameters() if "trainable_tokens_delta" in name],
            "mask_decoder": list(self.sam.mask_decoder.parameters()),
            "lora": [p for name, p in self.named_parameters() if "lora_" in name],
            "llm": [p for name, p in language.named_parameters()
                    if "lora_" not in name and "trainable_tokens_" not in name],
        }

    def add_seg_row_tokens(self) -> None:
        """Make the ``<SEG>`` rows trainable tokens (peft): gradients and optimizer state exist for those two
        rows only, not for the whole embedding and ``lm_head`` matrices (about 3 GiB at 7B in fp32 + AdamW).
        A no-op when they are there already (``add_lora`` adds them together with the adapters)."""
        from peft import inject_adapter_in_model

        if not self.trainable_groups()["seg_row"]:
            inject_adapter_in_model(seg_row_config(self.config.seg_token_id), self.vlm)

    def set_trainable(self, groups: Sequence[str] = DEFAULT_GROUPS) -> dict[str, int]:
        """Freeze everything, then unfreeze ``groups``; returns trainable parameter counts per group."""
        groups = check_groups(groups)
        if "seg_row" in groups:
            self.add_seg_row_tokens()
        self.requires_grad_(False)
        available = self.trainable_groups()
        if "lora" in groups and not available["lora"]:
            raise ValueError("trainable group 'lora' asked for, but the model has no LoRA adapters "
                             "(inject them first, e.g. lisalib.lisa.train.add_lora)")
        counts = {}
        for group in groups:
            for param in available[group]:
                param.requires_grad_(True)
            counts[group] = sum(p.numel() for p in available[group])
        return counts


@contextmanager
def count_vision_passes(model: LisaForReasoningSegmentation) -> Iterator[Counter]:
    """Count forward calls of each image encoder while the block runs (the single-pass proof).

    >>> with count_vision_passes(model) as calls:
    ...     model(**batch)
    >>> calls.total()   # 2 for "dual", 1 for "vlm" and "sam"
    """
    calls: Counter = Counter({name: 0 for name in model.vision_encoders()})
    handles = [module.register_forward_hook(lambda *_, name=name: calls.update([name]))
               for name, module in model.vision_encoders().items()]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def vlm_skip_modules(name_or_path: str) -> list[str]:
    """The modules a quantized load of this VLM keeps in full precision (its family adapter's ``quant_skip``)."""
    from transformers import AutoConfig

    from lisalib.backbones import adapter_for
    from lisalib.zoo import resolve

    return adapter_for(AutoConfig.from_pretrained(resolve(name_or_path))).quant_skip()


def _on(inputs: dict | None, device) -> dict | None:
    """The family's extra tensors on ``device`` (None stays None)."""
    if not inputs:
        return inputs
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}


def _require(value, name: str, source: str) -> None:
    if value is None:
        raise LisaInputError(f"vision_source={source!r} needs {name}; build the batch with LisaProcessor")


def _up_to_first(tokens: torch.Tensor, token_id: int) -> torch.Tensor:
    """True up to and including the first ``token_id`` of each row (generation stops there)."""
    hit = (tokens == token_id).long()
    return (hit.cumsum(dim=1) - hit) == 0
