"""How good can a design's masks be at all? Replace the ``<SEG>`` prompt by the target's centre point.

A LISA model fails in one of two places: the LLM's ``<SEG>`` state does not say *which* object is meant,
or the mask path (image features -> SAM's mask decoder) cannot draw it well even when it knows. This
module measures the second on its own: it gives SAM's mask decoder a perfect prompt -- a positive point
at the centre of the target's visible pixels, through SAM's own prompt encoder -- trains the decoder
(and ``vision_to_sam`` in the ``vlm`` design) with LISA's mask losses on exactly the image features that
design provides, and scores the val split with LISA's gIoU / cIoU. No LLM runs.

The result is a ceiling for the design's mask path under that budget: a trained model's gIoU below it is
lost in the language side, the gap between two designs' ceilings is what their image features cost.

``python -m lisalib.ceiling --vision_source vlm --data DIR [--n_train N] [--steps N] [--json]``
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.data.reasonseg import TARGET_VALUE, ReasonSegDataset
from lisalib.evaluate import json_safe
from lisalib.losses import mask_losses, total_loss
from lisalib.metrics import ReasonSegMetrics
from lisalib.modeling_lisa import LisaForReasoningSegmentation, postprocess_masks
from lisalib.zoo.steps import take_step


def centre_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) mean of the target pixels (value 1) of a ReasonSeg mask: the one-click prompt a user would give."""
    ys, xs = np.nonzero(np.asarray(mask) == TARGET_VALUE)
    if len(xs) == 0:
        raise ValueError("the mask has no target pixels: there is no centre to click on")
    return float(xs.mean()), float(ys.mean())


class PointPromptedMasks:
    """The mask path of ``model`` (its image features, ``vision_to_sam`` if any, SAM's decoder) prompted by points.

    Image features are computed once (the encoders stay frozen, as in training); what trains is SAM's mask
    decoder, its prompt encoder and the ``vision_to_sam`` bridge. ``model`` is changed in place: pass a
    freshly built one (:meth:`LisaForReasoningSegmentation.from_parts`), not a trained model you still need.
    """

    def __init__(self, model: LisaForReasoningSegmentation):
        if model.processor is None:
            raise ValueError("the model has no processor: build it with LisaForReasoningSegmentation.from_parts")
        self.model = model
        self.source = model.config.vision_source
        self.bridge = getattr(model, "vision_to_sam", None) if self.source == "vlm" else None
        model.requires_grad_(False)
        for module in (model.sam.mask_decoder, model.sam.prompt_encoder, self.bridge):
            if module is not None:
                module.float()  # what trains stays in float32, as in lisalib.train
        self.parameters = [*model.sam.mask_decoder.parameters(), *model.sam.prompt_encoder.parameters(),
                           *(self.bridge.parameters() if self.bridge is not None else [])]

    @torch.no_grad()
    def encode(self, samples: Sequence[dict], chunk: int = 32, progress: bool = True) -> dict:
        """Frozen image features, targets and prompt points of ``samples`` (ReasonSeg dicts)."""
        features, masks, points, long, sizes = [], [], [], [], []
        for start in tqdm(range(0, len(samples), chunk), desc=f"encode ({self.source})", disable=not progress):
            part = samples[start:start + chunk]
            batch = self.model.processor([s["image"] for s in part], [s["texts"][0] for s in part],
                                         vision_source=self.source)
            if self.source == "vlm":
                features.append(self.model.clip_encode(batch["vlm_pixel_values"])[1])  # CLIP patches
            else:
                features.append(self.model.sam_encode(batch["sam_pixel_values"]))  # SAM's embedding
            for s, original, reshaped in zip(part, batch["original_sizes"], batch["reshaped_input_sizes"]):
                x, y = centre_point(s["mask"])
                scale = reshaped.float() / original.float()  # (h, w): points live in SAM's resized frame
                points.append([x * float(scale[1]), y * float(scale[0])])
                sizes.append((original.tolist(), reshaped.tolist()))
            masks += [torch.from_numpy(np.asarray(s["mask"])) for s in part]
            long += [bool(s["is_sentence"]) for s in part]
        return {"features": torch.cat(features), "masks": masks, "points": torch.tensor(points),
                "is_sentence": long, "sizes": sizes}

    def masks(self, encoded: dict, index: Sequence[int]) -> list[torch.Tensor]:
        """Mask logits at each sample's original size, ``[1, H, W]`` per sample."""
        model, index = self.model, list(index)
        features = encoded["features"][index].float()
        embeddings = self.bridge(features) if self.bridge is not None else features
        points = encoded["points"][index][:, None, None, :].to(embeddings)  # [n, 1 prompt, 1 point, xy]
        labels = torch.ones(len(index), 1, 1, dtype=torch.long, device=embeddings.device)
        sparse, dense = model.sam.prompt_encoder(input_points=points, input_labels=labels, input_boxes=None,
                                                 input_masks=None)
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
        for _ in tqdm(range(steps), desc=f"point-prompted decoder ({self.source})", disable=not progress):
            index = torch.randint(len(encoded["masks"]), (batch_size,), generator=generator).tolist()
            predictions = self.masks(encoded, index)
            targets = [(encoded["masks"][i] == TARGET_VALUE).float()[None].to(p.device)
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


def point_prompt_ceiling(vision_source: str, train_samples: Sequence[dict], val_samples: Sequence[dict],
                         vlm: str = "tiny-llava", sam: str = "tiny-sam", steps: int = 1500, batch_size: int = 8,
                         lr: float = 1e-3, seed: int = 0, progress: bool = True, **model_kwargs) -> dict:
    """Train a fresh design's mask path with centre-point prompts on ``train_samples``, score ``val_samples``.

    Samples are ReasonSeg dicts (``image``, ``mask``, ``texts``, ``is_sentence``), e.g. a ReasonSegDataset.
    ``model_kwargs`` (``dtype``, ``load_in_4bit``, ``device``) go to ``from_parts``, as for training.
    """
    torch.manual_seed(seed)
    model = LisaForReasoningSegmentation.from_parts(vlm, sam, vision_source, **model_kwargs)
    path = PointPromptedMasks(model)
    train = path.encode([train_samples[i] for i in range(len(train_samples))], progress=progress)
    val = path.encode([val_samples[i] for i in range(len(val_samples))], progress=progress)
    history = path.train(train, steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    result = path.evaluate(val)
    tail = history[-50:]
    return result | {"vision_source": vision_source, "steps": steps, "n_train": len(train["masks"]),
                     "final_loss": sum(tail) / len(tail)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lisalib.ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vision_source", choices=("vlm", "dual", "sam"), default="vlm")
    parser.add_argument("--data", default="data/reasonseg_synth", help="ReasonSeg-format root with train/ and val/")
    parser.add_argument("--vlm_name", default="tiny-llava")
    parser.add_argument("--sam_name", default="tiny-sam")
    parser.add_argument("--n_train", type=int, default=1000)
    parser.add_argument("--n_val", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        train, val = ReasonSegDataset(args.data, "train"), ReasonSegDataset(args.data, "val")
        result = point_prompt_ceiling(args.vision_source, Subset(train, range(min(args.n_train, len(train)))),
                                      Subset(val, range(min(args.n_val, len(val)))), args.vlm_name, args.sam_name,
                                      args.steps, args.batch_size, args.lr, args.seed, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_safe(result), indent=2))
    else:
        print(f"{args.vision_source}: point-prompt ceiling gIoU {result['giou']:.3f}, cIoU {result['ciou']:.3f} "
              f"(short {result['short']['giou']:.3f}, long {result['long']['giou']:.3f}; n = {result['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
