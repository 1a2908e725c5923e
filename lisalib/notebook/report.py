"""Key figures a notebook produces, collected for the one-page summary of the main job.

A notebook calls :func:`record` for each figure it wants in the summary (a parameter count, a metric,
a speed ratio). Outside the runner this only returns the value; when ``python -m lisalib.notebook``
executes the notebook it sets ``LISALIB_REPORT`` to a JSON-lines file, and the runner turns every
notebook's records into ``summary.md``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT_ENV = "LISALIB_REPORT"


def record(name: str, value: Any, unit: str = "", note: str = "") -> Any:
    """Note ``value`` under ``name`` for the summary; returns ``value`` so it can be used inline."""
    path = os.environ.get(REPORT_ENV)
    if path:
        entry = {"name": name, "value": _plain(value), "unit": unit, "note": note}
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    return value


def read_records(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _plain(value: Any) -> Any:
    """Numbers and strings as JSON; numpy/torch scalars unwrapped; floats kept to 4 significant digits."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return str(value)
