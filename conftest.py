"""Test-wide settings (unit tests and nbval): offline, tiny profile, no progress bars, headless plots.

These are set before any kernel starts, so nbval's notebook kernels inherit them too.
"""
import os

import pytest

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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Unit tests run tiny tensors: a second thread gains nothing, and on a busy 2-core machine its OpenMP
    barriers cost up to 50x. torch's setting is restored after each module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
