"""The accelerate training loop shared by every chapter that trains frozen backbones.

A chapter describes its run as a :class:`TrainingTask` (model, data, loss, what a checkpoint stores) and
calls :func:`train_loop`. The loop is accelerate's own: a ``DataLoader`` through ``accelerator.prepare``
(``split_batches``: ``--batch_size`` is the global batch, split over the processes), ``accumulate`` for
gradient accumulation, ``save_state`` / ``load_state`` with trainable-only hooks
(:mod:`lisalib.training.checkpoints`), ``skip_first_batches`` to resume.

Exact resume: the data order is a pure function of (seed, epoch) and every per-sample choice of (seed,
epoch, index) -- :class:`GlobalBatchSampler` yields :class:`SampleKey` s -- and the RNG, optimizer and
schedule are restored, so on a CPU an interrupted and resumed run ends bit for bit where an uninterrupted one
does. On N processes each loss term is rescaled by its share of the global batch (tokens, masks), so the
averaged gradient is the global batch's, as on one process.
"""
from __future__ import annotations

import json
import math
import random
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.training.arguments import DTYPES, TrainingArguments
from lisalib.training.checkpoints import (CHECKPOINTS_DIR, RUN_FILE, STATE_FILE, checkpoints, export_copy,
                                          export_final, load_checkpoint, save_checkpoint, trainable_only,
                                          write_json_atomically)

LOG_FILE = "log.jsonl"


class TrainingStopped(RuntimeError):
    """The loss became NaN/inf: the run stopped and kept its last good checkpoint."""


# ----- data order ----------------------------------------------------------------------------------
class SampleKey(NamedTuple):
    """What the sampler hands the dataset: a sample of an epoch. ``weight`` 0 marks a stand-in that keeps
    a process whose share of a short last batch is empty in step (its loss is scaled to zero)."""

    epoch: int
    index: int
    weight: int = 1


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a permutation that depends on (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


class GlobalBatchSampler:
    """Global batch number ``b`` is positions ``[b*B, (b+1)*B)`` of epoch ``b // ceil(n/B)``'s order (the last
    batch of an epoch may be short); ``num_batches`` batches, epochs following each other.

    On N processes each batch is laid out as N slices of B/N, one per process (accelerate's
    ``split_batches`` hands them out), each holding a near-equal share of the batch padded with ``None``;
    a process whose share is empty gets one stand-in (``weight=0``). No sample is counted twice.
    """

    drop_last = False

    def __init__(self, n: int, batch_size: int, seed: int, num_batches: int, num_processes: int = 1):
        if batch_size % num_processes:
            raise ValueError(f"batch_size {batch_size} must be a multiple of the number of processes "
                             f"({num_processes}): it is the global batch, split over them")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.num_batches, self.num_processes = num_batches, num_processes

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[SampleKey | None]]:
        per_epoch = math.ceil(self.n / self.batch_size)
        cached: tuple[int, list[int]] = (-1, [])
        for number in range(self.num_batches):
            epoch, position = divmod(number, per_epoch)
            if cached[0] != epoch:
                cached = (epoch, epoch_order(self.n, self.seed, epoch))
            part = cached[1][position * self.batch_size:(position + 1) * self.batch_size]
            keys = [SampleKey(epoch, index) for index in part]
            yield keys if self.num_processes == 1 else shard_layout(keys, self.batch_size, self.num_processes)


def shard_layout(keys: list[SampleKey], batch_size: int, num_processes: int) -> list[SampleKey | None]:
    """``keys`` as ``num_processes`` contiguous slices of ``batch_size // num_processes``: near-equal shares,
    padded with ``None``; an empty share holds one stand-in of the batch's first sample (weight 0)."""
    width = batch_size // num_processes
    base, extra = divmod(len(keys), num_processes)
    layout, start = [], 0
    for process in range(num_processes):
        size = base + (process < extra)
        share = keys[start:start + size] or [keys[0]._replace(weight=0)]
        layout += share + [None] * (width - len(share))
        start += size
    return layout


# ----- what a chapter provides -------------------------------------------------------------------------
class TrainingTask:
    """A chapter's run: override every method. ``collate`` returns the model's batch plus ``counts`` (local
    item counts per loss term, with ``samples``) and ``epoch``; ``loss`` gets each term's scale."""

    description = "train"

    def build_model(self, device: torch.device) -> torch.nn.Module:
        raise NotImplementedError

    def trainable_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def dataset(self, is_main_process: bool) -> Dataset:
        """Map-style: a :class:`SampleKey` -> a sample, ``None`` -> ``None``."""
        raise NotImplementedError

    def collate(self, items: list) -> dict:
        raise NotImplementedError

    def loss(self, model, batch: dict, scales: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to back-propagate and the terms to log (``loss`` first), each already scaled."""
        raise NotImplementedError

    def optimizer(self, model) -> torch.optim.Optimizer:
        raise NotImplementedError

    def trainable_state(self, model) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_trainable_state(self, model, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def record(self) -> dict:
        """What run.json says about the run (command, arguments, base models)."""
        return {}

    def summary_fields(self) -> dict:
        return {}


# ----- the loop ------------------------------------------------------------------------------------
def make_accelerator(args: TrainingArguments):
    """One accelerator per run. Accelerate keeps one global state per process; a notebook that trains an fp32
    model and then a bf16 one needs it reset (the process group, if any, is kept)."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=DTYPES[args.dtype], cpu=not torch.cuda.is_available(),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=args.grad_accum, sync_with_dataloader=False),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        project_config=ProjectConfiguration(project_dir=str(args.output_dir), automatic_checkpoint_naming=True,
                                            total_limit=args.save_total_limit),
        # SAM's IoU-prediction head is in the trainable decoder (as in LISA) but no LISA loss reads it
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def train_loop(args: TrainingArguments, task: TrainingTask, stop_after: int | None = None) -> dict:
    """Run (or resume) training; returns the benchmark summary. ``stop_after`` simulates an interruption.

    Raises :class:`TrainingStopped` on a NaN/inf loss after saving the last good state.
    """
    from accelerate import skip_first_batches
    from accelerate.utils import set_seed

    output_dir = Path(args.output_dir)
    resumable = checkpoints(output_dir)
    if resumable and not args.resume:
        raise FileExistsError(f"{output_dir} already holds checkpoints; pass --resume to continue, "
                              "or choose another --output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    model = task.build_model(accelerator.device)
    with accelerator.main_process_first():
        dataset = task.dataset(accelerator.is_main_process)
    per_epoch = math.ceil(len(dataset) / args.batch_size)
    total_steps = math.ceil(args.epochs * per_epoch / args.grad_accum)
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    sampler = GlobalBatchSampler(len(dataset), args.batch_size, args.seed, total_steps * args.grad_accum,
                                 accelerator.num_processes)
    # its own generator: a DataLoader iterator draws a seed, which must not come from the global RNG
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=task.collate,
                        generator=torch.Generator().manual_seed(args.seed))
    optimizer = task.optimizer(model)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(args.warmup_steps, total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    hooks = trainable_only(accelerator, task.trainable_state, task.load_trainable_state)
    main = accelerator.is_main_process
    run = {**task.record(), "trainable_parameters": task.trainable_counts(), "total_steps": total_steps,
           "samples": len(dataset)}

    start_step = 0
    if args.resume and resumable:
        _check_same_run(resumable[-1], run)
        start_step = load_checkpoint(accelerator, resumable[-1])
        accelerator.step = start_step * args.grad_accum  # micro-batches seen: keeps accumulate() in phase
        if main and args.progress:
            print(f"resumed from {resumable[-1]} at step {start_step}/{total_steps}", flush=True)
        if start_step >= total_steps and (output_dir / "summary.json").is_file():
            # a finished run: nothing to train, and its recorded benchmark stays as it was measured
            for handle in hooks:
                handle.remove()
            return json.loads((output_dir / "summary.json").read_text())
    log_path = output_dir / LOG_FILE
    if main:
        write_json_atomically(output_dir / RUN_FILE, run)
        _truncate_log(log_path, start_step)
    accelerator.wait_for_everyone()

    def save(at: int) -> Path:
        nonlocal last_saved
        folder = output_dir / CHECKPOINTS_DIR / f"checkpoint_{at}"
        if last_saved != at:
            folder, last_saved = save_checkpoint(accelerator, at, run), at
        return folder

    batches = skip_first_batches(loader, start_step * args.grad_accum) if start_step else loader
    trainable = [p for p in model.parameters() if p.requires_grad]
    step, last_saved, micro, samples_seen = start_step, (start_step if start_step else None), 0, 0
    boundary_rng = None  # the RNG state at the start of the step in progress
    step_seconds: list[float] = []
    model.train()
    bar = tqdm(total=total_steps, initial=start_step, desc=task.description, disable=not (args.progress and main))
    try:
        for batch in batches:
            if micro == 0:
                if stop_after is not None and step >= stop_after:
                    break
                began, parts, boundary_rng = time.perf_counter(), {}, _rng_state()
            counts, epoch = batch.pop("counts"), batch.pop("epoch")
            scales, samples = _scales(accelerator, counts)
            samples_seen += samples
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss, terms = task.loss(model, batch, scales)
                values = _global_means(accelerator, terms)
                if not math.isfinite(values["loss"]):
                    path = save(step)
                    raise TrainingStopped(f"loss is {values['loss']} at step {step + 1} (micro-batch {micro}); "
                                          f"stopped, the last good state is in {path}. Lower --lr or use --dtype fp32.")
                accelerator.backward(loss)
                for key, value in values.items():
                    parts[key] = parts.get(key, 0.0) + value / args.grad_accum
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            micro, step = 0, step + 1
            step_seconds.append(time.perf_counter() - began)
            record = {"step": step, "epoch": epoch, **{k: round(v, 6) for k, v in parts.items()},
                      "grad_norm": round(float(grad_norm), 6), "lr": scheduler.get_last_lr()[0],
                      "seconds": round(step_seconds[-1], 4)}
            if main:
                with log_path.open("a") as log:
                    log.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
            if step % args.save_every == 0 and step < total_steps:
                save(step)
    except KeyboardInterrupt:  # nothing lost: keep what the finished steps learned
        if accelerator.num_processes == 1:  # a save is collective; N interrupted processes cannot agree on one
            if boundary_rng is not None:  # a step cut short drew random numbers (dropout) it will draw again
                _set_rng_state(boundary_rng)
            print(f"\ninterrupted at step {step}; saved {save(step)} (continue with --resume)", file=sys.stderr)
        raise
    finally:
        bar.close()

    summary = {**task.summary_fields(), **benchmark_summary(step_seconds, samples_seen, task.trainable_counts(),
                                                            accelerator.device)}
    summary.update(step=step, total_steps=total_steps, finished=step >= total_steps)
    save(step)
    if main and step >= total_steps:
        final = export_final(output_dir, task.trainable_state(accelerator.unwrap_model(model)), run, summary)
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if args.export_to:
            export_copy(final, output_dir, Path(args.export_to))
    accelerator.wait_for_everyone()
    for handle in hooks:
        handle.remove()
    return summary


def _rng_state() -> tuple:
    """The global RNG states a step draws from (python, numpy, torch, CUDA)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _set_rng_state(state: tuple) -> None:
    python, numpy_state, cpu, cuda = state
    random.setstate(python)
    np.random.set_state(numpy_state)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _scales(accelerator, counts: dict[str, int]) -> tuple[dict[str, float], int]:
    """Each loss term's factor N * local / global (1.0 on one process) and the global batch's samples."""
    if accelerator.num_processes == 1:
        return {name: 1.0 for name in counts}, int(counts["samples"])
    names = list(counts)
    local = torch.tensor([float(counts[n]) for n in names], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local.clone(), reduction="sum").tolist()
    n = accelerator.num_processes
    scales = {name: (n * mine / whole if whole else 0.0) for name, mine, whole in zip(names, local.tolist(), total)}
    return scales, int(total[names.index("samples")])


def _global_means(accelerator, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """The logged terms over the global batch (mean of the processes' scaled terms); NaN anywhere is NaN here."""
    values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
    if accelerator.num_processes > 1:
        values = accelerator.reduce(values, reduction="mean")
    return dict(zip(terms, values.tolist()))


def _truncate_log(path: Path, step: int) -> None:
    """A fresh log, or on resume the lines up to the checkpoint (the interrupted run may have written more)."""
    if step == 0 or not path.is_file():
        path.write_text("")
        return
    kept = [line for line in path.read_text().splitlines() if _step_of(line) is not None and _step_of(line) <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _step_of(line: str) -> int | None:
    """The step of a log line, or None for a line a kill cut short."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _check_same_run(folder: Path, run: dict) -> None:
    """A ValueError when ``--resume`` would continue a checkpoint with other settings than it was saved with
    (the chapter's own arguments included: data, vision source, trainable groups, ...)."""
    saved = json.loads((folder / STATE_FILE).read_text()).get("args", {})
    now = run.get("args", {})
    budget = {"epochs", "max_steps", "resume", "progress", "export_to", "output_dir", "save_every", "save_total_limit"}
    # a setting only one side knows (a run saved before the option existed) counts as different
    differ = sorted(k for k in set(saved) | set(now) if k not in budget and saved.get(k) != now.get(k))
    if differ:
        raise ValueError(f"--resume would continue {folder} with other settings: "
                         + ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in differ)
                         + "; resume with the saved settings or choose another --output_dir")


def benchmark_summary(step_seconds: Sequence[float], samples: int, counts: dict, device: torch.device) -> dict:
    """Time per step (median, first step excluded as warm-up when there are more), samples/s, peak memory."""
    timed = list(step_seconds[1:] if len(step_seconds) > 1 else step_seconds)
    median = float(np.median(timed)) if timed else float("nan")
    total = float(sum(step_seconds))
    return {
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


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory allocated, or on a CPU the process's peak resident set (ru_maxrss, KiB on Linux)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def read_log(output_dir: str | Path) -> list[dict]:
    """The JSON-lines step log of a run (for loss curves)."""
    path = Path(output_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
