"""The end-to-end test every family passes offline: train the Modified LISA a few steps, segment, round-trip.

For each family: its tiny member (``tiny-llava`` from the zoo for ``llava``; the zoo's pretrained
``tiny-siglip`` + ``tiny-lm`` with a new projector for ``traditional``; a seeded random-weight one, saved as
a ``save_pretrained`` folder, for the others) + ``tiny-sam``, ``vision_source="vlm"``, LoRA on
the language model. Steps, each recorded in the family's entry:

1. ``lisalib.lisa.train.train`` for ``steps`` optimizer steps (loss finite);
2. reload the run (``lisalib.lisa.evaluate.load_trained``), count vision passes (must be 1), segment
   teacher-forced and by generation (one mask per ``<SEG>`` at the image's size), score gIoU on ``n_eval``
   validation samples next to the best query-blind mask;
3. merge LoRA and the ``<SEG>`` rows into the weights (peft's unload), then ``save_pretrained`` /
   ``from_pretrained`` of the whole model: the same masks before the merge, after it and after reloading.

The budgets are small on purpose (CI minutes): the gIoU is a smoke figure, not a result; chapter 7's
results are the shipped 4,000-step runs ``tiny-lisa-vlm-point`` and ``tiny-lisa-traditional-point``.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

FAMILY_ORDER = ("llava", "smolvlm", "qwen2_vl", "paligemma", "traditional")


@dataclass
class CheckSettings:
    steps: int = 4
    batch_size: int = 2
    n_train: int = 16
    n_eval: int = 4
    lr: float = 1e-3
    val_data: str | None = None  # a ReasonSeg folder; None: n_eval synthetic samples written next to the runs
    seg_prompt: str = "embedding"


def backbone_folder(family: str, root: Path) -> str:
    """What ``--vlm_name`` the family's check trains on: the zoo's tiny-llava, the zoo pair, or a saved tiny member."""
    if family == "llava":
        return "tiny-llava"
    if family == "traditional":  # the zoo's pretrained SigLIP + LM, assembled with a new projector
        from lisalib.backbones.traditional import ZOO_PAIR

        return ZOO_PAIR
    from lisalib.backbones.tiny import save_tiny

    folder = root / f"tiny-{family}"
    if not (folder / "config.json").is_file():
        save_tiny(family, folder)
    return str(folder)


def check_family(family: str, root: Path, settings: CheckSettings = CheckSettings()) -> dict:
    """Run the three steps for one family; returns its entry (``ok`` plus the figures of each step)."""
    from lisalib.lisa.evaluate import evaluate, load_trained, open_split
    from lisalib.lisa.modeling import LisaForReasoningSegmentation, count_vision_passes
    from lisalib.lisa.train import TrainArgs, train
    from lisalib.reasonseg.baselines import query_blind_scores

    entry: dict = {"ok": False}
    start = time.perf_counter()
    try:
        vlm_name = backbone_folder(family, root)
        run_dir = root / f"run-{family}"
        args = TrainArgs(profile="tiny", data=str(root / "data"), n_train=settings.n_train, vlm_name=vlm_name,
                         sam_name="tiny-sam", vision_source="vlm", seg_prompt=settings.seg_prompt, use_lora=True,
                         max_steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, warmup_steps=0,
                         output_dir=str(run_dir), progress=False, save_every=settings.steps, seed=0)
        summary = train(args)
        losses = [row["loss"] for row in _log(run_dir)]
        entry["train"] = {"steps": summary["step"], "first_loss": losses[0], "last_loss": losses[-1],
                          "trainable": summary["trainable_total"], "seconds_per_step": summary["seconds_per_step"]}
        if not all(math.isfinite(x) for x in losses):
            raise RuntimeError(f"non-finite loss {losses}")

        model = load_trained(run_dir)
        adapter = model.backbone
        dataset = open_split(settings.val_data or _val_split(root, settings.n_eval))
        items = [dataset[i] for i in range(settings.n_eval)]
        images, queries = [i["image"] for i in items], ["where is the " + i["texts"][0] + "?" for i in items]
        seg = model.processor.seg_token
        with count_vision_passes(model) as calls:
            forced = model.segment(images[:2], queries[:2], answers=[f"{seg} ."] * 2)
        generated = model.segment(images[:2], queries[:2], max_new_tokens=4)
        shapes_ok = all(r.masks.shape == (1, *i["mask"].shape) for r, i in zip(forced, items))
        scores = evaluate(model, dataset, protocols=("teacher_forced",), max_samples=settings.n_eval, progress=False)
        blind = query_blind_scores(items)
        best_blind = max(v["giou"] for v in blind.values())
        batch = model.processor(images[:2], queries[:2], answers=[f"{seg} ."] * 2, vision_source="vlm")
        batch.pop("labels")
        entry["segment"] = {"vision_passes": int(calls.total()), "masks_at_image_size": bool(shapes_ok),
                            "generated": [r.text for r in generated], "giou": scores["giou"], "n": scores["n"],
                            "query_blind_giou": best_blind,
                            "image_tokens": int((batch["input_ids"][0] == model.processor.image_token_id).sum()),
                            "vision_grid": list(_grid(model, batch))}
        with torch.no_grad():
            adapted = model(**batch).pred_masks
            merge_adapters(model)
            merged = model(**batch).pred_masks
        with tempfile.TemporaryDirectory() as saved:
            model.save_pretrained(saved)
            again = LisaForReasoningSegmentation.from_pretrained(saved).eval()
            with torch.no_grad():
                after = again(**batch).pred_masks
        merge_error = max(float((a - b).abs().max()) for a, b in zip(adapted, merged))
        reload_error = max(float((a - b).abs().max()) for a, b in zip(merged, after))
        same = merge_error < 1e-3 and reload_error == 0.0
        entry["round_trip"] = {"merge_max_abs_diff": merge_error, "reload_max_abs_diff": reload_error,
                               "family_after_reload": again.backbone.family}
        entry.update(family=adapter.family, model_class=type(model.vlm).__name__, grid_meaning=adapter.grid_meaning,
                     connector=adapter.connector)
        entry["ok"] = bool(calls.total() == 1 and shapes_ok and same and again.backbone.family == family
                           and adapter.family == family)
    except Exception as error:  # reported per family; the others still run
        entry["error"] = f"{type(error).__name__}: {error}"
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def merge_adapters(model: torch.nn.Module) -> torch.nn.Module:
    """Fold peft's injected LoRA adapters and trainable ``<SEG>`` rows into the base weights, in place, so the
    model saves as plain transformers modules (peft's own unload loop, for ``inject_adapter_in_model``)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrappers = {name for name, module in model.named_modules()
                if isinstance(module, BaseTunerLayer) or hasattr(module, "unload_and_optionally_merge_module")}
    for name, module in list(model.named_modules()):
        if name not in wrappers or any(name.startswith(w + ".") for w in wrappers):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if hasattr(module, "unload_and_optionally_merge_module"):
            setattr(parent, child, module.unload_and_optionally_merge_module(merge=True, safe_merge=False,
                                                                             adapter_names=None))
        elif isinstance(module, BaseTunerLayer):
            module.merge()
            setattr(parent, child, module.get_base_layer())
    return model


def _val_split(root: Path, n: int) -> Path:
    """``root/val`` with ``n`` shapes-world ReasonSeg samples (seed 1: none of the training scenes)."""
    from lisalib.reasonseg.synth import write_split

    folder = root / "val_data"
    if not (folder / "val").is_dir() or len(list((folder / "val").glob("*.json"))) < n:
        write_split(folder, "val", n, seed=1, overwrite=True)
    return folder


def _grid(model, batch) -> tuple[int, int]:
    with torch.no_grad():
        _, patches = model.clip_encode(batch["vlm_pixel_values"], batch.get("vlm_inputs"))
    side = math.isqrt(patches.shape[1])
    return side, side


def _log(run_dir: Path) -> list[dict]:
    from lisalib.training.loop import read_log

    return read_log(run_dir)


def run_check(families=FAMILY_ORDER, settings: CheckSettings = CheckSettings(), root: str | None = None) -> dict:
    """``{"families": {name: entry}, "ok": all passed}`` (a temporary folder unless ``root`` is given)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(root or tmp)
        base.mkdir(parents=True, exist_ok=True)
        results = {family: check_family(family, base, settings) for family in families}
    return {"families": results, "ok": all(r["ok"] for r in results.values()),
            "settings": settings.__dict__}
