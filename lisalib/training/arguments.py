"""The arguments every accelerate training loop here takes: budget, optimizer, precision, checkpoints.

A chapter's own arguments subclass :class:`TrainingArguments` (``lisalib.lisa.train.TrainArgs``), so the
Python API and the command line (``lisalib.cli.dataclass_parser``, help in each field's metadata) take the
same names. ``None`` means "the chapter's profile decides".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lisalib.cli import arg

DTYPES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # --dtype -> accelerate's mixed_precision
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class TrainingArguments:
    """Budget, optimizer, precision and checkpointing of one run."""

    output_dir: str = field(default="runs/lisa-vlm", **arg("where checkpoints, logs and final/ go"))
    epochs: int = field(default=1, **arg("passes over the training set (max_steps caps them)"))
    max_steps: int | None = field(default=None, **arg("stop after this many optimizer steps"))
    batch_size: int = field(default=8, **arg("samples per micro-batch over all processes (the global batch)"))
    grad_accum: int = field(default=1, **arg("micro-batches per optimizer step"))
    lr: float = field(default=3e-4, **arg("peak learning rate (AdamW, betas 0.9/0.95, cosine schedule)"))
    weight_decay: float = field(default=0.0, **arg("AdamW weight decay"))
    warmup_steps: int = field(default=20, **arg("linear warm-up steps of the cosine schedule"))
    max_grad_norm: float = field(default=1.0, **arg("gradient clipping (LISA: 1.0)"))
    dtype: Literal["fp32", "bf16", "fp16"] | None = field(
        default=None, **arg("mixed precision; trained tensors stay fp32 (None: the profile's)"))
    seed: int = field(default=0, **arg("seeds the new modules, the data order and every per-sample choice"))
    save_every: int = field(default=50, **arg("optimizer steps between checkpoints"))
    save_total_limit: int = field(default=2, **arg("checkpoints kept in OUTPUT_DIR/checkpoints (oldest go first)"))
    resume: bool = field(default=False, **arg("continue from the newest checkpoint in --output_dir"))
    progress: bool = field(default=True, **arg("a progress bar (--no_progress: none)"))
    export_to: str | None = field(default=None, **arg(
        "when finished, also copy final/, log and summary to this folder (how the shipped runs are made)"))

    def check(self) -> None:
        """A ValueError naming the first impossible setting."""
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("epochs", "batch_size", "grad_accum", "save_every", "save_total_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
