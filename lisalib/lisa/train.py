"""Projection training: frozen backbones, trainable bridges (and optionally LoRA), LISA's losses.

``python -m lisalib.lisa.train`` (also under ``accelerate launch``) trains a :class:`LisaForReasoningSegmentation`
on a ReasonSeg-format folder. Argument names follow the seed design (``--vlm_name``, ``--sam_name``,
``--epochs``, ``--batch_size``, ``--lr``, ``--dtype``, ``--use_vlm_vision``, ``--no_quantization``,
``--use_lora``); ``--profile tiny|real`` fills in everything else.

What a run leaves in ``--output_dir``::

    run.json                       the arguments and the base checkpoints' fingerprints
    log.jsonl                      one JSON line per optimizer step (loss parts, lr, seconds)
    checkpoint-000050/             trainable weights + optimizer, scheduler and RNG state (resumable)
    final/                         trainable weights only: what ``lisalib.lisa.evaluate --checkpoint`` reads
    summary.json                   the benchmark: time per step, samples/s, peak memory, trainable counts

Only trainable tensors are saved (for the ``seg_row`` group: the ``<SEG>`` rows alone), so a checkpoint of
a 7B run is megabytes, not gigabytes. The data order is a pure function of (seed, epoch) and every
random choice per sample (which phrase, which answer template) of (seed, epoch, index), so a resumed run
sees exactly the batches the interrupted one would have seen: interrupted + resumed == uninterrupted,
bit for bit on a CPU (``tests/test_train.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.constants import SEG_TOKEN
from lisalib.reasonseg.dataset import ReasonSegDataset, answer_templates, question
from lisalib.lisa.modeling import DEFAULT_TRAINABLE, LisaForReasoningSegmentation
from lisalib.lisa.processing import VISION_SOURCES, LisaProcessor
from lisalib.profile import get_profile

DTYPES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # --dtype -> accelerate's mixed_precision
DEFAULT_GROUPS = DEFAULT_TRAINABLE
CHECKPOINT_PREFIX = "checkpoint-"
TRAINABLE_FILE = "trainable.safetensors"
RUN_FILE = "run.json"


class TrainingStopped(RuntimeError):
    """The loss became NaN/inf: the run stopped and kept its last good checkpoint."""


# ----- arguments ---------------------------------------------------------------------------------
@dataclass
class TrainArgs:
    """Everything that determines a run. ``None`` means "the profile decides"."""

    output_dir: str = "runs/lisa-vlm"
    data: str = "data/reasonseg_synth"  # ReasonSeg-format root; DATA/train is generated if missing
    profile: str | None = None
    vlm_name: str | None = None
    sam_name: str | None = None
    vision_source: str = "vlm"  # "vlm" = Modified LISA (one pass), "dual" = LISA, "sam"
    seg_hidden_state: str = "preceding"  # LISA's choice; "seg" = the <SEG> position (reads the trained row)
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; caps the epochs
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    dtype: str | None = None  # fp32 | bf16 | fp16 (mixed precision); default: profile
    load_in_4bit: bool | None = None  # default: profile (True on a GPU)
    use_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    trainable: tuple[str, ...] = DEFAULT_GROUPS  # "lora" is added by --use_lora
    gradient_checkpointing: bool = False
    seed: int = 0
    n_train: int = 1000  # samples written when DATA/train does not exist yet
    save_every: int = 50
    save_total_limit: int = 2
    resume: bool = False  # continue from the newest checkpoint in output_dir
    progress: bool = True
    export_to: str | None = None  # also copy final/ + log + summary here (how the shipped checkpoints are made)

    def resolved(self) -> "TrainArgs":
        """A copy with the profile's choices filled in and everything checked."""
        profile = get_profile(self.profile)
        values = asdict(self)
        values.update(profile=profile.name, vlm_name=self.vlm_name or profile.vlm, sam_name=self.sam_name or profile.sam)
        if self.dtype is None:
            values["dtype"] = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[profile.dtype]
        if self.load_in_4bit is None:
            values["load_in_4bit"] = profile.load_in_4bit
        groups = list(self.trainable)
        if self.use_lora and "lora" not in groups:
            groups.append("lora")
        values["trainable"] = tuple(groups)
        values["lora_target_modules"] = tuple(self.lora_target_modules)
        args = TrainArgs(**values)
        args.command = getattr(self, "command", None)  # type: ignore[attr-defined]
        args.check()
        return args

    def check(self) -> None:
        if self.vision_source not in VISION_SOURCES:
            raise ValueError(f"vision_source must be one of {VISION_SOURCES}, got {self.vision_source!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("epochs", "batch_size", "grad_accum", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if "lora" in self.trainable and not self.use_lora:
            raise ValueError("trainable group 'lora' needs --use_lora")
        if not self.trainable:
            raise ValueError("nothing to train: give at least one trainable group")


# ----- data --------------------------------------------------------------------------------------
class ReasonSegTrainSet(Dataset):
    """ReasonSeg samples turned into (image, query, answer, mask) with seeded per-sample choices.

    Which of a sample's phrases is asked and which of LISA's answer templates is forced depend only on
    (seed, epoch, index) -- not on a global RNG -- so resuming mid-epoch replays identical samples.
    """

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0, seg_token: str = SEG_TOKEN):
        self.samples = ReasonSegDataset(root, split)
        self.seed = seed
        self.epoch = 0
        self.answers = answer_templates(seg_token)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        item = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        text = item["texts"][int(rng.integers(len(item["texts"])))]
        return {
            "image": item["image"],
            "query": question(text, item["is_sentence"], image_token="").strip(),
            "answer": self.answers[int(rng.integers(len(self.answers)))],
            "mask": item["mask"],
            "is_sentence": item["is_sentence"],
        }


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a permutation that depends on (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def batches_from(dataset: ReasonSegTrainSet, batch_size: int, seed: int, start: int) -> Iterator[tuple[int, list[int]]]:
    """Endless (epoch, indices) batches starting at global batch number ``start`` (the resume point)."""
    per_epoch = math.ceil(len(dataset) / batch_size)
    number = start
    while True:
        epoch, position = divmod(number, per_epoch)
        order = epoch_order(len(dataset), seed, epoch)
        yield epoch, order[position * batch_size:(position + 1) * batch_size]
        number += 1


class Collator:
    """Samples -> a LisaProcessor batch (teacher-forced answer with one <SEG>, its mask)."""

    def __init__(self, processor: LisaProcessor, vision_source: str):
        self.processor = processor
        self.vision_source = vision_source

    def __call__(self, samples: list[dict]) -> dict:
        return self.processor([s["image"] for s in samples], [s["query"] for s in samples],
                              answers=[s["answer"] for s in samples], masks=[s["mask"] for s in samples],
                              vision_source=self.vision_source, require_seg=True)


def ensure_train_split(root: str | Path, n: int, seed: int, progress: bool = True) -> Path:
    """DATA/train, written from the shapes world first if it does not exist (seconds for 1,000 samples)."""
    folder = Path(root) / "train"
    if folder.is_dir() and any(folder.glob("*.json")):
        return folder
    from lisalib.reasonseg.synth import write_split

    if progress:
        print(f"{folder} not found: writing {n} synthetic ReasonSeg training samples (seed {seed}) ...", flush=True)
    write_split(root, "train", n, seed=seed)
    return folder


# ----- model -------------------------------------------------------------------------------------
def build_model(args: TrainArgs, device: torch.device | str | None = None) -> LisaForReasoningSegmentation:
    """Backbones from the zoo / hub, bridges, optional LoRA; trainable groups set and kept in float32."""
    model = LisaForReasoningSegmentation.from_parts(
        args.vlm_name, args.sam_name, args.vision_source, load_in_4bit=bool(args.load_in_4bit),
        dtype=_backbone_dtype(args), device=None if args.load_in_4bit else device,
        seg_hidden_state=args.seg_hidden_state)
    if args.use_lora:
        add_lora(model, args)
    model.trainable_counts = model.set_trainable(args.trainable)  # per group, seg_row as its two rows
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # fp32 master weights; autocast does the low-precision compute
    if args.gradient_checkpointing:
        model.vlm.model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _backbone_dtype(args: TrainArgs) -> str:
    """Frozen backbones are stored in the compute dtype (a 7B LLM in fp32 would not fit anywhere small)."""
    return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[args.dtype]


def add_lora(model: LisaForReasoningSegmentation, args: TrainArgs) -> None:
    """LoRA adapters on the language model's attention projections (LISA: r 8, alpha 16, q/v), via peft."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                        target_modules=list(args.lora_target_modules), bias="none")
    inject_adapter_in_model(config, model.vlm.model.language_model)


def trainable_state(model: LisaForReasoningSegmentation) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: trainable tensors, and for the embedding matrices only the <SEG> rows."""
    seg_matrices = {id(w) for w in model.trainable_groups()["seg_row"]}
    state = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in seg_matrices:
            state[f"{name}@seg_row"] = param.detach()[model.config.seg_token_id].clone()
        else:
            state[name] = param.detach().clone()
    return {k: v.contiguous().cpu() for k, v in state.items()}


def load_trainable_state(model: LisaForReasoningSegmentation, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`trainable_state`; every saved tensor must find its parameter."""
    params = dict(model.named_parameters())
    missing = [k.split("@")[0] for k in state if k.split("@")[0] not in params]
    if missing:
        raise KeyError(f"checkpoint tensors without a parameter in this model: {missing[:5]} "
                       "(was it trained with another vision source or LoRA setting?)")
    with torch.no_grad():
        for key, tensor in state.items():
            name = key.split("@")[0]
            target = params[name]
            if key.endswith("@seg_row"):
                target[model.config.seg_token_id] = tensor.to(target.device, target.dtype)
            else:
                target.copy_(tensor.to(target.device, target.dtype))


def fingerprint(name_or_path: str) -> str | None:
    """sha256 (first 16 hex) of a local checkpoint's weights: trained bridges only fit the base they saw."""
    from lisalib.zoo import ZooError, resolve

    try:
        path = Path(resolve(name_or_path))
    except ZooError:
        return None
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


# ----- checkpoints -------------------------------------------------------------------------------
def checkpoints(output_dir: str | Path) -> list[Path]:
    """Resumable checkpoints in ``output_dir``, oldest first."""
    folder = Path(output_dir)
    return sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / "state.json").is_file())


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, run: dict) -> Path:
    """Write to a temporary folder, then rename: an interrupted save never leaves a half checkpoint."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), tmp / TRAINABLE_FILE)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **run}, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> int:
    """Restore weights, optimizer, scheduler and RNG state; returns the optimizer steps already taken."""
    load_trainable_state(model, load_file(folder / TRAINABLE_FILE))
    states = torch.load(folder / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    rng = torch.load(folder / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(json.loads((folder / "state.json").read_text())["step"])


def _prune(output_dir: Path, keep: int) -> None:
    for old in checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def export_final(output_dir: Path, model, run: dict, summary: dict) -> Path:
    """``final/``: trainable weights + run.json, everything evaluation needs besides the base models."""
    final = output_dir / "final"
    final.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), final / TRAINABLE_FILE)
    (final / RUN_FILE).write_text(json.dumps({**run, "summary": summary}, indent=2) + "\n")
    return final


def export_copy(final: Path, output_dir: Path, target: Path) -> None:
    """Copy a finished run's weights, run record, step log and benchmark into ``target`` (replaced)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(final, target)
    for name in ("log.jsonl", "summary.json"):
        shutil.copy2(output_dir / name, target / name)


# ----- the loop ----------------------------------------------------------------------------------
def optimizer_for(model: LisaForReasoningSegmentation, args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW with LISA's betas (0.9, 0.95); no weight decay on the embedding matrices (only <SEG> moves)."""
    seg_ids = {id(w) for w in model.trainable_groups()["seg_row"]}
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if id(p) not in seg_ids]
    no_decay = [p for p in params if id(p) in seg_ids]
    groups = [{"params": decay, "weight_decay": args.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory allocated, or on a CPU the process's peak resident set (ru_maxrss, KiB on Linux)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def train(args: TrainArgs, stop_after: int | None = None) -> dict:
    """Run (or resume) training; returns the benchmark summary. ``stop_after`` simulates an interruption.

    Raises :class:`TrainingStopped` on a NaN/inf loss after saving the last good state.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    args = args.resolved()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Accelerate keeps one global state per process; a notebook that trains an fp32 model and then a bf16
    # one needs it reset (the process group, if any, is kept)
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(mixed_precision=DTYPES[args.dtype], cpu=not torch.cuda.is_available())
    set_seed(args.seed)

    model = build_model(args, device=accelerator.device)
    counts = dict(model.trainable_counts)
    ensure_train_split(args.data, args.n_train, args.seed, progress=args.progress and accelerator.is_main_process)
    dataset = ReasonSegTrainSet(args.data, "train", seed=args.seed, seg_token=model.processor.seg_token)
    collate = Collator(model.processor, args.vision_source)
    per_epoch = math.ceil(len(dataset) / args.batch_size)
    total_steps = math.ceil(args.epochs * per_epoch / args.grad_accum)
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)

    optimizer = optimizer_for(model, args)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(args.warmup_steps, total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    run = {"command": getattr(args, "command", None),
           "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(args).items()},
           "base": {"vlm": fingerprint(args.vlm_name), "sam": fingerprint(args.sam_name)},
           "trainable_parameters": counts, "total_steps": total_steps, "samples": len(dataset)}
    start_step = 0
    existing = checkpoints(output_dir)
    if args.resume and existing:
        start_step = load_checkpoint(existing[-1], raw_model, optimizer, scheduler)
        if accelerator.is_main_process and args.progress:
            print(f"resumed from {existing[-1]} at step {start_step}/{total_steps}", flush=True)
    elif existing and not args.resume:
        raise FileExistsError(f"{output_dir} already holds checkpoints; pass --resume to continue, "
                              "or choose another --output_dir")
    (output_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    log_path = output_dir / "log.jsonl"
    if start_step == 0:
        log_path.write_text("")
    else:  # drop log lines past the checkpoint (written by the interrupted run after its last save)
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= start_step]
        log_path.write_text("".join(line + "\n" for line in kept))

    batches = batches_from(dataset, args.batch_size, args.seed, start_step * args.grad_accum)
    trainable = [p for p in model.parameters() if p.requires_grad]
    step_seconds: list[float] = []
    samples_seen = 0
    model.train()
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {args.vision_source}",
               disable=not (args.progress and accelerator.is_main_process))
    step = start_step
    try:
        while step < total_steps:
            if stop_after is not None and step >= stop_after:
                break
            began = time.perf_counter()
            parts = {"loss": 0.0, "ce": 0.0, "bce": 0.0, "dice": 0.0}
            for micro in range(args.grad_accum):
                epoch, indices = next(batches)
                # under `accelerate launch` with N processes each takes every N-th sample of the global batch
                indices = indices[accelerator.process_index::accelerator.num_processes] or indices[:1]
                dataset.epoch = epoch
                batch = collate([dataset[i] for i in indices])
                samples_seen += len(indices)
                sync = nullcontext() if micro == args.grad_accum - 1 else accelerator.no_sync(model)
                with sync, accelerator.autocast():
                    out = model(**{k: _to(v, accelerator.device) for k, v in batch.items()})
                if not torch.isfinite(out.loss):
                    path = save_checkpoint(output_dir / f"{CHECKPOINT_PREFIX}{step:06d}", raw_model, optimizer,
                                           scheduler, step, run)
                    raise TrainingStopped(f"loss is {out.loss.item()} at step {step + 1} (micro-batch {micro}); "
                                          f"stopped, the last good state is in {path}. Lower --lr or use --dtype fp32.")
                accelerator.backward(out.loss / args.grad_accum)
                for key, value in (("loss", out.loss), ("ce", out.ce_loss), ("bce", out.bce_loss), ("dice", out.dice_loss)):
                    parts[key] += float(value.detach()) / args.grad_accum
            grad_norm = accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            step_seconds.append(time.perf_counter() - began)
            record = {"step": step, "epoch": epoch, **{k: round(v, 6) for k, v in parts.items()},
                      "grad_norm": round(float(grad_norm), 6), "lr": scheduler.get_last_lr()[0],
                      "seconds": round(step_seconds[-1], 4)}
            if accelerator.is_main_process:
                with log_path.open("a") as log:
                    log.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", bce=f"{parts['bce']:.3f}", dice=f"{parts['dice']:.3f}")
            if step % args.save_every == 0 and step < total_steps and accelerator.is_main_process:
                save_checkpoint(output_dir / f"{CHECKPOINT_PREFIX}{step:06d}", raw_model, optimizer, scheduler, step, run)
                _prune(output_dir, args.save_total_limit)
    except KeyboardInterrupt:  # nothing lost: keep what the finished steps learned
        if accelerator.is_main_process:
            path = save_checkpoint(output_dir / f"{CHECKPOINT_PREFIX}{step:06d}", raw_model, optimizer, scheduler,
                                   step, run)
            print(f"\ninterrupted at step {step}; saved {path} (continue with --resume)", file=sys.stderr)
        raise
    finally:
        bar.close()

    summary = benchmark_summary(step_seconds, samples_seen, args, counts, accelerator.device)
    summary.update(step=step, total_steps=total_steps, finished=step >= total_steps)
    if accelerator.is_main_process:
        save_checkpoint(output_dir / f"{CHECKPOINT_PREFIX}{step:06d}", raw_model, optimizer, scheduler, step, run)
        _prune(output_dir, args.save_total_limit)
        if step >= total_steps:
            final = export_final(output_dir, raw_model, run, summary)
            (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if args.export_to:
                export_copy(final, output_dir, Path(args.export_to))
    return summary


def benchmark_summary(step_seconds: Sequence[float], samples: int, args: TrainArgs, counts: dict,
                      device: torch.device) -> dict:
    """Time per step (median, first step excluded as warm-up when there are more), samples/s, peak memory."""
    timed = list(step_seconds[1:] if len(step_seconds) > 1 else step_seconds)
    median = float(np.median(timed)) if timed else float("nan")
    total = float(sum(step_seconds))
    return {
        "vision_source": args.vision_source,
        "steps_timed": len(timed),
        "seconds_per_step": round(median, 4),
        "samples_per_second": round(samples / total, 3) if total else float("nan"),
        "train_seconds": round(total, 2),
        "peak_memory_bytes": peak_memory_bytes(device),
        "trainable_parameters": counts,
        "trainable_total": int(sum(counts.values())),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def _to(value, device):
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value


def read_log(output_dir: str | Path) -> list[dict]:
    """The JSON-lines step log of a run (for loss curves)."""
    path = Path(output_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----- command line ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> TrainArgs:
    parser = argparse.ArgumentParser(prog="python -m lisalib.lisa.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainArgs()
    parser.add_argument("--output_dir", default=d.output_dir, help="where checkpoints, logs and final/ go")
    parser.add_argument("--data", default=d.data, help="ReasonSeg-format root with a train/ folder (made if missing)")
    parser.add_argument("--profile", choices=["tiny", "real"], help="tiny: offline zoo on CPU; real: hub models")
    parser.add_argument("--vlm_name", help="zoo name, directory or hub id (default: profile)")
    parser.add_argument("--sam_name", help="zoo name, directory or hub id (default: profile)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--vision_source", choices=VISION_SOURCES, default=d.vision_source)
    source.add_argument("--use_vlm_vision", dest="vision_source", action="store_const", const="vlm",
                        help="Modified LISA: SAM's decoder reads the VLM's vision features (one pass)")
    source.add_argument("--use_sam_vision", dest="vision_source", action="store_const", const="sam",
                        help="the LLM reads SAM's vision features (one pass)")
    source.add_argument("--dual_vision", dest="vision_source", action="store_const", const="dual",
                        help="original LISA: CLIP for the LLM, SAM's ViT for the mask (two passes)")
    parser.add_argument("--seg_hidden_state", choices=["preceding", "seg"], default=d.seg_hidden_state,
                        help="hidden state that prompts SAM: the token before <SEG> (LISA) or <SEG> itself")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--max_steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--batch_size", type=int, default=d.batch_size)
    parser.add_argument("--grad_accum", type=int, default=d.grad_accum, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight_decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup_steps", type=int, default=d.warmup_steps)
    parser.add_argument("--max_grad_norm", type=float, default=d.max_grad_norm, help="gradient clipping (LISA: 1.0)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="mixed precision (default: profile)")
    quant = parser.add_mutually_exclusive_group()
    quant.add_argument("--load_in_4bit", dest="load_in_4bit", action="store_true", default=None,
                       help="load the LLM in NF4 (bitsandbytes)")
    quant.add_argument("--no_quantization", dest="load_in_4bit", action="store_false", help="keep the LLM unquantized")
    parser.add_argument("--use_lora", action="store_true", help="add LoRA adapters (peft) to the LLM's q/v projections")
    parser.add_argument("--lora_r", type=int, default=d.lora_r)
    parser.add_argument("--lora_alpha", type=int, default=d.lora_alpha)
    parser.add_argument("--lora_target_modules", default=",".join(d.lora_target_modules),
                        help="comma-separated module names of the LLM to adapt (LISA: q_proj,v_proj)")
    parser.add_argument("--trainable", default=",".join(d.trainable),
                        help="comma-separated groups: projections, seg_row, mask_decoder (lora follows --use_lora)")
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--n_train", type=int, default=d.n_train, help="samples to synthesise if DATA/train is missing")
    parser.add_argument("--save_every", type=int, default=d.save_every, help="optimizer steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output_dir")
    parser.add_argument("--export_to", help="when finished, also copy final/, log and summary to this folder")
    parser.add_argument("--no_progress", dest="progress", action="store_false")
    parser.add_argument("--json", action="store_true", help="print the benchmark summary as JSON")
    ns = parser.parse_args(argv)
    values = {f.name: getattr(ns, f.name) for f in fields(TrainArgs) if hasattr(ns, f.name)}
    values["trainable"] = tuple(g.strip() for g in ns.trainable.split(",") if g.strip())
    values["lora_target_modules"] = tuple(m.strip() for m in ns.lora_target_modules.split(",") if m.strip())
    args = TrainArgs(**values)
    args.json = ns.json  # type: ignore[attr-defined]
    threads = os.environ.get("OMP_NUM_THREADS")  # part of the recipe on a CPU: it changes the digits
    args.command = (f"OMP_NUM_THREADS={threads} " if threads else "") + "python -m lisalib.lisa.train " + " ".join(  # type: ignore[attr-defined]
        argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        summary = train(args)
    except TrainingStopped as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['step']} steps, {summary['seconds_per_step']} s/step, {summary['samples_per_second']} samples/s, "
              f"peak memory {summary['peak_memory_bytes'] / 2**20:.0f} MiB, "
              f"{summary['trainable_total']:,} trainable parameters -> {Path(args.output_dir) / 'final'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
