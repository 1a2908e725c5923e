# Two entry points, both self-contained on a fresh machine (they create .venv on first use):
#   make main   execute the notebook sequence headless (tiny profile) -> outputs/summary.md
#   make test   unit tests + nbval over the notebooks
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

# chapter 3/4 checkpoints on top of the zoo: same recipe and budget for both designs (about 10 min each)
lisa: $(STAMP)
	for source in vlm dual; do \
	  OMP_NUM_THREADS=1 LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.lisa.train --profile tiny \
	    --vision_source $$source --use_lora --data data/reasonseg_synth --n_train 2000 --epochs 6 --batch_size 8 \
	    --lr 1e-3 --warmup_steps 50 --save_every 250 --output_dir runs/tiny-lisa-$$source \
	    --export_to lisalib/zoo/checkpoints/runs/tiny-lisa-$$source --no_progress --json || exit 1; \
	done

clean:
	rm -rf outputs .pytest_cache
