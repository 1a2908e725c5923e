"""``python -m lisalib.backbones check [--json] [--families a,b] [--steps N]``: the end-to-end test of every
VLM family (see :mod:`lisalib.backbones.check`); ``python -m lisalib.backbones claims [--json]``: 002's
figures measured (:mod:`lisalib.backbones.claims`)."""
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
    args = parser.parse_args(argv)
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
