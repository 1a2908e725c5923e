"""``python -m lisalib.accounting PRESET``: parameter counts, trainable counts and bytes of one preset.

Arguments come from :class:`AccountingArgs` through ``transformers.HfArgumentParser``; the LoRA defaults
are LISA's (:data:`lisalib.training.recipes.LORA_DEFAULTS`), as in chapter 3.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import torch

from lisalib.accounting.counts import count_parameters, trainable_parameters
from lisalib.accounting.presets import MODES, as_preset, check_mode, describe_mode, presets
from lisalib.accounting.registry import AccountingError, GiB
from lisalib.accounting.storage import plan_preset, predict_footprint
from lisalib.cli import dataclass_parser, format_table
from lisalib.training.recipes import LORA_DEFAULTS, LoraDefaults


def summarize(preset: str, quant: str = "none", mode: str | None = None, lora: LoraDefaults | None = None,
              dtype: torch.dtype = torch.bfloat16) -> dict:
    """Everything the CLI prints: counts, trainable count and bytes for one preset/quant/mode."""
    spec = as_preset(preset)
    mode = check_mode(spec, mode or spec.default_mode)
    counts = count_parameters(spec, quant, mode=mode)
    trainable = trainable_parameters(spec, mode, lora)
    footprint = predict_footprint(plan_preset(spec, quant, dtype, mode).tensors)
    return {
        "preset": spec.name,
        "quant": quant,
        "mode": mode,
        "dtype": str(dtype).removeprefix("torch."),
        "total": counts.total,
        "architecture_total": counts.architecture_total,
        "trainable": trainable.trainable,
        "bytes": footprint.total,
        "footprint_bytes": footprint.footprint,
        "components": counts.components,
        "trainable_components": trainable.components,
        "not_quantized_by_default": counts.skipped,
    }


@dataclass
class AccountingArgs:
    """The command line of ``python -m lisalib.accounting``."""

    preset: str = field(metadata={"help": "what to count, e.g. llava-1.5-7b, sam-vit-base, modified-lisa-7b "
                                          "(the flag may be left out: a bare first argument is the preset)"})
    quant: Literal["none", "8bit", "4bit"] = field(default="none", metadata={"help": "bitsandbytes quantization"})
    mode: str | None = field(default=None, metadata={
        "help": "training mode for the trainable count (unset: projections for modified-lisa-*, frozen otherwise)"})
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="bfloat16", metadata={"help": "dtype of every tensor that is not quantized"})
    lora_r: int = field(default=LORA_DEFAULTS.r, metadata={"help": "LoRA rank (LISA's)"})
    lora_alpha: int = field(default=LORA_DEFAULTS.alpha, metadata={"help": "LoRA alpha (LISA's)"})
    lora_targets: str | None = field(default=None, metadata={
        "help": "comma-separated module names LoRA adapts (unset: the preset's, q_proj,v_proj; c_attn for gpt2)"})
    json: bool = field(default=False, metadata={"help": "print one JSON object instead of tables"})

    def lora(self) -> LoraDefaults:
        targets = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip()) if self.lora_targets else None
        return replace(LORA_DEFAULTS, r=self.lora_r, alpha=self.lora_alpha,
                       targets=targets or as_preset(self.preset).lora_targets)


def build_parser():
    """The ``HfArgumentParser`` of :class:`AccountingArgs` (``lisalib.cli.dataclass_parser``: underscore flags)."""
    return dataclass_parser(
        AccountingArgs, "python -m lisalib.accounting",
        "Count parameters and bytes of an architecture built on the meta device (no download).\n"
        "Quantized counts are what PyTorch reports after bitsandbytes loading.",
        usage="python -m lisalib.accounting [--preset] PRESET [--quant Q] [--mode M] [--json] ...",
        epilog="presets:\n  " + ", ".join(sorted(presets())) + "\nmodes (cumulative for modified-lisa-*):\n"
               + "\n".join(f"  {mode:12s} {describe_mode(mode)}" for mode in MODES),
    )


def report(result: dict) -> str:
    """:func:`summarize`'s result as text tables."""
    total = result["total"]
    rows = [(label, count, 100.0 * count / total) for label, count in result["components"].items()]
    lines = [f"{result['preset']}  quant={result['quant']}  mode={result['mode']}  dtype={result['dtype']}",
             format_table(rows + [("total", total, 100.0)], ["component", "parameters", "%"])]
    if result["quant"] != "none":
        lines.append(f"architecture (unquantized): {result['architecture_total']:,}")
    trainable = list(result["trainable_components"].items())
    lines += ["", f"trainable in mode {result['mode']} ({describe_mode(result['mode'], result['preset'])}):",
              format_table(trainable + [("total", result["trainable"])], ["component", "trainable"]), "",
              f"bytes: {result['bytes']:,} ({result['bytes'] / GiB:.3f} GiB; get_memory_footprint() would say "
              f"{result['footprint_bytes']:,})"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv.insert(0, "--preset")  # `python -m lisalib.accounting PRESET ...`
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    try:
        result = summarize(args.preset, args.quant, args.mode, args.lora(), getattr(torch, args.dtype))
    except AccountingError as error:
        parser.error(str(error))  # exits with status 2 and the message on stderr
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0
