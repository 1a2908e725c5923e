# Two entry points, both self-contained on a fresh machine (they create .venv on first use):
#   make main   execute the notebook sequence headless (tiny profile) -> outputs/summary.md
#   make test   unit tests + nbval over the notebooks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: main test setup zoo lisa clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

main: $(STAMP)
	LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.notebook --notebooks notebooks --out outputs

test: $(STAMP)
	LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m pytest

zoo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m lisalib.zoo build

# chapter 3/4 checkpoints on top of the zoo: the same recipe and budget for both designs and for each
# <SEG> prompt of chapter 4's ladder; LISA_PROMPT's runs ship as tiny-lisa-<design>, the others as
# tiny-lisa-<design>-<prompt>. Two runs at a time, one thread each.
LISA_PROMPT ?= point
LISA_STEPS ?= 4000
LISA_RECIPE = --profile tiny --use_lora --data data/reasonseg_train --n_train 10000 --epochs 4 --max_steps $(LISA_STEPS) \
	--batch_size 8 --lr 1e-3 --warmup_steps 50 --save_every 500 --no_progress --json
lisa: $(STAMP)
	mkdir -p runs
	for prompt in $(LISA_PROMPT) $(filter-out $(LISA_PROMPT),embedding point both); do \
	  for source in vlm dual; do \
	    name=tiny-lisa-$$source-$$prompt; [ $$prompt = $(LISA_PROMPT) ] && name=tiny-lisa-$$source; \
	    OMP_NUM_THREADS=1 LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.lisa.train $(LISA_RECIPE) \
	      --vision_source $$source --seg_prompt $$prompt --output_dir runs/$$name \
	      --export_to lisalib/zoo/checkpoints/runs/$$name > runs/$$name.json & \
	  done; \
	  wait -n && wait -n || exit 1; \
	done

clean:
	rm -rf outputs .pytest_cache
