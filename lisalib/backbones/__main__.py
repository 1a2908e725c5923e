"""``python -m lisalib.backbones check [--json] [--families a,b] [--steps N]``: the end-to-end test of every
VLM family (see :mod:`lisalib.backbones.check`); ``python -m lisalib.backbones claims [--json]``: 002's
figures measured (:mod:`lisalib.backbones.claims`); ``python -m lisalib.backbones compare --data DIR [--json]``:
the two shipped 4,000-step runs (llava, traditional) next to the query-blind baselines
(:mod:`lisalib.backbones.compare`)."""
from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m lisalib.backbones", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="train a few steps, segment and round-trip every family offline")
    check.add_argument("--families", default="llava,smolvlm,qwen2_vl,paligemma,traditional",
                       help="comma-separated families")
    check.add_argument("--steps", type=int, default=4, help="optimizer steps per family (small on purpose)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    claims = sub.add_parser("claims", help="002's parameter and memory figures, measured on the meta device")
    claims.add_argument("--json", action="store_true", help="print the result as JSON")
    compare = sub.add_parser("compare", help="score the shipped llava and traditional runs next to the query-blind "
                             "baselines (teacher-forced gIoU, 95%% intervals)")
    compare.add_argument("--data", default="data/reasonseg_val7", help="ReasonSeg-format root with SPLIT/ (written "
                         "from the shapes world with --seed and --n if missing)")
    compare.add_argument("--split", default="val")
    compare.add_argument("--seed", type=int, default=7, help="synthetic split seed if DATA/SPLIT is missing")
    compare.add_argument("--n", type=int, default=200, help="samples to synthesise if DATA/SPLIT is missing")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.command == "compare":
        from pathlib import Path

        from lisalib.backbones.compare import HEADERS, compare_rows
        from lisalib.backbones.compare import compare as run_compare
        from lisalib.cli import format_table
        from lisalib.lisa.evaluate import json_safe, open_split
        from lisalib.reasonseg.synth import write_split

        if not (Path(args.data) / args.split).is_dir():
            write_split(args.data, args.split, args.n, seed=args.seed)
        dataset = open_split(args.data, args.split)
        result = run_compare([dataset[i] for i in range(len(dataset))])
        if args.json:
            print(json.dumps(json_safe(result), indent=2))
        else:
            print(format_table(compare_rows(result), HEADERS))
            for family, entry in result["models"].items():
                c = entry["clicks"]
                print(f"{family}: clicks on the asked shape {c['on_target']:.3f} (short {c['short_on_target']:.3f}, "
                      f"long {c['long_on_target']:.3f}), on some shape {c['on_a_shape']:.3f}")
        return 0
    if args.command == "check":
        from lisalib.backbones.check import CheckSettings, run_check

        result = run_check(tuple(f.strip() for f in args.families.split(",") if f.strip()),
                           CheckSettings(steps=args.steps))
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for name, entry in result["families"].items():
                seg = entry.get("segment", {})
                print(f"{name:12s} {'ok' if entry['ok'] else 'FAIL'}  grid {seg.get('vision_grid')}  image tokens "
                      f"{seg.get('image_tokens')}  gIoU {seg.get('giou', float('nan')):.3f}  {entry['seconds']} s"
                      + (f"  {entry['error']}" if "error" in entry else ""))
        return 0 if result["ok"] else 1
    from lisalib.backbones.claims import format_claims, measure_claims

    result = measure_claims()
    print(json.dumps(result, indent=2) if args.json else format_claims(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
