"""The main job: execute the notebook sequence headless and write a one-page summary of its figures.

    python -m lisalib.notebook [--notebooks notebooks] [--out outputs] [--only 00 01 ...] [--profile tiny] [--json]

Each notebook runs in a fresh kernel (as a user would run it top to bottom) with ``LISALIB_REPORT``
pointing at a per-notebook JSON-lines file; the figures the notebooks ``record`` end up in
``OUT/summary.md`` and ``OUT/summary.json`` beside the executed copies in ``OUT/notebooks/``. Every
finished notebook is written at once and the summary is rewritten after each one, so an interrupted
run keeps what it finished.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lisalib.cli import dataclass_parser

NOTEBOOK_DIR = Path("notebooks")  # relative to where the job is started (the repository root), not to the package


def discover(notebook_dir: Path = NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks ``NN_name.ipynb`` in order, optionally only those whose number or name matches."""
    found = sorted(p for p in Path(notebook_dir).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise SystemExit(f"no NN_name.ipynb notebooks in {Path(notebook_dir).resolve()}; "
                         "run from the repository root or pass --notebooks DIR")
    if only:
        found = [p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)]
        if not found:
            raise SystemExit(f"no notebook matches {only} in {notebook_dir}")
    return found


# Each kernel logs at start "Kernel is running over TCP without encryption" (ipykernel >= 7): it listens on
# 127.0.0.1 only, for this job alone. The kernel's own log goes to ERROR; what cells print and warn is kept.
# (Unix-socket kernels, the other way to silence it, ignore nbclient's cell timeout: measured, jupyter_client 8.)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def execute(notebook: Path, out_dir: Path, profile: str, timeout: int = 900) -> dict:
    """Run one notebook in a fresh kernel; save the executed copy; return its status and figures."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from lisalib.notebook.report import REPORT_ENV, read_records

    out_dir = out_dir.resolve()  # the kernel runs in the notebook's folder, so hand it absolute paths
    records_path = out_dir / "records" / f"{notebook.stem}.jsonl"
    records_path.parent.mkdir(parents=True, exist_ok=True)
    records_path.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k) for k in (REPORT_ENV, "LISALIB_PROFILE")}
    os.environ[REPORT_ENV] = str(records_path)
    os.environ["LISALIB_PROFILE"] = profile
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                            resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError) as exc:  # one notebook's timeout or crash is its own failure
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
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


@dataclass
class MainJobArgs:
    notebooks: str = field(default=str(NOTEBOOK_DIR), metadata={"help": "folder holding the NN_name.ipynb files"})
    out: str = field(default="outputs", metadata={"help": "folder for executed copies and the summary"})
    only: list[str] | None = field(default=None, metadata={"help": "notebook numbers or names to run (default: all)"})
    profile: str = field(default_factory=lambda: os.environ.get("LISALIB_PROFILE", "tiny"),
                         metadata={"help": "tiny (offline, CPU) or real (hub models)", "choices": ["tiny", "real"]})
    timeout: int = field(default=900, metadata={"help": "seconds allowed per cell"})
    json: bool = field(default=False, metadata={"help": "print the summary as JSON"})


def main(argv: list[str] | None = None) -> int:
    (args,) = dataclass_parser(MainJobArgs, "python -m lisalib.notebook", __doc__).parse_args_into_dataclasses(argv)

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
