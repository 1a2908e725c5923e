# Two entry points, both self-contained on a fresh machine (they create .venv on first use):
#   make main   execute the notebook sequence headless (tiny profile) -> outputs/summary.md
#   make test   unit tests + nbval over the notebooks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: main test smoke-real setup zoo lisa lisa-ship lisa-ladder backbones shirg caption clean

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

# every notebook in the real profile against random-weight miniatures of its hub models (cached in
# .cache/miniatures): the real code paths on a CPU, smoke budgets, outputs not compared.
MINIATURES := .cache/miniatures
smoke-real: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 $(PY) -m lisalib.zoo.miniatures --out $(MINIATURES)
	rm -rf .cache/smoke-runs
	LISALIB_HUB_MAP=$(CURDIR)/$(MINIATURES) LISALIB_RUNS=$(CURDIR)/.cache/smoke-runs HF_HUB_OFFLINE=1 \
	  $(PY) -m lisalib.notebook --profile real --notebooks notebooks --out outputs/smoke-real

zoo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m lisalib.zoo build

# chapter 3/4 checkpoints on top of the zoo, one thread per run, two runs at a time.
# make lisa-ship: the shipped tiny-lisa-<design> (point route), LISA_SHIP_STEPS steps on 40,000 samples.
# make lisa-ladder: chapter 4's same-budget comparison, LISA_STEPS steps on 10,000 samples for each <SEG>
#   prompt, shipped as tiny-lisa-<design>-<prompt>. make lisa: both. The data is synthesised when missing.
LISA_STEPS ?= 4000
LISA_SHIP_STEPS ?= 19000
LISA_COMMON = --profile tiny --use_lora --epochs 4 --batch_size 8 --lr 1e-3 --warmup_steps 50 --save_every 500 \
	--no_progress --json
LISA_RUN = OMP_NUM_THREADS=1 LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.lisa.train $(LISA_COMMON)
lisa: lisa-ship lisa-ladder
lisa-ship: $(STAMP)
	mkdir -p runs
	for source in vlm dual; do \
	  $(LISA_RUN) --data data/reasonseg_train40k --n_train 40000 --max_steps $(LISA_SHIP_STEPS) \
	    --vision_source $$source --seg_prompt point --output_dir runs/tiny-lisa-$$source \
	    --export_to lisalib/zoo/checkpoints/runs/tiny-lisa-$$source > runs/tiny-lisa-$$source.json & \
	done; \
	wait -n && wait -n
lisa-ladder: $(STAMP)
	mkdir -p runs
	for prompt in embedding point both; do \
	  for source in vlm dual; do \
	    name=tiny-lisa-$$source-$$prompt; \
	    $(LISA_RUN) --data data/reasonseg_train --n_train 10000 --max_steps $(LISA_STEPS) \
	      --vision_source $$source --seg_prompt $$prompt --output_dir runs/$$name \
	      --export_to lisalib/zoo/checkpoints/runs/$$name > runs/$$name.json & \
	  done; \
	  wait -n && wait -n || exit 1; \
	done

# chapter 7's traditional mode: the zoo's pretrained tiny-siglip + tiny-lm joined by a new projector, trained with
# the ladder's vlm-point recipe (same data, budget and seed), shipped as tiny-lisa-traditional-point
backbones: $(STAMP)
	mkdir -p runs
	$(LISA_RUN) --data data/reasonseg_train --n_train 10000 --max_steps $(LISA_STEPS) \
	  --vlm_name traditional:tiny-siglip+tiny-lm --vision_source vlm --seg_prompt point \
	  --output_dir runs/tiny-lisa-traditional-point \
	  --export_to lisalib/zoo/checkpoints/runs/tiny-lisa-traditional-point > runs/tiny-lisa-traditional-point.json

# chapter 5's tiny-lavida (the tower's detail stage, the pooled stage, then the projector LoRA on text-selected
# tokens), one thread, about 41 min
shirg: $(STAMP)
	mkdir -p runs
	OMP_NUM_THREADS=1 LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.shirg train --json > runs/tiny-lavida.json

clean:
	rm -rf outputs .pytest_cache

# chapter 6's captioners: four variants x three seeds under one protocol, one thread; seed 0 is shipped as
# lisalib/zoo/checkpoints/runs/tiny-caption-<variant>, every seed's scores go to runs/caption/sweep.json
caption: $(STAMP)
	mkdir -p runs/caption
	OMP_NUM_THREADS=1 LISALIB_PROFILE=tiny HF_HUB_OFFLINE=1 $(PY) -m lisalib.captioning train --seeds 0,1,2 --export \
	  --no_progress --json > runs/caption/train.json
