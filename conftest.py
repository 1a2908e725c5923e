"""Test-wide settings (unit tests and nbval): offline, tiny profile, no progress bars, headless plots.

These are set before any kernel starts, so nbval's notebook kernels inherit them too.
"""
import os

os.environ.setdefault("LISALIB_PROFILE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def pytest_collectstart(collector):
    """nbval: compare only stdout/results of NBVAL_CHECK_OUTPUT cells, never stderr (warnings vary)."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/vnd.jupyter.widget-view+json")
