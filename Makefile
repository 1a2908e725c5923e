# Two entry points, both self-contained on a fresh machine (they create .venv on first use):
#   make main   execute the notebook sequence headless (tiny profile) -> outputs/summary.md
#   make test   unit tests + nbval over the notebooks
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: main test setup zoo clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

main: $(STAMP)
	LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.run_notebooks --out outputs

test: $(STAMP)
	LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m pytest

zoo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m lisalib.zoo build

clean:
	rm -rf outputs .pytest_cache
