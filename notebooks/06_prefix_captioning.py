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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lisalib/lisalib-notebooks/blob/main/notebooks/06_prefix_captioning.ipynb)
#
# # 6. Prefix captioning vs cross-attention, compared fairly
#
# The design document 004 replaces a cross-attention captioner (`VisionEncoderDecoderModel`: SigLIP + GPT-2,
# everything trainable) with **prefix conditioning**: a frozen SigLIP vision tower, a Linear projection that
# turns its patch tokens into "words" of a decoder-only LM (SmolLM-135M), and LoRA on the LM. It reports
# "**5.7x faster** training, **99% fewer** trainable parameters". But its two runs differ in batch (50 vs 4 x 16),
# caption length (128 vs 30 tokens), trainable set (everything vs projection + LoRA) and data; its prefix model
# then produced empty strings and a loss (10.968) above that of a uniform guess over SmolLM's 49,152 tokens
# (ln 49152 = 10.80).
#
# This chapter builds both architectures correctly, counts them at real size, trains four variants under
# **one protocol** (same images and batches, references, caption cap, steps, batch, warm-up, precision,
# decoding, metric code), and scores them with COCO's CIDEr-D, BLEU-4 and ROUGE-L next to three captioners that
# need no learning. (004's figures quoted here are its own; `CLAIMS_004` in `lisalib.captioning.runs` holds them,
# printed at the end.)

# %%
# Colab setup: install only what is missing; Colab's own torch is never replaced.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("lisalib") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "lisalib @ git+https://github.com/lisalib/lisalib-notebooks@main"])
if importlib.util.find_spec("pycocoevalcap") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "pycocoevalcap==1.2"])

# %%
from lisalib import get_profile
profile = get_profile()
REAL = profile.name == "real"
print(profile.name, profile.caption_vision, profile.caption_lm, profile.caption_ved_lm)

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
from transformers.utils import logging as hf_logging

from lisalib.captioning import counts, viz
from lisalib.captioning.data import references, shapes_split
from lisalib.captioning.metrics import normalise, score_captions
from lisalib.captioning.runs import CLAIMS_004, SWEEP_RUN, evaluate_shipped, load_shipped
from lisalib.captioning.train import VARIANTS, CaptionRecipe, train_variant
from lisalib.notebook.report import record
from lisalib.zoo import RUNS_DIR, load_siglip

hf_logging.set_verbosity_error()  # tiny-siglip's config carries so400m's token ids; the warning is noise here
hf_logging.disable_progress_bar()
plt.rcParams["figure.dpi"] = 72
torch.manual_seed(0)
np.random.seed(0)

# %% [markdown]
# ## The two architectures
#
# **Prefix conditioning** (ClipCap, 004): the image's patch tokens, projected to the LM's width, are simply the
# first tokens of the LM's sequence; the caption follows and attends to them with the LM's own self-attention.
# SigLIP base/16 at 224 px gives 14 x 14 = **196** prefix tokens, and every one of them goes through all 30
# SmolLM layers at every training step. Beyond 004, a **pooled prefix**: SmolVLM's pixel shuffle folds each
# 2 x 2 block of patches into one token of 4 x 768 channels, 49 tokens instead of 196.
#
# **Cross-attention** (`VisionEncoderDecoderModel`): GPT-2 gains a new cross-attention layer in every block;
# the text attends to the image tokens from every layer, but the image tokens are never part of the text
# sequence. Frozen encoder or not is a separate choice: 004's old run trained everything.

# %%
fig = viz.draw_architectures(196, 49, 768, 576, {"vision": "SigLIP base/16", "lm": "SmolLM-135M", "ved_lm": "GPT-2"})
plt.show()

# %% [markdown]
# ## Parameters at real size, counted on `meta`
#
# Built from the shipped configs on PyTorch's `meta` device (shapes, no weights, no download):

# %%
# NBVAL_CHECK_OUTPUT
table = counts.count_table()
print(f"{'model':<45} {'total':>13} {'trainable':>13} {'share':>7}")
for row in table:
    print(f"{row['model']:<45} {row['total']:>13,} {row['trainable']:>13,} {row['trainable'] / row['total']:>7.2%}")
ved, prefix = table[0], table[2]
assert (ved["total"], prefix["total"], prefix["trainable"]) == (245_690_880, 229_685_376, 2_286_144)
assert (prefix["projection"], prefix["lora"], ved["cross_attention"]) == (442_944, 1_843_200, 28_366_848)
record("ch6_ved_parameters", ved["total"])
record("ch6_prefix_trainable", prefix["trainable"])
print(f"\nprefix: projection {prefix['projection']:,} + LoRA {prefix['lora']:,} (61,440 x 30 layers); "
      f"SigLIP's attention-pooling head {prefix['vision_head']:,} (computed by 004, never read)")

# %% [markdown]
# 004's "~203M" for the VED is below even the SigLIP tower (92,884,224 with its pooling head) plus GPT-2 small
# (124,439,808), 217,324,032 together, and it leaves out the **28,366,848** cross-attention parameters that the
# VED adds, which are new and randomly initialised. Its "~221M / 2.2M" undercounts the 229,685,376 total (the
# headless tower's 222,598,272 is nearer) and gets the 2,286,144 trainable (1.00 %) right; its "~350K" projection is
# Linear(768, 576) = 442,944. The 99 % reduction is real, but it is a property of **freezing** (the tower and
# the LM), not of prefix conditioning: the frozen-encoder VED still trains 152,806,656 parameters only because
# it fine-tunes GPT-2 whole. The pooled prefix's projection reads 3,072 channels (1,770,048 parameters). This
# chapter's recipe puts the LoRA on every linear layer of the LM (attention and MLP, the last row): 5,327,424
# trainable parameters at real size, still 2.4 %.
#
# ### What a training step costs at real size
#
# Counted, not timed: torch's FLOP counter runs one training step per image (forward, and backward through
# everything that needs a gradient) of each real-size model on `meta`. The frozen tower's forward is part of
# every step; the optimizer's element-wise update is not counted.

# %%
# NBVAL_CHECK_OUTPUT
step_flops = counts.train_step_flops()
print(f"{'training step, one image':<22} {'GFLOPs':>8} {'of it tower':>11} {'prefix tokens':>13} {'prefix / this':>13}")
for name, row in step_flops.items():
    print(f"{name:<22} {row['total'] / 1e9:>8.1f} {row['vision_tower'] / 1e9:>11.1f} {row['prefix_tokens']:>13} "
          f"{row['prefix_over_this']:>12.2f}x")
record("ch6_real_pooled_flops_ratio", step_flops["prefix_pooled_s2"]["prefix_over_this"], "x")

# %% [markdown]
# At real size the 196 prefix tokens are the cost: SmolLM's 30 layers carry 227 positions instead of 80, so the
# pooled prefix (49 tokens) needs **2.1x** fewer FLOPs per step than all patches, tower included. The
# frozen-encoder VED is cheaper still: its GPT-2 carries the 31 caption tokens only and reads the image
# through cross-attention. Training the VED's tower too roughly doubles its step.
#
# Counted FLOPs leave out what a step really spends on memory traffic and attention's softmax, so the same
# step is also **timed**: real-size prefix models with random weights (step time does not depend on the
# weights; no download), all patches and pixel-shuffled by 2, side by side on whatever this machine has (a
# GPU on Colab, one CPU thread in CI). `python -m lisalib.captioning compare --real_size_timing --json`
# reproduces it at batch 4 (`docs/results.md`).

# %%
from lisalib.captioning.runs import real_size_timing
real_timing = real_size_timing(batch_size=1 if profile.smoke else 2, factors=(1, 2), repeats=1 if profile.smoke else 3)
for key, seconds in real_timing["step_seconds"].items():
    print(f"pool factor {key[1:]}: {seconds:.3f} s per real-size step at batch {real_timing['batch_size']} "
          f"({real_timing['device']}), {real_timing['speedup_vs_prefix'][key]:.2f}x faster than all patches")
record("ch6_real_pooled_step_speedup", real_timing["speedup_vs_prefix"]["s2"], "x")

# %% [markdown]
# Timed, the pooled prefix's real-size step is faster than the counted 2.1x (printed above; 2.3-2.8x in the
# builds recorded in `docs/results.md`, batch 2 and 4 on one CPU thread): attention over 227 positions costs
# more than its share of FLOPs.
#
# ## The data: five references per image
#
# CIDEr-D rewards the n-grams the references agree on, so one reference per image (004's data) makes it noisy.
# Each shapes-world scene gets the world's caption (shapes listed left to right) and four paraphrases in the
# same vocabulary: another opening, and the shapes right to left, top to bottom, largest first. The tiny
# profile's images are 64 px (tiny-siglip's size, 8 x 8 = 64 patch tokens; pooled: 16). The real profile
# reads Flickr30k (`lmms-lab/flickr30k`, 5 human captions per image; the first two of its nine shards, about
# 7,000 images, split by a seeded permutation with 500 held out).

# %%
# NBVAL_CHECK_OUTPUT
from lisalib.world import generate_scene
scene = generate_scene((62000, 3))
for text in references(scene):
    print(text)
print("normalised for scoring:", normalise(references(scene)[0]))

# %% [markdown]
# The scorers are pycocoevalcap's own `Bleu(4)`, `Rouge()` and `Cider()` (its `Cider` is CIDEr-D) on captions
# normalised in Python (lower case, punctuation dropped) instead of the Java PTB tokenizer. CIDEr-D's idf is
# computed from the references of the images being scored, so the same caption scores differently in a
# different set: a split is always scored whole.

# %%
# NBVAL_CHECK_OUTPUT
toy_refs = {0: ["a red circle", "one red circle"], 1: ["a blue square", "one blue square"],
            2: ["a red square", "one red square"]}
toy_hyps = {0: "a red circle", 1: "a blue circle", 2: "a red square"}
three = score_captions(toy_refs, toy_hyps)
two = score_captions({k: toy_refs[k] for k in (0, 1)}, {k: toy_hyps[k] for k in (0, 1)})
print(f"CIDEr-D of the same captions: 3 images {three['cider']:.4f}, first 2 images {two['cider']:.4f}")
print(f"BLEU-1..4 on 3 images: {[round(three[f'bleu{n}'], 4) for n in range(1, 5)]}, ROUGE-L {three['rouge_l']:.4f}")

# %% [markdown]
# ## Four variants, one protocol
#
# | variant | vision tower | bridge | language side | trained |
# |---|---|---|---|---|
# | `prefix` | frozen | Linear, every patch a prefix token | tiny-lm (SmolLM's architecture) + LoRA r 16 on every linear layer | projection + LoRA |
# | `prefix_pooled` | frozen | pixel shuffle 2 x 2, then Linear | same | projection + LoRA |
# | `ved_frozen` | frozen | cross-attention | tiny-gpt2 with new cross-attention | decoder |
# | `ved` | trained | cross-attention | same | everything (004's old run) |
#
# Held fixed: 4,000 training scenes and the batches drawn from them (a function of the seed only), a reference
# drawn per image per step, 30 caption tokens at most plus an explicit end-of-sequence token, labels -100 on
# the prefix and padding, the attention mask always passed, 900 steps of 32 images, 5 % warm-up then cosine,
# fp32, AdamW, gradient clipping at 1, greedy decoding (`do_sample=False`). Learning rates are per parameter
# group (projection, LoRA; decoder, encoder), as 004 sets projection and LoRA apart.
#
# ### Tuned with the same budget, on a split the table never sees
#
# The learning rates and the prefix model's capacity were chosen by 500-step probes scored on a **tuning split**
# (val split 7, scenes (62007, i)); the table below reports val split 0. The prefix model and the frozen-encoder
# VED got the same learning-rate grid, x1 / x3 / x9 the first build's settings (prefix: projection 1e-2, LoRA
# 3e-3; VED: decoder 1e-3), and the VED one more point (x1/3); the pooled prefix and the all-trainable VED reuse
# their counterparts' rates (the VED's tower at a tenth of its decoder's). The probes, as
# `python -m lisalib.captioning tune` wrote them:

# %%
tuning_file = RUNS_DIR / SWEEP_RUN / "tuning.jsonl"
probes = [json.loads(line) for line in tuning_file.read_text().splitlines()] if tuning_file.is_file() else []
print(f"{'variant':<14} {'probe':<62} {'steps':>5} {'trainable':>9} {'loss':>6} {'CIDEr-D':>8}")
for p in probes:
    print(f"{p['variant']:<14} {p['tag'][:62]:<62} {p['recipe']['steps']:>5} {p['trainable']:>9,} {p['loss']:>6.3f} "
          f"{p['cider']:>8.3f}")

# %% [markdown]
# Three things the probes show. Both architectures were under-tuned in the first build, and by the same factor:
# x3 is the best point for each (x9 is worse for both). LoRA on q, k, v, o only (004's targets) is the prefix
# model's bottleneck at this size: on every linear layer it lifts CIDEr-D by 0.7-1.0 at the same learning
# rate; an MLP projection (004's other option) adds nothing. And the diagnostic row: with the LM
# trained whole (no LoRA) the prefix model's loss falls to the frozen-encoder VED's, so much of the gap between
# the two is what they train. The pool-harder probe (s = 4, 4 prefix tokens) loses about a sixth of the
# CIDEr-D; its speed is measured below.
#
# The later probes test what else could hold the prefix model back, one thing at a time:
#
# - **its LM**: on tiny-gpt2, the VED's own decoder, instead of tiny-lm (whose three query heads share a single
#   32-wide key/value head), the prefix model scores the same as on tiny-lm, with LoRA and trained whole alike.
#   The same decoder, the same frozen tower and the same steps: cross-attention still leads, even with the whole
#   decoder trained (about 3.5 against 3.96);
# - **more steps**: at 2,700 steps (3x the recipe) the prefix model's loss and CIDEr-D stay where they were at 500
#   (its LoRA has plateaued), while the frozen-encoder VED keeps improving: the gap widens with training;
# - **its learning rates apart** (projection lower, LoRA lower or higher, LoRA+ with faster B matrices), a larger
#   LoRA (r 64), the MLP projection
#   at the chosen rates: none beats the shipped recipe.
#
# ClipCap's own table (reference notes) tells the same story at COCO scale: behind an MLP projection, a frozen
# GPT-2 scores 92.4 CIDEr against 108.4 when GPT-2 is tuned; matching the tuned LM took ClipCap a transformer
# mapper of 43M parameters (the reference notes' table), not a Linear layer.
#
# The tiny profile loads the shipped runs (seed 0), trained by `make caption` (one thread, all four variants
# for three seeds; seeds 1 and 2 give the spread below). The real profile trains every variant here for
# `profile.caption_steps` steps, with the same recipe.

# %%
if profile.caption_steps:  # real profile: train here (on the miniatures in CI: a smoke run of the same code)
    siglip_real, processor_real = load_siglip(profile.caption_vision)
    side = processor_real.image_processor.size["height"]
    if profile.smoke:
        train_set, val_set = shapes_split(16, "train", size=side), shapes_split(8, "val", size=side)
    else:
        from lisalib.captioning.data import flickr_split
        train_set, val_set = flickr_split(6000, "train", size=side), flickr_split(500, "val", size=side)
    recipe = CaptionRecipe(vision=profile.caption_vision, prefix_lm=profile.caption_lm, ved_lm=profile.caption_ved_lm,
                           steps=profile.caption_steps, train_images=len(train_set),
                           batch_size=4 if profile.smoke else 32, device=profile.device)
    bundles = {}
    for variant in VARIANTS:
        model, tokenizer, processor, rec = train_variant(variant, train_set, recipe, progress=not profile.smoke)
        bundles[variant] = (model, tokenizer, processor, rec)
else:
    bundles = load_shipped()
    train_set, val_set = None, None
for name, (model, _, _, rec) in bundles.items():
    print(f"{name:<14} {rec['steps']} steps, {rec['trainable_parameters']:>9,} of {rec['parameters']:>9,} parameters "
          f"trained, final loss {rec['final_loss']}")

# %% [markdown]
# ### Loss curves
#
# The caption loss per token (moving average over 25 steps) of every variant, from the runs' own records:

# %%
viz.plot_losses({name: rec["losses"] for name, (_, _, _, rec) in bundles.items()})
plt.show()

# %% [markdown]
# ## The comparison
#
# Every variant and three baselines on 500 held-out scenes (val split 0, never seen in training), five references
# each. `most_frequent` gives every image the single most common training reference; `nearest_neighbour` gives
# each image the caption of the training image closest to it in the frozen SigLIP's pooled embedding space (its
# attention-pooling head, which tiny-siglip trained contrastively on this world's captions);
# `nearest_neighbour_patches` does the same lookup on the mean of the tower's patch tokens, exactly the features
# the captioners read. Costs are measured side by side in this run (interleaved
# repeats): a train step at batch 32 (forward, backward, AdamW), time to the first caption token and per further
# token at batch 1, captions per second at batch 32.

# %%
result = evaluate_shipped(seed=0, n_val=500, bundles=bundles, train=train_set, val=val_set)
rows = result["variants"]
print(f"{'':<34} {'CIDEr-D':>8} {'BLEU-4':>7} {'ROUGE-L':>8} {'s/step':>8} {'samples/s':>9} {'1st tok s':>9} "
      f"{'s/token':>8} {'caps/s':>7}")
for name, v in rows.items():
    print(f"{name:<34} {v['cider']:>8.3f} {v['bleu4']:>7.3f} {v['rouge_l']:>8.3f} {v['step_seconds']:>8.4f} "
          f"{v['samples_per_second']:>9.1f} {v['first_token_seconds']:>9.4f} {v['per_token_seconds']:>8.5f} "
          f"{v['captions_per_second']:>7.1f}")
for name, b in result["baselines"].items():
    print(f"{'baseline ' + name:<34} {b['cider']:>8.3f} {b['bleu4']:>7.3f} {b['rouge_l']:>8.3f}")
print("\nstep-time ratios:", result["ratios"])
for name, v in rows.items():
    record(f"ch6_{name}_cider", v["cider"])
record("ch6_pooled_speedup", result["ratios"]["pooled_speedup_vs_prefix"], "x")

# %% [markdown]
# ### Does each captioner read the image, and is greedy decoding the problem?
#
# Two checks on the same split. The ablation: the vision tower's features replaced by zeros (the prefix becomes
# the projection's bias; cross-attention reads zeros), so what a blind captioner still scores is its caption
# prior. And beam search (3 beams) for every variant alike, against the table's greedy captions.

# %%
from lisalib.captioning.evaluate import score_variant
check_val = val_set if val_set is not None else shapes_split(500, "val", seed=0)
blind = {name: score_variant(model, tok, proc, check_val, blind=True) for name, (model, tok, proc, _) in bundles.items()}
beam = {name: score_variant(model, tok, proc, check_val, num_beams=3) for name, (model, tok, proc, _) in bundles.items()}
print(f"{'':<14} {'greedy':>7} {'3 beams':>8} {'blind':>7}  blind caption of every image")
for name in bundles:
    print(f"{name:<14} {rows[name]['cider']:>7.3f} {beam[name]['cider']:>8.3f} {blind[name]['cider']:>7.3f}  "
          f"{blind[name]['captions'][0]!r}")

# %% [markdown]
# What the table shows (tiny profile, shipped seed 0): both cross-attention captioners are above all three
# baselines; both prefix captioners are far above the most frequent caption but **below** both nearest-neighbour
# lookups, the one on the patch features they read included. The frozen-encoder VED, the prefix model's fair
# counterpart by the tower it freezes, leads the prefix model by about 0.9 CIDEr-D at equal steps, data, batches and learning-rate grid. Every captioner reads the
# image: blind, each writes one caption for every image and falls to 0.08-1.1 CIDEr-D. The prefix models'
# training loss stays near 0.71-0.72 nats per token where the VEDs reach 0.48-0.50 (printed above), and their
# captions mostly list the right number of shapes (not always: "one shape" for the two-shape image below) but
# repeat one colour or kind (see the samples below). The tuning
# probes located the cause in what trains, the very thing 004 advertises: LoRA on every linear layer of the
# frozen LM (114,784 parameters with the projection) against the VED's whole decoder (627,168); with the LM
# trained whole the prefix model's loss met the VED's. Beam search is no remedy (the check above).
#
# Cost at this size (the step-time ratios printed above, measured side by side): the prefix model is *not*
# cheaper to train than the VEDs here: its 64 prefix tokens run through every LM layer, while cross-attention
# reads them as keys and values only. The pooled prefix (16 tokens) is faster per step than all patches, by just
# under 2x: the fixed costs of a step at width 96 and 4 layers (the frozen tower's forward on 32 images, the
# optimizer, per-operation overhead) are a large share, and pooling does not touch them.
#
# ### Pooling harder
#
# How much faster does a shorter prefix make a step here? Freshly built prefix models (step time does not depend
# on the weights), pixel-shuffled by s = 1 (all patches), 2 (the shipped pooled variant) and half the grid (s = 4
# here, 7 on SigLIP's 14 x 14 grid; 4 prefix tokens either way), timed side by side:

# %%
from lisalib.captioning.timing import pooling_step_times
if profile.caption_steps:  # the profile's own models (SigLIP base/16: 14 x 14; its miniature in CI: 8 x 8)
    vision_config = siglip_real.config.vision_config
    grid, timing_recipe = vision_config.image_size // vision_config.patch_size, recipe
else:  # the shipped tiny ones
    grid, timing_recipe = 8, None
pool_times = pooling_step_times((1, 2, grid // 2), recipe=timing_recipe)
for s_, t in pool_times.items():
    tokens = grid ** 2 // s_ ** 2
    print(f"pool factor {s_}: {tokens:>3} prefix tokens, {t:.4f} s per step, {pool_times[1] / t:.2f}x faster than all patches")

# %% [markdown]
# ### Captions on held-out images

# %%
images = val_set.images[:6] if val_set is not None else shapes_split(6, "val").images
captions = {name: result["samples"][name] for name in rows}
viz.show_captions(images, result["references"], captions)
plt.show()

# %% [markdown]
# ### Three seeds
#
# `make caption` trained every variant with seeds 0, 1 and 2 (the seed sets the new weights' initialisation
# and the batches) and scored each on val split 0; the shipped seed-0 runs are the table above.

# %%
sweep_file = RUNS_DIR / SWEEP_RUN / "sweep.json"
sweep = json.loads(sweep_file.read_text())["summary"] if sweep_file.is_file() else {}
def sd(value):
    return "n/a (one seed)" if value is None else f"{value:.3f}"
for name, s in sweep.items():
    print(f"{name:<14} CIDEr-D {s['cider']:.3f} ± {sd(s['cider_sd'])}  BLEU-4 {s['bleu4']:.3f} ± {sd(s['bleu4_sd'])}  "
          f"ROUGE-L {s['rouge_l']:.3f} ± {sd(s['rouge_l_sd'])}  seeds {s['seeds']}")

# %% [markdown]
# ## 004's claims next to the measurements

# %%
ratios = result["ratios"]
print(f"{'claim (004)':<34} {'004 says':<44} measured")
print(f"{'VED parameters':<34} {CLAIMS_004['ved_total_parameters']:<44} {ved['total']:,} (cross-attention "
      f"{ved['cross_attention']:,} included)")
print(f"{'prefix parameters / trainable':<34} {'~221M / 2.2M':<44} {prefix['total']:,} / {prefix['trainable']:,}")
print(f"{'projection':<34} {CLAIMS_004['projection_parameters']:<44} {prefix['projection']:,}")
print(f"{'training speed, prefix vs VED':<34} {'5.7x (unmatched runs)':<44} VED all trainable / prefix: "
      f"{ratios['ved_over_prefix']:.2f}x, VED frozen / prefix: {ratios['ved_frozen_over_prefix']:.2f}x per step")
print(f"{'freezing the VED encoder':<34} {'(not measured)':<44} VED all trainable / VED frozen: "
      f"{ratios['ved_over_ved_frozen']:.2f}x per step")
print(f"{'pooled prefix (not in 004)':<34} {'':<44} {ratios['pooled_speedup_vs_prefix']:.2f}x faster than all "
      f"patches, CIDEr-D change {ratios['pooled_cider_change']}")
print(f"{'captions':<34} {CLAIMS_004['captions']:<44} "
      f"{sum(v['empty'] for v in rows.values())} empty captions of {len(rows) * result['n_val']}")

# %% [markdown]
# ## Aims, checked
#
# Three aims: every variant clearly above the baselines (a captioner below a nearest-neighbour lookup has
# learnt less from the tower than a table does); the prefix model within the spread of the frozen-encoder
# VED at equal steps, or above it; the pooled prefix at least 2x faster per step than the all-patches prefix
# at a CIDEr-D within 5 %. Each is computed here from the table above (the spread from the three-seed sweep).

# %%
best_baseline = max(b["cider"] for b in result["baselines"].values())
spread = sweep.get("ved_frozen", {}).get("cider_sd") or 0.0
aims = {name: v["cider"] > 1.05 * best_baseline for name, v in rows.items()}
aims["prefix within the spread of ved_frozen (or above)"] = rows["prefix"]["cider"] >= rows["ved_frozen"]["cider"] - 2 * spread
aims["pooled >= 2x faster per step (tiny, timed)"] = ratios["pooled_speedup_vs_prefix"] >= 2
aims["pooled >= 2x fewer FLOPs per step (real size, counted)"] = step_flops["prefix_pooled_s2"]["prefix_over_this"] >= 2
aims["pooled >= 2x faster per step (real size, timed)"] = real_timing["speedup_vs_prefix"]["s2"] >= 2
aims["pooled CIDEr-D within 5 % (or above)"] = rows["prefix_pooled"]["cider"] >= 0.95 * rows["prefix"]["cider"]
for aim, holds in aims.items():
    label = f"{aim} above the best baseline ({best_baseline:.3f}) by 5 %" if aim in rows else aim
    print(f"{'holds' if holds else 'FAILS':<6} {label}")
assert all(np.isfinite(v["cider"]) for v in rows.values())
if not REAL:  # the deterministic tiny figures: what the prose below says
    assert rows["ved_frozen"]["cider"] > best_baseline and all(v["cider"] > result["baselines"]["most_frequent"]["cider"]
                                                                for v in rows.values())

# %% [markdown]
# What holds and what does not, in the tiny profile. Both VEDs are clearly above every baseline; both prefix
# captioners are above the most frequent caption and below the nearest-neighbour lookups, on every seed (3.00-3.33
# per seed, `docs/results.md`); not only
# below the lookup through the contrastive pooling head (which the captioners never see) but also below the one
# on the very patch tokens they read. As captioners of this world they have learnt less from the tower than a
# lookup table; what holds them back is measured in the probes above: LoRA on a frozen LM plateaus (loss 0.73
# from step 500 to 2,700) and neither its LM, its learning rates, its rank nor its projection is the reason.
# The prefix model is not within the frozen-encoder VED's spread: the gap (about 1 CIDEr-D) is twenty times the
# VED's seed spread, and it widens with more steps. The pooled prefix keeps (and on seed 0 exceeds) the
# all-patches CIDEr-D. It is just under 2x faster per step at width 96, where the frozen tower, the optimizer and
# the 31 caption tokens are a large fixed share of a step; at real size, where 196 prefix tokens dominate the
# step, it needs 2.12x fewer FLOPs and is timed above 2x faster (both printed above), so the speed aim holds
# for the real model, counted and timed, and misses narrowly at the tiny size; pooling harder (4 tokens) passes
# 2x at the tiny size at a sixth less CIDEr-D.
#
# 004's "5.7x faster" does not survive the matched protocol: per step the prefix model is the slowest of the
# four here, and at real size it needs 2.35x the FLOPs of the frozen-encoder VED; freezing the VED's encoder
# alone buys the printed `ved_over_ved_frozen` ratio (2.04x in FLOPs at real size). Its "99 % fewer trainable
# parameters" is exact (2,286,144 of 229,685,376), and here it is also the reason the prefix model learns less
# in the same number of steps. The real profile on a GPU was not measured for this build.
