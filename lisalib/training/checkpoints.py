"""Checkpoints that hold only what trains, written and read by accelerate's own state saving.

``accelerator.save_state`` / ``load_state`` store the optimizer, the schedule, every process's RNG state
and the step counter; :func:`trainable_only` hooks them so that the model part is one
``trainable.safetensors`` of the tensors that train, never the frozen backbones (a 7B run's checkpoint is
megabytes). Folders are accelerate's automatic ones, ``OUTPUT_DIR/checkpoints/checkpoint_<step>``, pruned to
``total_limit`` by accelerate; ``state.json`` is written last, so a folder without it is an interrupted save.

peft trainable tokens (the ``<SEG>`` rows) are stored as the rows they replace, ``<matrix>.weight@seg_row``,
the format of every checkpoint this project has shipped.
"""
from __future__ import annotations

import json
import os
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TRAINABLE_FILE = "trainable.safetensors"
RUN_FILE = "run.json"
STATE_FILE = "state.json"
CHECKPOINTS_DIR = "checkpoints"
ROW_TAG = "seg_row"
_TOKENS = re.compile(r"^(?P<module>.+?)(\.token_adapter)?\.trainable_tokens_delta\.[^.]+$")


# ----- which tensors, under which names ------------------------------------------------------------
def stored_name(name: str, row_tag: str = ROW_TAG) -> str:
    """A parameter's key in a checkpoint: its own name, or ``<matrix>.weight@<row_tag>`` for trainable tokens."""
    match = _TOKENS.match(name)
    return f"{match['module']}.weight@{row_tag}" if match else name


def trainable_state(model: torch.nn.Module, row_tag: str = ROW_TAG) -> dict[str, torch.Tensor]:
    """The tensors that train (``requires_grad``), on the CPU; one trainable token is stored as a row ``[D]``."""
    state = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            tensor = param.detach()
            if _TOKENS.match(name) and tensor.shape[0] == 1:
                tensor = tensor[0]
            state[stored_name(name, row_tag)] = tensor.contiguous().cpu().clone()
    return state


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], row_tag: str = ROW_TAG,
                         token_ids: Sequence[int] | None = None) -> None:
    """Inverse of :func:`trainable_state`; every saved tensor must find its parameter.

    A row key finds the trainable-token tensor of its matrix, or, in a model without trainable tokens,
    rows ``token_ids`` of the matrix itself.
    """
    params = dict(model.named_parameters())
    by_key = {stored_name(name, row_tag): param for name, param in params.items()}
    missing = [k for k in state if k not in by_key and not (k.endswith(f"@{row_tag}") and token_ids is not None
                                                            and k.rsplit("@", 1)[0] in params)]
    if missing:
        raise KeyError(f"checkpoint tensors without a parameter in this model: {missing[:5]} "
                       "(was it trained with another vision source or LoRA setting?)")
    with torch.no_grad():
        for key, tensor in state.items():
            if key in by_key:
                target = by_key[key]
                target.copy_(tensor.reshape(target.shape).to(target.device, target.dtype))
            else:  # a plain matrix: write the rows
                target = params[key.rsplit("@", 1)[0]]
                target[list(token_ids)] = tensor.reshape(len(token_ids), -1).to(target.device, target.dtype)


# ----- accelerate's state saving, trainable tensors only -----------------------------------------------
def trainable_only(accelerator, state_fn: Callable[[torch.nn.Module], dict],
                   load_fn: Callable[[torch.nn.Module, dict], None]) -> list:
    """Hooks that make ``save_state`` / ``load_state`` write and read :data:`TRAINABLE_FILE` instead of
    the whole model; returns the handles (``handle.remove()``)."""

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            save_file(state_fn(accelerator.unwrap_model(models[0])), Path(output_dir) / TRAINABLE_FILE)
        weights.clear()  # accelerate would otherwise write every frozen tensor as model.safetensors

    def load_hook(models, input_dir):
        load_fn(accelerator.unwrap_model(models[0]), load_file(Path(input_dir) / TRAINABLE_FILE))
        models.clear()

    return [accelerator.register_save_state_pre_hook(save_hook), accelerator.register_load_state_pre_hook(load_hook)]


def checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (those whose ``state.json``, written last, exists), oldest first."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    return sorted((p for p in folder.glob("checkpoint_*") if (p / STATE_FILE).is_file()), key=checkpoint_step)


def checkpoint_step(folder: Path) -> int:
    """Optimizer steps taken when ``folder`` was saved."""
    return int(json.loads((Path(folder) / STATE_FILE).read_text())["step"])


@contextmanager
def _quiet_pruning():
    """accelerate logs a warning each time ``total_limit`` removes an old checkpoint, which is what it is for."""
    logger = logging.getLogger("accelerate.accelerator")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def save_checkpoint(accelerator, step: int, record: dict) -> Path:
    """``accelerator.save_state`` into ``checkpoints/checkpoint_<step>`` (every process takes part), then
    ``state.json``. A leftover folder of an interrupted save at this step is replaced."""
    folder = Path(accelerator.project_dir) / CHECKPOINTS_DIR / f"checkpoint_{step}"
    if accelerator.is_main_process and folder.exists() and not (folder / STATE_FILE).is_file():
        shutil.rmtree(folder)
    accelerator.wait_for_everyone()
    accelerator.project_configuration.iteration = step  # accelerate names the folder after it
    with _quiet_pruning():
        accelerator.save_state()
    accelerator.wait_for_everyone()  # every process has written its RNG state before the folder counts
    if accelerator.is_main_process:
        write_json_atomically(folder / STATE_FILE, {"step": step, **record})
    accelerator.wait_for_everyone()
    return folder


def write_json_atomically(path: Path, value: dict) -> None:
    """Write to a temporary file, then rename: a kill mid-write leaves the old file or none, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def load_checkpoint(accelerator, folder: Path) -> int:
    """``accelerator.load_state`` (weights through the hooks, optimizer, schedule, RNG); returns the step."""
    accelerator.load_state(str(folder))
    return checkpoint_step(folder)


# ----- what a finished run leaves ----------------------------------------------------------------------
def export_final(output_dir: Path, state: dict[str, torch.Tensor], run: dict, summary: dict) -> Path:
    """``final/``: trainable weights + run.json, everything evaluation needs besides the base models."""
    final = Path(output_dir) / "final"
    final.mkdir(parents=True, exist_ok=True)
    save_file(state, final / TRAINABLE_FILE)
    (final / RUN_FILE).write_text(json.dumps({**run, "summary": summary}, indent=2) + "\n")
    return final


def export_copy(final: Path, output_dir: Path, target: Path) -> None:
    """Copy a finished run's weights, run record, step log and benchmark into ``target`` (replaced)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(final, target)
    for name in ("log.jsonl", "summary.json"):
        shutil.copy2(Path(output_dir) / name, target / name)
