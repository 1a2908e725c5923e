"""Notebook hygiene: pairs exist, Colab badges point at their own file, the first cell is Colab-safe."""
import json
import re
from pathlib import Path

import pytest

from lisalib import BRANCH, REPO_SLUG

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks():
    assert PAIRS, "no notebooks/NN_*.py found"


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_pair_exists_and_badge_points_at_itself(script):
    notebook = script.with_suffix(".ipynb")
    assert notebook.is_file(), f"{notebook.name} missing: run jupytext --sync {script.name}"
    cells = json.loads(notebook.read_text())["cells"]
    first = "".join(cells[0]["source"])
    expected = f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/notebooks/{notebook.name}"
    assert expected in first, f"the first cell's Colab badge should link to {expected}"


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_setup_cell_never_replaces_colab_torch(script):
    notebook = script.with_suffix(".ipynb")
    code = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    assert '"google.colab" in sys.modules' in setup
    assert not re.search(r"pip.*install[^\n]*\btorch\b", setup), "the Colab cell must not (re)install torch"


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_key_figures_are_checked(script):
    assert "# NBVAL_CHECK_OUTPUT" in script.read_text(), "key figures belong in NBVAL_CHECK_OUTPUT cells"


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_committed_notebook_was_executed(script):
    code = [c for c in json.loads(script.with_suffix(".ipynb").read_text())["cells"]
            if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c.get("execution_count") for c in code), "execute the notebook before committing"
