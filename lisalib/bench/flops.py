"""FLOP counting with ``torch.utils.flop_counter.FlopCounterMode`` (``torch/utils/flop_counter.py``).

Works on the ``meta`` device, so a real-size model is counted from its shapes alone (no weights, no
memory). FLOPs are counted as torch does: one multiply-add = 2; matmuls, convolutions and attention are
counted, element-wise operations are not.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def flops_and_result(fn: Callable, *args, **kwargs) -> tuple[int, object]:
    """(FLOPs, return value) of one call of ``fn`` under ``torch.no_grad``."""
    counter, result = _counted(fn, *args, **kwargs)
    return int(counter.get_total_flops()), result


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of one call of ``fn`` as counted by torch (matmuls, convolutions, attention)."""
    return flops_and_result(fn, *args, **kwargs)[0]


def count_flops_by_operator(fn: Callable, *args, **kwargs) -> dict[str, int]:
    """FLOPs of one call of ``fn`` per aten operator (``addmm`` = linear layers, ``bmm`` = attention, ...)."""
    counts = _counted(fn, *args, **kwargs)[0].get_flop_counts()["Global"]
    return {str(op).removeprefix("aten.").split(".")[0]: int(n) for op, n in counts.items()}


def _counted(fn: Callable, *args, **kwargs) -> tuple[FlopCounterMode, object]:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        result = fn(*args, **kwargs)
    return counter, result
