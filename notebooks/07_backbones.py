# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
#     provenance: []
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,accelerator,colab,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lisalib/lisalib-notebooks/blob/main/notebooks/07_backbones.ipynb)
#
# # 7. The Modified LISA on other VLM backbones
#
# Chapters 2-4 built the Modified LISA on LLaVA-1.5: SAM's mask decoder reads the VLM's own vision grid
# through `vision_to_sam`, and the `<SEG>` state prompts it through `seg_token_to_sam`. Design document 002
# wants the same on SmolVLM, Qwen2-VL and PaliGemma, plus a "traditional mode" that joins a separately
# pretrained CLIP and a text LLM. `lisalib.backbones` gives each family one small adapter behind one
# interface; this chapter puts the four vision pipelines side by side, counts and sizes them at real size,
# checks 002's figures, and compares the Modified LISA trained on two families at tiny size: VLM mode on
# `tiny-llava` and the traditional mode on the zoo's `tiny-siglip` + `tiny-lm`.

# %%
# Colab setup: install only what is missing; Colab's own torch is never replaced.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("lisalib") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "lisalib @ git+https://github.com/lisalib/lisalib-notebooks@main"])

# %%
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from lisalib import get_profile
profile = get_profile()
print(profile.name)

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from lisalib.accounting import count_parameters, memory_table
from lisalib.accounting.registry import GiB, load_config
from lisalib.backbones import adapter_for
from lisalib.backbones.check import run_check
from lisalib.backbones.claims import measure_claims, traditional_meta
from lisalib.backbones.compare import HEADERS as COMPARE_HEADERS, RUNS, compare, compare_rows, loss_curve, \
    training_facts
from lisalib.backbones.smolvlm import SmolVlmAdapter
from lisalib.backbones.traditional import ZOO_PAIR
from lisalib.cli import format_table
from lisalib.lisa.ceiling import mask_path_ceiling
from lisalib.lisa.evaluate import open_split
from lisalib.notebook.report import record
from lisalib.reasonseg.synth import write_split

# %% [markdown]
# ## The four vision pipelines, side by side (real configs, no download)
#
# "The vision grid" is what `vision_to_sam` lays out for SAM's 64 x 64 decoder input. It is not the same
# thing in every family: LLaVA and PaliGemma give the LLM one token per patch, so grid and tokens coincide;
# SmolVLM's pixel shuffle folds 3 x 3 patches into one token (the grid is read before the fold, and with
# image splitting the crops' grids are stitched into a finer one); Qwen2-VL's merger folds 2 x 2 patches,
# and its processor stores patches merge-window by merge-window, so the adapter restores raster order.

# %%
# NBVAL_CHECK_OUTPUT
REAL = {"llava": "llava-1.5-7b", "smolvlm": "smolvlm-instruct", "qwen2_vl": "qwen2-vl-2b-instruct",
        "paligemma": "paligemma-3b-pt-224"}
rows = []
for family, name in REAL.items():
    adapter = adapter_for(load_config(name))
    rows.append((family, name, f"{adapter.vision_grid()[0]} x {adapter.vision_grid()[1]}", adapter.vision_dim,
                 adapter.image_tokens(), adapter.text_dim, adapter.connector))
split = SmolVlmAdapter(load_config("smolvlm-instruct"), crops_per_side=4)  # SmolVLM's 1536 px: 4 x 4 crops
rows.append(("smolvlm (split)", "smolvlm-instruct", f"{split.vision_grid()[0]} x {split.vision_grid()[1]}",
             split.vision_dim, split.image_tokens(), split.text_dim, "4 x 4 crops + global view"))
print(format_table(rows, ("family", "config", "vision grid", "grid width", "LLM tokens / image", "LLM width",
                          "connector")))

# %% [markdown]
# ## Parameters and weight memory at real size: which fit on an 8 GB GPU?
#
# Counts are the real classes built on the `meta` device; memory is chapter 1's `memory_table` (every
# weight in the format's storage, NF4's absmax statistics included). Weights are a floor: training adds
# activations, and gradients plus AdamW state for what trains. SAM ViT-B (another 0.19 GB in bf16) is
# not in these rows. The traditional row is 002's pair, CLIP ViT-B/16's vision tower + Qwen3-0.6B-Base
# with a new projector.

# %%
# NBVAL_CHECK_OUTPUT
rows = []
for family, name in REAL.items():
    total = count_parameters(name).total
    table = memory_table(name, formats=("bf16", "nf4"))["total"]
    rows.append((family, f"{total:,}", f"{table['bf16'] / GiB:.2f}", f"{table['nf4'] / GiB:.2f}",
                 "yes" if table["bf16"] < 8 * GiB else ("in NF4" if table["nf4"] < 8 * GiB else "no")))
vision, llm, composite = traditional_meta()
traditional_total = sum(p.numel() for p in composite.parameters())
rows.append(("traditional", f"{traditional_total:,}", f"{2 * traditional_total / GiB:.2f}", "-",
             "yes" if 2 * traditional_total < 8 * GiB else "no"))
print(format_table(rows, ("family", "parameters", "bf16 GiB", "NF4 GiB", "weights fit 8 GB?")))
record("traditional_parameters", traditional_total)

# %% [markdown]
# ## 002's figures, measured
#
# Each printout and table entry of 002, next to what the real classes give (LoRA r = 16 on q_proj / v_proj
# of the language model through peft, as training injects it; memory as weights only).

# %%
# NBVAL_CHECK_OUTPUT
claims = measure_claims()
print(format_table([(c["claim"], c["claimed"], c["measured"], "holds" if c["holds"] else "FAILS")
                    for c in claims["claims"]], ("002 says", "claimed", "measured", "")))
print(f"{claims['held']} of {claims['of']} hold")
record("claims_held", claims["held"])

# %% [markdown]
# What the table shows: 002's trainable count for LLaVA-1.5-7B (8,388,608) is exactly LoRA r = 16 on the
# 32 layers' q_proj and v_proj, but its "all params" is not LLaVA-1.5-7B plus those adapters (that is
# 7,071,815,680), nor the whole Modified LISA. Its traditional printout cannot come from the pair it
# names: Qwen3-0.6B is 1,024 wide, not 2,048, and the pair has 0.69B parameters with 4.7M LoRA weights,
# not 1.44B and 27.3M. Its LLaVA memory rows hold as weight memory (28.3 / 14.1 / 7.3 / 4.0 GB); SmolVLM's
# and Qwen2-VL-2B's bf16 rows are above their weights (4.5 and 4.4 GB), a margin for activations that 002
# does not give for the others.

# %% [markdown]
# ## One end-to-end test for every family (tiny, offline)
#
# Each family's tiny member (the zoo's pretrained `tiny-llava`; for the traditional mode the zoo's pretrained
# `tiny-siglip` and `tiny-lm` joined by a new projector; seeded random-weight members of the others, built in
# code with each family's real classes and processors) trains the Modified LISA (`vision_source
# = "vlm"`, LoRA) for 4 steps, segments teacher-forced and by generation with one vision pass, and
# survives a merge + `save_pretrained` / `from_pretrained` round trip with identical masks. The gIoU here is
# a smoke figure from 4 steps, not a result.

# %%
check = run_check()
print(format_table([(name, "ok" if e["ok"] else "FAIL", e["segment"]["vision_grid"], e["segment"]["image_tokens"],
                     e["segment"]["vision_passes"], e["round_trip"]["reload_max_abs_diff"],
                     e["train"]["seconds_per_step"], e["train"]["trainable"])
                    for name, e in check["families"].items()],
                   ("family", "check", "grid", "image tokens", "vision passes", "reload diff", "s / step",
                    "trainable")))
assert check["ok"]
record("families_ok", sum(e["ok"] for e in check["families"].values()))

# %% [markdown]
# ## Traditional mode vs VLM mode
#
# 002's comparison table, measured where it can be: at real size the traditional pair is the smallest model
# of the five (rows above), so its memory is the lowest. At tiny size the traditional member is built from
# the zoo's pretrained parts -- `tiny-siglip`'s vision tower (a SigLIP: no CLS token, features of layer -2,
# 64 wide) and `tiny-lm` (96 wide) -- so it is smaller than `tiny-llava` (CLIP 128 wide, LLaMA 192 wide),
# and the step times above compare two models of different size, measured side by side in one run. What
# the traditional mode lacks is not parameters but alignment: its image -> text projector starts from
# random (it trains in the `projections` group), where a VLM's projector was aligned on image-text pairs.

# %% [markdown]
# ## Two families trained under one recipe
#
# The result of this chapter: the Modified LISA trained on two families with the same recipe and budget as
# chapter 4's ladder -- 4,000 steps of 8 samples from the same 10,000 training samples, point route, LoRA,
# seed 0, one CPU thread -- and shipped with the package:
#
# - `tiny-lisa-vlm-point`: VLM mode on the zoo's `tiny-llava` (`make lisa-ladder`);
# - `tiny-lisa-traditional-point`: traditional mode, `--vlm_name traditional:tiny-siglip+tiny-lm`, the zoo's
#   pretrained SigLIP and LM assembled on the fly with a new projector (`make backbones`).
#
# Both are scored here, teacher-forced, on chapter 4's unseen validation seed 7 (200 samples), next to the
# three query-blind masks (masks that never read the question) on the same samples, with 95% intervals.
# `python -m lisalib.backbones compare --data data/reasonseg_val7` prints the same table.

# %%
facts = {family: training_facts(run) for family, run in RUNS.items()}
print(format_table([(family, run, f["vlm"], f["steps"], f["samples"], f["batch_size"], f["seg_prompt"],
                     f["trainable_total"], f["seconds_per_step"], f"{f['train_seconds'] / 60:.1f}")
                    for (family, run), f in zip(RUNS.items(), facts.values())],
                   ("family", "run", "--vlm_name", "steps", "samples", "batch", "route", "trainable",
                    "s / step (recorded)", "train min")))

# %%
# NBVAL_CHECK_OUTPUT
val_root = Path(tempfile.mkdtemp()) / "reasonseg_val7"
write_split(val_root, "val", 200, seed=7)  # = python -m lisalib.reasonseg.synth --out DIR --split val --n 200 --seed 7
val = open_split(val_root, "val")
result = compare([val[i] for i in range(len(val))], batch_size=profile.eval_batch_size)
print(format_table(compare_rows(result), COMPARE_HEADERS))
best = result["best_blind"]
for family, entry in result["models"].items():
    m = entry["scores"]
    print(f"{family}: gIoU {m['giou']:.3f} [{m['giou_low']:.3f}, {m['giou_high']:.3f}], {entry['margin']:+.3f} "
          f"against the best query-blind mask ({best['name']}, {best['giou']:.3f}); interval above the baseline's: "
          f"{entry['above_blind_interval']}")
    record(f"ch7 {family} 4000-step gIoU", round(m["giou"], 3), "", f"n={m['n']}, val seed 7")
record("ch7 best query-blind gIoU", round(best["giou"], 3), "", f"n={best['n']}, val seed 7")
print()
print(format_table([(family, e["clicks"]["on_target"], e["clicks"]["short_on_target"], e["clicks"]["long_on_target"],
                     e["clicks"]["on_a_shape"], e["clicks"]["n"]) for family, e in result["models"].items()],
                   ("family", "click on the asked shape", "short queries", "long queries", "click on some shape", "n")))

# %% [markdown]
# Reading it: VLM mode learnt the task and the traditional mode did not. `tiny-lisa-vlm-point` is
# above the best query-blind mask by the margin printed above (its interval's low end sits just below the
# baseline's high end, so at n = 200 the two intervals overlap a little); `tiny-lisa-traditional-point`, trained
# with the same recipe, budget, data and seed, is **below every query-blind baseline**: as a segmenter it has
# taught nothing, and it is not a result about the traditional mode's quality, only about what 4,000 steps
# buy it. The click table says why. The traditional run's clicks land on *some* shape almost every time
# (at least as often as tiny-llava's), but on the shape the question asks for about half as often as
# tiny-llava's, and for short queries ("the red circle") hardly more often than for long ones. So the new
# projector has learnt where the objects are, and the language side has not learnt which one the question
# names. The mask path is not what fails: given the target's centre as the click, the traditional pair's
# grid reaches a gIoU a little below tiny-llava's (next cells), far above what its run reached.

# %%
# NBVAL_CHECK_OUTPUT
ceiling_root = Path(tempfile.mkdtemp()) / "reasonseg_ceiling"
write_split(ceiling_root, "train", profile.ceiling_samples, seed=1)  # chapter 4's ceiling split
ceiling_train = open_split(ceiling_root, "train")
ceiling = mask_path_ceiling("vlm", [ceiling_train[i] for i in range(len(ceiling_train))],
                            [val[i] for i in range(len(val))], "point", vlm=ZOO_PAIR,
                            steps=profile.ceiling_steps, progress=False)
print(f"traditional pair, a click at the target's centre ({ceiling['n_train']} training samples, "
      f"{ceiling['steps']} steps): gIoU {ceiling['giou']:.3f} [{ceiling['giou_low']:.3f}, {ceiling['giou_high']:.3f}]")
record("ch7 traditional centre-click ceiling gIoU", round(ceiling["giou"], 3), "", f"n={ceiling['n']}")

# %% [markdown]
# tiny-llava's mask path under the same centre click, steps and samples is chapter 4's ladder row "centre
# click (ceiling)": 0.715 on this split (`python -m lisalib.lisa.ladder --data data/reasonseg_val7`, or
# `python -m lisalib.lisa.ceiling --vision_source vlm --prompt point --vlm_name tiny-llava --n_train 400
# --steps 500` on a root holding this train and val split). Both mask paths can segment a shape once told
# where it is; what separates the two runs is the click.

# %%
KEYS = ("loss", "ce", "dice", "location")
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
for ax, key in zip(axes, KEYS):
    for family, run in RUNS.items():
        steps, values = loss_curve(run, key)
        ax.plot(steps, values, label=family)
    ax.set_title(f"{key} (running mean of 100 steps)")
    ax.set_xlabel("step")
axes[0].legend()
plt.tight_layout()
plt.show()
curves = {family: {key: loss_curve(run, key)[1] for key in KEYS} for family, run in RUNS.items()}
at = {family: {key: loss_curve(run, key)[0] for key in KEYS} for family, run in RUNS.items()}
rows = []
for family, c in curves.items():
    steps = at[family]["loss"]
    marks = [i for i, step in enumerate(steps) if step in (100, 1000, 4000)]
    rows.append((family, *(" -> ".join(f"{c[key][i]:.3f}" for i in marks) for key in KEYS)))
print("running means at steps 100 -> 1,000 -> 4,000")
print(format_table(rows, ("family", *KEYS)))

# %% [markdown]
# The curves say the same. The two runs start alike and stay close for the first thousand steps; after that
# tiny-llava's Dice and click L1 (`location`) keep falling while the traditional pair's fall far less (the
# running means printed above). Its CE (the answer's tokens) is higher from step 1,000 on, which may be the
# word-level tiny-lm's tokenization of the answers as much as anything (it splits off a bare `▁` before
# `<SEG>`). tiny-llava's LLM arrived knowing which image tokens a phrase refers to -- its pretraining answered
# questions about these scenes and wrote referring boxes -- so the point route only had to read that out. The
# traditional pair (a SigLIP and an LM that never saw an image) has to learn that binding through a new
# projector and LoRA r = 8 on a 4-layer, 96-wide LM, and in this budget it does not: that is, in part, what "alignment"
# buys in 002's comparison, measured. It is not LoRA's small capacity: training the whole LM instead (2,000
# steps) leaves the click where it is, and the SigLIP grid (64 px, half tiny-llava's view) also carries less
# of a shape's name to SAM's decoder than tiny-llava's CLIP grid, so the vision side shares the blame (both in
# docs/results.md, "Backbones", with their commands). The recorded step times are close (0.13 and 0.14 s of 8
# samples), but they were measured in separate runs on a shared CPU; the side-by-side figure is the check's,
# where both ran in one process (the `s / step` column above, 2 samples a step), and there the smaller
# traditional pair is faster.
