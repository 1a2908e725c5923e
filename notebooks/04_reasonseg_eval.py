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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lisalib/lisalib-notebooks/blob/main/notebooks/04_reasonseg_eval.ipynb)
#
# # 4. ReasonSeg evaluation: gIoU, cIoU, a ladder of baselines and a look at the masks
#
# LISA is judged on ReasonSeg with two numbers (`lisalib.reasonseg.metrics`, reference notes §3):
#
# * **gIoU**: the mean of per-sample IoUs -- every sample counts the same;
# * **cIoU**: total intersection over total union -- large objects dominate.
#
# Pixels marked *ignore* (255) are removed first, and a sample whose prediction and target are both
# empty scores 1.0. We evaluate the models trained in chapter 3 on the synthetic validation split, which
# is written in ReasonSeg's own format (PNG + LabelMe JSON, read by the same reader as the real dataset),
# under two protocols:
#
# * **teacher-forced** (LISA's `validate()`): the answer `"<SEG>."` is given; the mask path alone is judged;
# * **generate**: the model writes its own answer; no `<SEG>` in it means an empty mask.
#
# A number means little alone. Every model here stands next to masks that need no learning at all (the
# *query-blind baselines*) and next to a click at the right place (the *ceiling*).

# %%
# Colab setup: install only what is missing; Colab's own torch is never replaced.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("lisalib") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "bitsandbytes",
                           "lisalib @ git+https://github.com/lisalib/lisalib-notebooks@main"])

# %%
from lisalib import get_profile
profile = get_profile()
print(profile.name)

# %%
# %matplotlib inline
from pathlib import Path

import gc

import matplotlib.pyplot as plt
import numpy as np
import torch
from transformers.utils import logging as hf_logging

from lisalib.lisa.evaluate import breakdown, evaluate, load_trained, open_split, results_table
from lisalib.lisa.train import ensure_train_split, notebook_args, train
from lisalib.lisa.ladder import ladder_rows, ladder_table, run_label, shipped_runs
from lisalib.notebook.report import record
from lisalib.notebook.viz import plot_prediction
from lisalib.reasonseg.baselines import query_blind_scores
from lisalib.reasonseg.dataset import chapter_data, eval_answer, user_query
from lisalib.reasonseg.synth import write_split

hf_logging.disable_progress_bar()
plt.rcParams["figure.dpi"] = 72
torch.manual_seed(0)
if profile.name == "tiny":
    torch.set_num_threads(1)  # tiny tensors: one thread is as fast, and a busy CPU cannot oversubscribe it

# %% [markdown]
# ## Data and models
#
# The validation split: 200 samples (ReasonSeg's val has 200 too), about half short referring phrases,
# half long queries that need reasoning, drawn from scenes no training run saw. On the tiny profile the
# checkpoints are the ones shipped with the package (chapter 3 says how they were trained; the command is
# in each `run.json`): per design the chosen route, `tiny-lisa-vlm` and `tiny-lisa-dual` (the point route,
# 19,000 steps), and the ladder's companions, one per `<SEG>` prompt under one smaller budget (4,000 steps).
# On the real profile they are chapter 3's runs, trained here if this session has none.

# %%
DATA, REAL_DATA = chapter_data("val")  # LISALIB_REASONSEG: LISA's ReasonSeg release or a hub copy
DATA_TRAIN, _ = chapter_data("train")
if not REAL_DATA and not (DATA / "val").is_dir():
    write_split(DATA, "val", 200, seed=0)
val = open_split(DATA, "val")
N = min(len(val), profile.eval_samples)
val_items = [val[i] for i in range(N)]
DESIGNS = ("vlm", "dual")
if profile.name == "tiny":
    CHECKPOINTS = {"vlm": "tiny-lisa-vlm", "dual": "tiny-lisa-dual"}
    LADDER = {design: shipped_runs(design) for design in DESIGNS}
else:  # chapter 3's runs; in a fresh session (or another VM) the same recipe trains them here, resumably
    CHECKPOINTS = {}
    for design in DESIGNS:
        args = notebook_args(profile, design, DATA_TRAIN)
        if DATA_TRAIN == Path("data/reasonseg_synth"):
            ensure_train_split(DATA_TRAIN, n=2000, seed=0)
        train(args)  # a finished run is returned as it is; an interrupted one continues
        CHECKPOINTS[design] = args.output_dir
        gc.collect()
    LADDER = {design: {run_label(run) + " (chapter 3)": run} for design, run in CHECKPOINTS.items()}
SYNTHETIC = not REAL_DATA
SOURCE = "ReasonSeg (real)" if REAL_DATA else "synthetic shapes world"
print(f"{len(val)} validation samples of {SOURCE} ({DATA}), evaluating {N}")
for design, runs in LADDER.items():
    for label, run in runs.items():
        print(f"{design:5s} {run:26s} {label}")

# %%
def free():
    """Collect dropped models between sections: on a T4 two 7B models fit, six do not."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


results, chosen_prompt = {}, {}
for design, checkpoint in CHECKPOINTS.items():
    model = load_trained(checkpoint)
    chosen_prompt[design] = model.config.seg_prompt
    results[design] = evaluate(model, val_items, keep_predictions=True, progress=False,
                               batch_size=profile.eval_batch_size)
    del model
    free()
companions = {design: {} for design in DESIGNS}
for design in DESIGNS:
    for label, run in LADDER[design].items():
        if run != CHECKPOINTS[design]:
            model = load_trained(run)
            companions[design][label] = evaluate(model, val_items, protocols=("teacher_forced",), progress=False,
                                                 batch_size=profile.eval_batch_size)
            del model
            free()
print("chosen <SEG> prompt:", chosen_prompt)

# %% [markdown]
# ## The table
#
# Next to the two models, three **query-blind baselines** on the same samples: masks chosen without reading
# the query (every shape in the scene, the largest shape, one shape at random), rebuilt from each synthetic
# scene's seed (`lisalib.reasonseg.baselines`). A model at or below them has not used the query at all.

# %%
# NBVAL_CHECK_OUTPUT
baselines = query_blind_scores(val_items)
print(f"{SOURCE}, {N} samples")
print(results_table(results, baselines=baselines))
best_blind = max(m["giou"] for m in baselines.values())
for name, m in baselines.items():
    record(f"ch4 query-blind {name} gIoU", round(m["giou"], 3), "", f"n={m['n']}")
for design, result in results.items():
    tf, gen = result["protocols"]["teacher_forced"], result["protocols"]["generate"]
    print(f"{design}: gIoU {tf['giou']:.3f} teacher-forced, {tf['giou'] - best_blind:+.3f} against the best "
          f"query-blind baseline ({best_blind:.3f}); generation wrote <SEG> in {gen['seg_rate']:.1%} of answers, "
          f"generated minus teacher-forced gIoU {gen['giou'] - tf['giou']:+.3f}; cIoU {'above' if tf['ciou'] > tf['giou'] else 'below'} gIoU")
    for protocol, m in result["protocols"].items():
        record(f"ch4 {design} {protocol} gIoU", round(m["giou"], 3), "", f"n={m['n']}")
        record(f"ch4 {design} {protocol} cIoU", round(m["ciou"], 3), "", f"n={m['n']}")

# %% [markdown]
# Reading it: both models clear every query-blind baseline, the `dual` model by about a third of the scale
# and the single-pass `vlm` model by about half as much (the margins printed above). This split is the one
# the recipe choices were made on; on two val seeds no choice was tuned on (seeds 7 and 11: `python -m
# lisalib.reasonseg.synth --out DIR --split val --n 200 --seed 7`, then `python -m lisalib.lisa.ladder --data
# DIR`) the shipped runs score a little higher (dual 0.81 and 0.83, vlm 0.63 and 0.62: docs/results.md). Generation wrote `<SEG>` in every answer, so the two protocols
# differ only by the hidden state a generated answer ("Sure, it is `<SEG>`.") leads to instead of the forced
# `"<SEG>."`: the generated answers score slightly higher, by the small amounts printed above. cIoU is below
# gIoU for both models: pooled over pixels the misses weigh more than averaged over samples, since a miss on
# a large target costs many pixels. LISA's own route ends below every baseline: the ladder below.

# %% [markdown]
# ## The measurement ladder
#
# One rung per way of prompting SAM's mask decoder, from "never reads the query" to "told exactly where":
#
# - **query-blind** baselines (above);
# - **frozen LM state**: the untrained VLM's `<SEG>` state for LISA's `"<SEG>."` answer, through a fresh
#   projection trained together with the decoder (`lisalib.lisa.ceiling`): what the language side offers
#   before any LoRA;
# - **trained**: LISA's `<SEG>` embedding (one learned prompt token), the **point route** (chapter 3: the
#   `<SEG>` state points at one of the image tokens, and the click goes through SAM's own prompt encoder),
#   and both together;
# - **centre click**: a click on the target pixel farthest from the background, through SAM's prompt
#   encoder, with the decoder trained for it (`lisalib.lisa.ceiling`): the most the design's mask path
#   gives.
#
# The two `lisalib.lisa.ceiling` rungs train a fresh mask path here with the profile's `ceiling_samples`
# training samples and `ceiling_steps` steps (400 and 500 on the tiny profile; `python -m
# lisalib.lisa.ladder --data DIR` measures the whole ladder, and with another `--data` another val seed).

# %%
from lisalib.lisa.ceiling import mask_path_ceiling
from lisalib.reasonseg.dataset import ReasonSegDataset

CEILING_DATA = Path("data/reasonseg_ceiling")  # its own small train split, so chapter 3's stays as it is
if not (CEILING_DATA / "train").is_dir():
    write_split(CEILING_DATA, "train", profile.ceiling_samples, seed=1)
ceiling_train = ReasonSegDataset(CEILING_DATA, "train")
ceilings = {design: {prompt: mask_path_ceiling(design, ceiling_train, val_items, prompt, vlm=profile.vlm,
                                               sam=profile.sam, steps=profile.ceiling_steps, progress=False,
                                               chunk=profile.encode_chunk, dtype=profile.dtype,
                                               load_in_4bit=profile.load_in_4bit, device=profile.device)
                     for prompt in ("lm_state", "point")} for design in DESIGNS}

# %%
# NBVAL_CHECK_OUTPUT
ladder = {}
for design in DESIGNS:
    trained = {label: results[design] if run == CHECKPOINTS[design] else companions[design][label]
               for label, run in LADDER[design].items()}
    ladder[design] = ladder_rows(design, baselines, trained, ceilings[design])
print(f"{SOURCE}, {N} samples")
print(ladder_table([row for rows in ladder.values() for row in rows]))
for design in DESIGNS:
    chosen = [row for row in ladder[design] if row[1].startswith("trained") and row[1].endswith(")")][-1:]
    ceiling = [row for row in ladder[design] if row[1].startswith("centre click")]
    if chosen and ceiling:
        print(f"{design}: {chosen[0][1].removeprefix('trained: ')} reaches {chosen[0][2] / ceiling[0][2]:.0%} "
              "of the centre click's gIoU")
for design in DESIGNS:
    for row in ladder[design]:
        if row[1].startswith(("frozen", "trained", "centre")):
            record(f"ch4 {design} {row[1]} gIoU", round(row[2], 3), "", f"n={row[-1]}")
    point = results[design]["protocols"]["teacher_forced"].get("point")
    if point:
        record(f"ch4 {design} predicted click inside the target", round(point["inside_rate"], 3), "",
               f"median error {point['median_error_px']:.1f} px")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
for ax, design in zip(axes, DESIGNS):
    rows = ladder[design]
    labels = [row[1].replace("query-blind: ", "blind: ").replace("trained: ", "") for row in rows]
    values = [row[2] for row in rows]
    colours = ["tab:grey" if l.startswith("blind") else "tab:green" if "click" in l else
               "tab:purple" if "frozen" in l else "tab:blue" for l in labels]
    ax.barh(range(len(rows)), values, color=colours)
    ax.axvline(best_blind, color="tab:grey", ls=":", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("gIoU (teacher-forced)")
    ax.set_title(f"{design}", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# Reading the ladder: the first three trained rungs share one recipe and budget (4,000 steps x 8 = 32,000
# samples drawn from 10,000 distinct ones, `make lisa-ladder`); the shipped point-route runs had 4.75 times
# the steps and four times the data (`make lisa-ship`).
#
# - **LISA's route** (one learned prompt token) ends *below* the frozen LM's state and below every
#   query-blind mask, on both designs. Through mask losses alone, 32,000 samples teach neither the decoder a
#   new prompt language nor the LLM to say which shape; LISA's schedule gives it 800,000 (10 epochs x 500
#   steps x batch 2 x 10 accumulation x 8 GPUs) and a 7B LLM.
# - **The point route** clears the blind masks by the most: the `<SEG>` state points at an image token (on
#   `vlm` at 4,000 steps its interval still touches the random mask's; at 19,000 it is clear), and its click lands inside the target in about three samples of four at 4,000 steps and
#   in more at 19,000 (the "point inside" column), a median of about 6 px from the inside-centre. The
#   shipped runs reach the share of their design's ceiling printed under the table; what is left is mostly
#   the clicks on a wrong shape, each costing its whole sample.
# - **Both together** is worse than the click alone on both designs, and its click lands inside less
#   often: LISA's token does not add what the click lacks.
# - **The ceilings** differ by design: a perfect click gives 0.93 on `dual` (SAM's own 16 x 16 embedding)
#   but 0.73 on `vlm`, whose decoder reads CLIP's coarse 8 x 8 grid (16 px patches) through `vision_to_sam`.
#   The single pass saves an encoder and pays in mask quality; with clicks slightly worse (the "point
#   inside" column), the shipped `vlm` model still reaches the same share of its lower ceiling.
#
# What a small model needs instead of LISA's schedule, then, is a prompt SAM already understands and a
# location target that the ground-truth mask gives for free.

# %% [markdown]
# ## By number of shapes in the scene
#
# A query-blind mask does well on a scene with one shape and badly on one with six; a model that reads
# the query should not. Each row: how many val samples have that many shapes, the gIoU and its 95%
# interval (normal approximation, `lisalib.reasonseg.metrics.mean_interval`). (Synthetic data only: real
# ReasonSeg has no list of objects.)

# %%
# NBVAL_CHECK_OUTPUT
if SYNTHETIC:  # scene counts and scene baselines exist for the shapes world only
    from lisalib.reasonseg.baselines import query_blind_masks
    from lisalib.reasonseg.metrics import mean_interval, sample_iou

    blind_ious = {name: [] for name in baselines}
    for item in val_items:
        for name, mask in query_blind_masks(item).items():
            blind_ious[name].append(sample_iou(mask, item["mask"]))
    shapes_of = [record_["n_shapes"] for record_ in results["dual"]["samples"]]
    by_shapes = {design: breakdown(results[design]["samples"], key="n_shapes") for design in DESIGNS}
    print(f"{'shapes':>6}{'n':>5}" + "".join(f"{d + ' gIoU [95%]':>24}" for d in DESIGNS) + f"{'best blind':>12}")
    for count in sorted(by_shapes["dual"], key=int):
        blind = max(np.mean([v for v, s in zip(ious, shapes_of) if str(s) == count]) for ious in blind_ious.values())
        cells = "".join(f"{by_shapes[d][count]['giou']:>8.3f} [{by_shapes[d][count]['low']:.2f}, {by_shapes[d][count]['high']:.2f}]"
                        .rjust(24) for d in DESIGNS)
        print(f"{count:>6}{by_shapes['dual'][count]['n']:>5}{cells}{blind:>12.3f}")
    crowded = [r["iou_teacher_forced"] for r in results["dual"]["samples"] if r["n_shapes"] >= 5]
    mean, low, high = mean_interval(crowded)
    print(f"dual on scenes with 5-6 shapes: gIoU {mean:.3f} [{low:.3f}, {high:.3f}], n = {len(crowded)}")
    record("ch4 dual gIoU on scenes with 5-6 shapes", round(mean, 3), "", f"n={len(crowded)}")

# %%
if SYNTHETIC:  # scene counts and scene baselines exist for the shapes world only
    fig, ax = plt.subplots(figsize=(7, 3.2))
    counts = sorted(by_shapes["dual"], key=int)
    for offset, design in ((-0.15, "vlm"), (0.15, "dual")):
        figures = [by_shapes[design][c] for c in counts]
        ax.errorbar(np.arange(len(counts)) + offset, [f["giou"] for f in figures],
                    yerr=[[f["giou"] - f["low"] for f in figures], [f["high"] - f["giou"] for f in figures]],
                    fmt="o", capsize=3, label=design)
    for name, ious in blind_ious.items():
        ax.plot(range(len(counts)), [np.mean([v for v, s in zip(ious, shapes_of) if str(s) == c]) for c in counts],
                ls=":", lw=1, label=f"blind: {name}")
    ax.set_xticks(range(len(counts)), [f"{c}\n(n={by_shapes['dual'][c]['n']})" for c in counts])
    ax.set_xlabel("shapes in the scene")
    ax.set_ylabel("gIoU")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=2)
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## By query type
#
# The synthetic set records which generator wrote each query (`referring` = short phrases; the rest are
# reasoning queries: `roll` "which shape would roll down a hill?", `most_corners`, `same_colour`,
# `closest`, ...).

# %%
# NBVAL_CHECK_OUTPUT
types = {design: breakdown(results[design]["samples"]) for design in DESIGNS}
print(f"{'query type':<16}{'n':>4}" + "".join(f"{d + ' gIoU [95%]':>24}" for d in DESIGNS))
for name in types["dual"]:
    cells = "".join(f"{types[d][name]['giou']:>8.3f} [{types[d][name]['low']:.2f}, {types[d][name]['high']:.2f}]".rjust(24)
                    for d in DESIGNS)
    print(f"{name:<16}{types['dual'][name]['n']:>4}{cells}")

# %% [markdown]
# With one shape any mask that covers something is right: the blind masks score 1.0 there, and both models
# fall short of them (the first row): what they lose there is mask quality, not the choice. From two
# shapes on the `dual` model stays above the best blind mask in every row, and on the 68 scenes with 5-6
# shapes it holds the gIoU printed above, where the blind masks are near a quarter to a third; the `vlm`
# model clears the best blind mask only from four shapes on (its intervals at two and three shapes
# straddle it).
#
# By query type, short referring phrases (n = 97) are among the best for both designs; of the reasoning
# queries, those about a shape's own kind (`roll`, `corners`) come close to them or above, while
# `same_colour`, which relates two shapes, stays far below for both (n = 8); the other relations
# (`closest`, `same_sides`) have too few samples to say anything (n = 4 and 2; with two samples even a
# narrow interval means nothing).
#
# ## Failure gallery
#
# The eight samples with the lowest teacher-forced IoU of the `dual` model across the whole split, with
# the full query, its type and the number of shapes: ground truth outlined in white, the prediction
# dashed in black, the predicted click as a cross (so neither hides the shapes' own colours).

# %%
samples = results["dual"]["samples"]
worst = sorted(range(len(samples)), key=lambda i: samples[i]["iou_teacher_forced"])[:8]
fig, axes = plt.subplots(2, 4, figsize=(13, 8))
for k, (ax, i) in enumerate(zip(axes.flat, worst)):
    record_ = samples[i]
    pred = record_["logits"].astype(np.float32) > 0
    title = f"{record_['query']}\n{record_['query_type']}, {record_.get('n_shapes') or '?'} shapes, IoU {record_['iou_teacher_forced']:.2f}"
    plot_prediction(ax, val_items[i]["image"], val_items[i]["mask"], pred, record_.get("point"), title, legend=k == 0)
plt.tight_layout()
plt.show()

# %% [markdown]
# The worst samples are not ragged outlines but whole wrong shapes, each segmented cleanly: the mask path
# works and the choice fails. Two are colour relations: in one ("the same color as the square") the model
# clicks the named shape itself, the one the query *names*, not the one the relation picks, and in the
# other ("... as the circle") an unrelated shape; three corner counts ("most corners", twice "fewest
# corners") end on a shape with the wrong number of corners, two "three corners" on a star and a square
# instead of the triangle, and one "in the bottom of the image" on a shape near the top.

# %% [markdown]
# ## Browse the predictions
#
# Switch models, walk through every sample (sorted or filtered by IoU, query type and number of shapes),
# move the logit threshold (LISA uses 0), and compare the thresholded mask with the soft logits, as a fill
# or as outlines. In the fill the image is dimmed; white is ground truth the model missed, cyan what it
# predicted outside the target, pink where both agree; the cross is the point route's click. The caption
# shows the sample's IoU at that threshold, the query (a "short referring phrase" or a "long query", a
# sentence that needs reasoning), the generated answer and the query's other phrasings. (Widgets need a
# live kernel; the committed notebook shows a picture of the first view.)

# %%
from lisalib.notebook.widgets import mask_browser, query_box

browser = mask_browser(val_items, results)
browser

# %% [markdown]
# ## Ask your own question
#
# Type a query about one of the validation images and press Enter. It is wrapped in LISA's prompt exactly
# as training and evaluation wrap theirs (`user_query`: a sentence ending in "?" or "." is asked as it
# is, a phrase as "What is ... in this image? Please output segmentation mask."), and the answer is
# teacher-forced (`"<SEG>."`), so there is always a mask to show.

# %%
def segment_with(model):
    def segment(image, query):
        return model.segment([image], [user_query(query)], answers=[eval_answer(model.processor.seg_token)])[0].mask_logits[0]
    return segment


models = {design: load_trained(checkpoint) for design, checkpoint in CHECKPOINTS.items()}  # the two trained models
box = query_box({design: segment_with(model) for design, model in models.items()}, [val[i]["image"] for i in range(8)])
box

# %%
from lisalib.notebook.widgets import segment_query

asked = ["the red shape", "which shape would roll down a hill?", "which shape has the most corners?"]
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, query in zip(axes, asked):
    answer = segment_query(segment_with(models["dual"]), val[3]["image"], query)
    ax.imshow(answer["rgb"], interpolation="nearest")
    ax.set_title(f"{query}\n{answer['area']} pixels", fontsize=8)
    ax.axis("off")
plt.tight_layout()
plt.show()
