"""Fixtures shared by the training and evaluation tests."""
from __future__ import annotations

import pytest

from lisalib.reasonseg.synth import write_split


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """A small synthetic ReasonSeg root: 12 training and 6 validation samples (seconds to write)."""
    root = tmp_path_factory.mktemp("reasonseg_synth")
    write_split(root, "train", 12, seed=0)
    write_split(root, "val", 6, seed=0)
    return root


@pytest.fixture(scope="session")
def miniatures_dir(tmp_path_factory):
    """The real profile's random-weight miniatures (``lisalib.zoo.miniatures.build``), built once per session
    for every test that runs the real code paths (chapters 0-4 and chapter 6)."""
    from lisalib.zoo.miniatures import build

    out = tmp_path_factory.mktemp("miniatures")
    build(out)
    return out
