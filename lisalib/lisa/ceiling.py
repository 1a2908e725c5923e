"""Where is a LISA model's gIoU lost? Give SAM's mask decoder a prompt that is known to be right.

A LISA model fails in one of two places: the LLM's ``<SEG>`` state does not say *which* object is meant,
or the mask path (image features -> SAM's mask decoder) cannot draw it well even when it knows. This
module trains a design's mask path with LISA's mask losses on exactly the image features that design
provides, prompted by one of three stand-ins for the ``<SEG>`` prompt, and scores the val split with
LISA's gIoU / cIoU:

- ``point``: a positive click on the target pixel farthest from the background (always inside it),
  through SAM's own prompt encoder. Its gIoU is the ceiling of the design's mask path under that budget.
- ``appearance``: a learned embedding of the target's name ("red circle"), taken from the synthetic set's
  metadata. It says *what* the target looks like but not where it is (two red circles stay ambiguous).
- ``lm_state``: the frozen VLM's ``<SEG>`` hidden state for LISA's teacher-forced ``"<SEG>."`` answer,
  through a fresh ``<SEG>`` projection that trains with the decoder. It is what the language side offers
  before any LoRA: a trained model at or below it gained nothing from training the language side.

The gap between ``point`` and a trained model is lost on the language side; the gap between two designs'
``point`` figures is what their image features cost.

``python -m lisalib.lisa.ceiling --vision_source vlm --data DIR [--prompt point|appearance|lm_state] [--json]``
"""
from __future__ import annotations

import gc

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.cli import dataclass_parser
from lisalib.constants import MASK_TARGET_VALUE
from lisalib.reasonseg.dataset import ReasonSegDataset, eval_answer, question
from lisalib.reasonseg.masks import centre_point
from lisalib.reasonseg.synth import synth_record
from lisalib.lisa.evaluate import json_safe
from lisalib.lisa.losses import mask_losses, total_loss
from lisalib.reasonseg.metrics import ReasonSegMetrics
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.lisa.processing import postprocess_masks
from lisalib.world.scenes import COLOURS, SHAPE_KINDS
from lisalib.training.steps import take_step

PROMPTS = ("point", "appearance", "lm_state")
TARGET_NAMES = tuple(f"{colour} {kind}" for colour in COLOURS for kind in SHAPE_KINDS)


def target_name(sample: dict) -> str:
    """The target's "colour kind" from a synthetic sample's annotation (``synth.target_name``)."""
    name = synth_record(sample["path"]).get("target_name")
    if name not in TARGET_NAMES:
        raise ValueError(f"{Path(sample['path']).with_suffix('.json')}: no shapes-world target name (synth.target_name) -- appearance "
                         "prompts need the synthetic set written by lisalib.reasonseg.synth")
    return name


class PromptedMaskPath:
    """The mask path of ``model`` (its image features, ``vision_to_sam`` if any, SAM's decoder) under a known prompt.

    Image features (and for ``lm_state`` the LLM's ``<SEG>`` states) are computed once: encoders and LLM stay
    frozen, as in training. What trains is SAM's mask decoder, the ``vision_to_sam`` bridge, and what turns
    the prompt into SAM's prompt token (SAM's prompt encoder for a point, the name embedding, or the
    ``<SEG>`` projection). ``model`` is changed in place: pass a freshly built one
    (:meth:`LisaForReasoningSegmentation.from_parts`), not a trained model you still need.
    """

    def __init__(self, model: LisaForReasoningSegmentation, prompt: str = "point"):
        if model.processor is None:
            raise ValueError("the model has no processor: build it with LisaForReasoningSegmentation.from_parts")
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        self.model, self.prompt = model, prompt
        self.source = model.config.vision_source
        self.bridge = getattr(model, "vision_to_sam", None) if self.source == "vlm" else None
        model.requires_grad_(False)
        self.name_embedding = nn.Embedding(len(TARGET_NAMES), model.config.sam_channels) if prompt == "appearance" else None
        prompt_module = {"point": model.sam.prompt_encoder, "lm_state": model.seg_projection,
                         "appearance": self.name_embedding}[prompt]
        trained = (model.sam.mask_decoder, prompt_module, self.bridge)
        for module in trained:
            if module is not None:
                module.float()  # what trains stays in float32, as in lisalib.lisa.train
        device = next(model.sam.mask_decoder.parameters()).device
        prompt_module.to(device)
        self.parameters = [p for module in trained if module is not None for p in module.parameters()]

    @torch.no_grad()
    def encode(self, samples: Sequence[dict], chunk: int = 32, progress: bool = True) -> dict:
        """Frozen image features, targets and prompt inputs of ``samples`` (ReasonSeg dicts)."""
        model = self.model
        features, masks, points, names, states, long, sizes = [], [], [], [], [], [], []
        for start in tqdm(range(0, len(samples), chunk), desc=f"encode ({self.source})", disable=not progress):
            part = samples[start:start + chunk]
            images = [s["image"] for s in part]
            queries = [question(s["texts"][0], s["is_sentence"], image_token="").strip() for s in part]
            if self.prompt == "lm_state":
                batch = model.processor(images, queries, answers=[eval_answer(model.processor.seg_token)] * len(part),
                                        vision_source=self.source, require_seg=True)
            else:
                batch = model.processor(images, queries, vision_source=self.source)
            grid, llm_tokens = self.image_features(batch, need_llm_tokens=self.prompt == "lm_state")
            features.append(grid)
            if llm_tokens is not None:
                input_ids = batch["input_ids"].to(model.vlm.get_input_embeddings().weight.device)
                hidden, _ = model.language_forward(model.embed_inputs(input_ids, llm_tokens),
                                                   batch["attention_mask"].to(input_ids.device))
                states.append(model.select_seg_states(input_ids, hidden)[0].float())
            for s, original, reshaped in zip(part, batch["original_sizes"], batch["reshaped_input_sizes"]):
                x, y = centre_point(s["mask"])
                scale = reshaped.float() / original.float()  # (h, w): points live in SAM's resized frame
                points.append([x * float(scale[1]), y * float(scale[0])])
                sizes.append((original.tolist(), reshaped.tolist()))
                if self.prompt == "appearance":
                    names.append(TARGET_NAMES.index(target_name(s)))
            masks += [torch.from_numpy(np.asarray(s["mask"])) for s in part]
            long += [bool(s["is_sentence"]) for s in part]
        return {"features": torch.cat(features), "masks": masks, "points": torch.tensor(points),
                "names": torch.tensor(names, dtype=torch.long), "states": torch.cat(states) if states else None,
                "is_sentence": long, "sizes": sizes}

    def image_features(self, batch: dict, need_llm_tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the mask path reads (CLIP's patches for ``vlm``, since ``vision_to_sam`` trains; else SAM's
        embedding), and the LLM's image tokens if asked -- each encoder runs once."""
        model = self.model
        if self.source == "vlm":
            llm_tokens, patches = model.clip_encode(batch["vlm_pixel_values"])
            return patches, llm_tokens if need_llm_tokens else None
        if need_llm_tokens:
            encoded = model.encode_images(batch.get("vlm_pixel_values"), batch.get("sam_pixel_values"))
            return encoded.sam, encoded.llm
        return model.sam_encode(batch["sam_pixel_values"]), None

    def prompts(self, encoded: dict, index: list[int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's (sparse, dense) prompt embeddings; the sparse ``[n, 1 prompt, 1 token, C]`` stands in for ``<SEG>``."""
        encoder = self.model.sam.prompt_encoder
        if self.prompt == "point":
            points = encoded["points"][index][:, None, None, :].to(like)  # [n, 1 prompt, 1 point, xy]
            labels = torch.ones(len(index), 1, 1, dtype=torch.long, device=like.device)
            return encoder(input_points=points, input_labels=labels, input_boxes=None, input_masks=None)
        if self.prompt == "appearance":
            tokens = self.name_embedding(encoded["names"][index].to(like.device))
        else:
            tokens = self.model.seg_projection(encoded["states"][index].to(like))
        _, dense = encoder(input_points=None, input_labels=None, input_boxes=None, input_masks=None)  # "no mask"
        return tokens[:, None, None, :].to(like), dense.to(like)

    def masks(self, encoded: dict, index: Sequence[int]) -> list[torch.Tensor]:
        """Mask logits at each sample's original size, ``[1, H, W]`` per sample."""
        model, index = self.model, list(index)
        features = encoded["features"][index].float()
        embeddings = self.bridge(features) if self.bridge is not None else features
        sparse, dense = self.prompts(encoded, index, embeddings)
        positional = model.sam.get_image_wide_positional_embeddings().repeat(len(index), 1, 1, 1)
        low_res, _ = model.sam.mask_decoder(image_embeddings=embeddings, image_positional_embeddings=positional,
                                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                            multimask_output=False)
        pad = model.config.sam_config.vision_config.image_size
        return [postprocess_masks(low_res[k, 0], *encoded["sizes"][i], pad) for k, i in enumerate(index)]

    def train(self, encoded: dict, steps: int, batch_size: int = 8, lr: float = 1e-3, warmup_steps: int = 50,
              seed: int = 0, progress: bool = True) -> list[float]:
        """LISA's mask losses (2 x BCE + 0.5 x Dice, on ``mask == 1``), AdamW (0.9, 0.95), cosine schedule."""
        for param in self.parameters:
            param.requires_grad_(True)
        optimizer = torch.optim.AdamW(self.parameters, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
        schedule = get_cosine_schedule_with_warmup(optimizer, min(warmup_steps, steps), steps)
        weights = self.model.config.loss_weights
        generator = torch.Generator().manual_seed(seed)
        history = []
        for _ in tqdm(range(steps), desc=f"{self.prompt}-prompted decoder ({self.source})", disable=not progress):
            index = torch.randint(len(encoded["masks"]), (batch_size,), generator=generator).tolist()
            predictions = self.masks(encoded, index)
            targets = [(encoded["masks"][i] == MASK_TARGET_VALUE).float()[None].to(p.device)
                       for i, p in zip(index, predictions)]
            bce, dice = mask_losses(predictions, targets)
            history.append(take_step(total_loss(0.0, bce, dice, weights), self.parameters, optimizer, schedule))
        for param in self.parameters:
            param.requires_grad_(False)
        return history

    @torch.no_grad()
    def evaluate(self, encoded: dict, chunk: int = 32) -> dict:
        """gIoU / cIoU (+ short / long) of ``logits > 0`` against the ground truth, ignore pixels removed."""
        metrics = ReasonSegMetrics()
        for start in range(0, len(encoded["masks"]), chunk):
            index = range(start, min(start + chunk, len(encoded["masks"])))
            for i, logits in zip(index, self.masks(encoded, index)):
                metrics.update((logits[0] > 0).cpu().numpy(), encoded["masks"][i].numpy(), encoded["is_sentence"][i])
        return metrics.compute()


def mask_path_ceiling(vision_source: str, train_samples: Sequence[dict], val_samples: Sequence[dict],
                      prompt: str = "point", vlm: str = "tiny-llava", sam: str = "tiny-sam", steps: int = 1500,
                      batch_size: int = 8, lr: float = 1e-3, seed: int = 0, progress: bool = True,
                      chunk: int = 32, **model_kwargs) -> dict:
    """Train a fresh design's mask path under ``prompt`` on ``train_samples``, score ``val_samples``.

    Samples are ReasonSeg dicts (``image``, ``mask``, ``texts``, ``is_sentence``, ``path``), e.g. a
    ReasonSegDataset. ``chunk``: images per encoder call (a profile's ``encode_chunk``: 2 for SAM ViT-B at
    1024 px on a T4). ``model_kwargs`` (``dtype``, ``load_in_4bit``, ``device``) go to ``from_parts``.
    The model is freed before returning (only the cached features were needed).
    """
    torch.manual_seed(seed)
    model = LisaForReasoningSegmentation.from_parts(vlm, sam, vision_source, **model_kwargs)
    path = PromptedMaskPath(model, prompt)
    train = path.encode([train_samples[i] for i in range(len(train_samples))], chunk=chunk, progress=progress)
    val = path.encode([val_samples[i] for i in range(len(val_samples))], chunk=chunk, progress=progress)
    history = path.train(train, steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    result = path.evaluate(val, chunk=chunk)
    del path, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    tail = history[-50:]
    return result | {"vision_source": vision_source, "prompt": prompt, "steps": steps,
                     "n_train": len(train["masks"]), "final_loss": sum(tail) / len(tail)}


@dataclass
class CeilingArgs:
    """The command line of ``python -m lisalib.lisa.ceiling``."""

    vision_source: Literal["vlm", "dual", "sam"] = field(default="vlm", metadata={
        "help": "the design whose mask path is trained"})
    prompt: Literal["point", "appearance", "lm_state"] = field(default="point", metadata={
        "help": "what stands in for the <SEG> prompt: the target's centre point, its name, or the frozen LM's "
                "<SEG> state"})
    data: str = field(default="data/reasonseg_synth", metadata={"help": "ReasonSeg-format root with train/ and val/"})
    vlm_name: str = field(default="tiny-llava", metadata={"help": "zoo name, directory or hub id"})
    sam_name: str = field(default="tiny-sam", metadata={"help": "zoo name, directory or hub id"})
    n_train: int = field(default=1000, metadata={"help": "training samples (the first N of train/)"})
    n_val: int = field(default=200, metadata={"help": "scored samples (the first N of val/)"})
    steps: int = field(default=1500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "samples per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW, cosine schedule)"})
    seed: int = field(default=0, metadata={"help": "seeds the new modules and the sampling"})
    json: bool = field(default=False, metadata={"help": "print the figures as JSON"})
    progress: bool = field(default=True, metadata={"help": "progress bars (--no_progress: none)"})


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(CeilingArgs, "python -m lisalib.lisa.ceiling", __doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    try:
        train, val = ReasonSegDataset(args.data, "train"), ReasonSegDataset(args.data, "val")
        result = mask_path_ceiling(args.vision_source, Subset(train, range(min(args.n_train, len(train)))),
                                   Subset(val, range(min(args.n_val, len(val)))), args.prompt, args.vlm_name,
                                   args.sam_name, args.steps, args.batch_size, args.lr, args.seed,
                                   progress=args.progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_safe(result), indent=2))
    else:
        print(f"{args.vision_source}, {args.prompt} prompt: gIoU {result['giou']:.3f}, cIoU {result['ciou']:.3f} "
              f"(short {result['short']['giou']:.3f}, long {result['long']['giou']:.3f}; n = {result['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
