"""Command-line plumbing shared by every ``python -m lisalib.<module>``: arguments from dataclasses, one
table formatter, and quiet imports.

Arguments come from dataclasses through ``transformers.HfArgumentParser`` (help text in each field's
``metadata``), so a CLI and the Python API take the same names; flags use underscores, as the seed
design's ``--vlm_name``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence


def arg(text: str, **more) -> dict:
    """``field(default=..., **arg("help text"))``: the metadata ``HfArgumentParser`` turns into a flag's help
    (other keys go to ``add_argument``, e.g. ``choices``)."""
    return {"metadata": {"help": text, **more}}


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


class _DropOptionalKernelNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward")


def quiet_bitsandbytes() -> None:
    """Drop one bitsandbytes line that every run here printed at import: on a CPU with AVX512-BF16 it tries
    to fetch an optional 4-bit kernel from the hub ("kernels-community") and, offline or without the
    ``kernels`` package, logs "Failed to load CPU gemm_4bit_forward" before falling back to its own CPU
    kernel -- the one every CPU run of this project uses. Only that message is dropped; other
    bitsandbytes warnings still show."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropOptionalKernelNotice) for f in logger.filters):
        logger.addFilter(_DropOptionalKernelNotice())


def _parser_class():
    from transformers import HfArgumentParser

    class UnderscoreArgumentParser(HfArgumentParser):
        """``HfArgumentParser`` without the ``--dashed-alias`` it adds to every ``--under_scored`` flag:
        one flag style across every CLI, the seed design's (``--vlm_name``)."""

        def _add_dataclass_arguments(self, dtype):
            super()._add_dataclass_arguments(dtype)
            for action in self._actions:
                dashed = [o for o in action.option_strings if o.startswith("--") and "-" in o[2:]]
                for option in dashed:
                    self._option_string_actions.pop(option, None)
                    action.option_strings.remove(option)

    return UnderscoreArgumentParser


def dataclass_parser(dataclass_types, prog: str, description: str | None = None, **kwargs):
    """An argument parser for dataclasses: every field is a ``--field_name`` flag whose help is the field's
    ``metadata["help"]`` (other metadata keys go to ``add_argument``, e.g. ``"action": "extend"``); the
    module docstring (``description``) is shown as written."""
    import argparse

    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """The docstring as written, each flag's default after its help."""

    return _parser_class()(dataclass_types, prog=prog, description=description, formatter_class=Formatter, **kwargs)


def add_dataclass_subparsers(parser, dest: str = "command"):
    """``parser.add_subparsers`` whose ``add_parser(name, dataclass_types=...)`` builds dataclass parsers."""
    return parser.add_subparsers(dest=dest, required=True, parser_class=_parser_class())


def from_namespace(dataclass_type, namespace):
    """The dataclass instance named by an argparse namespace's matching attributes (extra ones ignored)."""
    from dataclasses import fields

    return dataclass_type(**{f.name: getattr(namespace, f.name) for f in fields(dataclass_type) if f.init
                             and hasattr(namespace, f.name)})
