"""The main job: execute the notebook sequence headless and write a one-page summary of its figures.

    python -m lisalib.notebook [--notebooks notebooks] [--out outputs] [--only 00 01 ...] [--profile tiny] [--json]

Each notebook runs in a fresh kernel (as a user would run it top to bottom) with ``LISALIB_REPORT``
pointing at a per-notebook JSON-lines file; the figures the notebooks ``record`` end up in
``OUT/summary.md`` and ``OUT/summary.json`` beside the executed copies in ``OUT/notebooks/``. Every
finished notebook is written at once and the summary is rewritten after each one, so an interrupted
run keeps what it finished.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

NOTEBOOK_DIR = Path("notebooks")  # relative to where the job is started (the repository root), not to the package


def discover(notebook_dir: Path = NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks ``NN_name.ipynb`` in order, optionally only those whose number or name matches."""
    found = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)]
        if not found:
            raise SystemExit(f"no notebook matches {only} in {notebook_dir}")
    return found


def execute(notebook: Path, out_dir: Path, profile: str, timeout: int = 900) -> dict:
    """Run one notebook in a fresh kernel; save the executed copy; return its status and figures."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from lisalib.notebook.report import REPORT_ENV, read_records

    out_dir = out_dir.resolve()  # the kernel runs in the notebook's folder, so hand it absolute paths
    records_path = out_dir / "records" / f"{notebook.stem}.jsonl"
    records_path.parent.mkdir(parents=True, exist_ok=True)
    records_path.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k) for k in (REPORT_ENV, "LISALIB_PROFILE")}
    os.environ[REPORT_ENV] = str(records_path)
    os.environ["LISALIB_PROFILE"] = profile
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - start
    executed = out_dir / "notebooks" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed)
    return {"notebook": notebook.name, "ok": error is None, "error": error, "seconds": round(seconds, 1),
            "figures": read_records(records_path), "executed_copy": str(executed)}


def summary_markdown(results: list[dict], profile: str) -> str:
    lines = [f"# Notebook run summary (profile: {profile})", "",
             "| notebook | status | seconds |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['notebook']} | {'ok' if r['ok'] else 'FAILED: ' + str(r['error'])} | {r['seconds']} |")
    for r in results:
        if not r["figures"]:
            continue
        lines += ["", f"## {r['notebook']}", "", "| figure | value | unit | note |", "|---|---|---|---|"]
        for f in r["figures"]:
            lines.append(f"| {f['name']} | {f['value']} | {f['unit']} | {f['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lisalib.notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="folder holding the NN_name.ipynb files")
    parser.add_argument("--out", default="outputs", help="folder for executed copies and the summary")
    parser.add_argument("--only", nargs="*", help="notebook numbers or names to run (default: all)")
    parser.add_argument("--profile", default=os.environ.get("LISALIB_PROFILE", "tiny"), choices=["tiny", "real"])
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1" if args.profile == "tiny" else "0")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for notebook in discover(Path(args.notebooks), only=args.only):
        if not args.json:
            print(f"running {notebook.name} ...", flush=True)
        result = execute(notebook, out_dir, args.profile, args.timeout)
        results.append(result)
        if not args.json:
            status = "ok" if result["ok"] else f"FAILED ({result['error']})"
            print(f"  {status} in {result['seconds']} s, {len(result['figures'])} figures", flush=True)
        (out_dir / "summary.md").write_text(summary_markdown(results, args.profile))
        (out_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"summary: {out_dir / 'summary.md'}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
