"""Command-line plumbing shared by every ``python -m lisalib.<module>``: arguments from dataclasses, one
table formatter, and quiet imports.

Arguments come from dataclasses through ``transformers.HfArgumentParser`` (help text in each field's
``metadata``), so a CLI and the Python API take the same names; flags use underscores, as the seed
design's ``--vlm_name``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence


def format_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    """A plain fixed-width table: integers with thousands separators, floats to 3 decimals."""

    def cell(value) -> str:
        if isinstance(value, bool) or value is None:
            return str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.3f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in text)) if text else len(str(h)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def quiet_bitsandbytes() -> None:
    """bitsandbytes logs "Failed to load CPU gemm_4bit_forward from kernels-community" at import on a machine
    without network: it tries to fetch an optional CPU kernel from the hub and falls back to its own. The
    fallback is what every CPU run here uses, so the line is noise; keep its errors, drop that warning."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
