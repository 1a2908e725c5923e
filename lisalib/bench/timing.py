"""Wall-clock timing: warm-up runs, then the median of repeats, with several functions interleaved.

Interleaving (every function once per repeat, in turn) makes background load on a shared CPU hit them
alike, so their ratio is steadier than timing one after the other; the median drops the odd slow repeat.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: wait for them before reading the clock


def wall_seconds(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn()`` takes (``time.perf_counter``; on a GPU after its kernels finish)."""
    _synchronize()
    start = time.perf_counter()
    fn()
    _synchronize()
    return time.perf_counter() - start


def interleaved_samples(fns: Mapping[str, Callable[[], object]], repeats: int = 3, warmup: int = 1,
                        inference: bool = True) -> dict[str, list[float]]:
    """Seconds per call of each named function: ``warmup`` untimed rounds, then ``repeats`` timed ones.

    Every round calls each function once, in order. ``inference`` runs everything under
    ``torch.inference_mode`` (no autograd bookkeeping).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must be at least 0")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode(inference):
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                samples[name].append(wall_seconds(fn))
    return samples


def medians(samples: Mapping[str, list[float]]) -> dict[str, float]:
    """The median of each list of seconds."""
    return {name: statistics.median(values) for name, values in samples.items()}


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, inference: bool = True) -> float:
    """Median seconds of ``fn()`` after ``warmup`` untimed calls."""
    return medians(interleaved_samples({"fn": fn}, repeats, warmup, inference))["fn"]
