"""Chapter 5's measurements: what each selector keeps, and what the tiny LaViDa answers from it.

Per selector at one budget K: ``recall`` of the target's tokens (tokens whose patch touches a target box),
``coverage`` (pooling's 2x2 cells that keep a token), ``target_share`` (the best share of one token's area the
target fills: how finely the target is still resolved; pooling's tokens are 4x a patch, so a target fills
a quarter as much of one), and ``accuracy`` of the model's greedy answer, each with a 95% interval. Pooling
keeps no original token, so it has no recall; it is compared by accuracy and by target share. Baselines that
need no learning sit in the same table: the most frequent answer of each question type, and the LM with
no image at all.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from lisalib.reasonseg.metrics import mean_interval
from lisalib.shirg.data import EncodedScenes, box_overlaps, query_embeddings
from lisalib.shirg.modeling import ImageSequence
from lisalib.shirg.select import SELECTORS, grid_coverage, recall, relevance, select
from lisalib.shirg.train import encode_text, tower_features


def selections(data: EncodedScenes, siglip, processor, name: str, k: int, coverage: float = 0.25,
               seed: int = 0) -> np.ndarray:
    """[n_samples, views, tokens] bool: selector ``name`` applied to every question of ``data``."""
    n_views, tokens = data.saliency.shape[1:]
    grid = int(round(tokens ** 0.5))
    queries = query_embeddings(siglip, processor, data.samples) if name == "text" else [None] * len(data.samples)
    out = []
    for sample, query in zip(data.samples, queries):
        i = sample.scene_index
        scores = relevance(data.patch_text[i], query) if name == "text" else None
        rng = np.random.default_rng([seed, i])  # one draw per image: random is as question-blind as uniform
        out.append(select(name, k, saliency=data.saliency[i].numpy(), scores=scores, rng=rng, coverage=coverage,
                          n_views=n_views, grid=grid))
    return np.stack(out)


def target_share(sample, views, cell: int, keep: np.ndarray | None = None) -> float:
    """The largest fraction of one token's area (``cell`` view pixels square) the target's box covers, over
    all tokens or only the kept ones (``keep`` [views, tokens]): 1.0 when a token shows nothing but target."""
    best = 0.0
    for box in sample.boxes:
        for v, view in enumerate(views):
            share = box_overlaps(box, view, cell) / cell ** 2
            if keep is not None:
                share = share * keep[v]
            best = max(best, float(share.max()))
    return best


@torch.no_grad()
def answer(model, tokenizer, data: EncodedScenes, mode: str, selection: np.ndarray | None = None,
           batch_size: int = 64, use_image: bool = True) -> list[str]:
    """Greedy first answer word per question (every answer of this world is one word)."""
    model.eval()
    words = []
    for start in range(0, len(data.samples), batch_size):
        batch = data.samples[start:start + batch_size]
        text = encode_text(tokenizer, batch, with_answer=False)
        if use_image:
            features = tower_features(model, data, [s.scene_index for s in batch])
            sel = None if selection is None else selection[start:start + batch_size]
            images = model.image_tokens(features, mode, sel)
        else:
            empty = model.image_newline.new_zeros(0, model.config.text_config.hidden_size)
            images = [ImageSequence(empty, np.zeros((0, 3), np.int64)) for _ in batch]
        embeds, mask, _ = model.merge(text["input_ids"], text["attention_mask"], None, images)
        logits = model.language_model(inputs_embeds=embeds, attention_mask=mask).logits
        last = mask.sum(1) - 1
        ids = logits[torch.arange(len(batch)), last].argmax(-1)
        words += [tokenizer.decode([int(i)]).strip() for i in ids]
    return words


def accuracy_row(predictions: list[str], data: EncodedScenes) -> dict:
    correct = [p == s.answer for p, s in zip(predictions, data.samples)]
    mean, low, high = mean_interval(correct)
    by_type = {}
    for kind in sorted({s.type for s in data.samples}):
        values = [c for c, s in zip(correct, data.samples) if s.type == kind]
        by_type[kind] = round(float(np.mean(values)), 4)
    return {"accuracy": round(mean, 4), "accuracy_ci": [round(low, 4), round(high, 4)], "n": len(correct),
            "by_type": by_type, "correct": correct}


def selection_row(data: EncodedScenes, mask: np.ndarray) -> dict:
    """Recall (questions with target tokens only), grid coverage and target share of one selector's picks."""
    recalls = [recall(m, s.target_tokens) for m, s in zip(mask, data.samples)]
    recalls = [r for r in recalls if not np.isnan(r)]
    mean, low, high = mean_interval(recalls)
    return {"recall": round(mean, 4), "recall_ci": [round(low, 4), round(high, 4)], "recall_n": len(recalls),
            "coverage": round(float(np.mean([grid_coverage(m) for m in mask])), 4)}


def paired_gain(row: dict, reference: dict) -> dict:
    """Mean per-question accuracy difference and its 95% interval (paired: the same questions)."""
    diff = np.asarray(row["correct"], float) - np.asarray(reference["correct"], float)
    mean, low, high = mean_interval(diff, bounds=None)
    return {"gain": round(mean, 4), "gain_ci": [round(low, 4), round(high, 4)]}


# ----- the whole evaluation --------------------------------------------------------------------------------
def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "correct"}


def evaluate_run(model, tokenizer, run: dict, siglip, processor, data: EncodedScenes, budget: int = 80,
                 coverage: float = 0.25, seed: int = 0) -> dict:
    """Every selector and mode on ``data`` (a val split), before and after the projector LoRA, next to the
    baselines; ``selectors.<name>`` has ``recall``, ``accuracy`` (after LoRA), ``n`` and more (checks read them)."""
    picks = {name: selections(data, siglip, processor, name, budget, coverage, seed) for name in SELECTORS}
    stages = {}
    for stage in ("before_lora", "after_lora"):
        context = model.disable_adapter() if stage == "before_lora" else contextlib.nullcontext()
        with context:
            rows = {mode: accuracy_row(answer(model, tokenizer, data, mode), data) for mode in ("pooled", "full")}
            rows |= {name: accuracy_row(answer(model, tokenizer, data, "selected", picks[name]), data)
                     for name in SELECTORS}
        stages[stage] = rows
    after, before = stages["after_lora"], stages["before_lora"]
    majority = [run["majority_answers"].get(s.type, "") for s in data.samples]
    baselines = {"majority": _strip(accuracy_row(majority, data)),
                 "no_image": _strip(accuracy_row(answer(model, tokenizer, data, "pooled", use_image=False), data))}
    grid = data.views[0][0].patch_size  # one token's side in view pixels (pooled: twice that)
    pooled_share = float(np.mean([target_share(s, data.views[s.scene_index], 2 * grid) for s in data.samples]))
    selectors = {"pooled": {"recall": None, "accuracy": after["pooled"]["accuracy"],
                            "accuracy_ci": after["pooled"]["accuracy_ci"],
                            "accuracy_before_lora": before["pooled"]["accuracy"], "n": after["pooled"]["n"],
                            "target_share": round(pooled_share, 4), "tokens": budget}}
    for name in SELECTORS:
        share = np.mean([target_share(s, data.views[s.scene_index], grid, m) for s, m in zip(data.samples, picks[name])])
        selectors[name] = {**selection_row(data, picks[name]), "accuracy": after[name]["accuracy"],
                           "accuracy_ci": after[name]["accuracy_ci"], "accuracy_before_lora": before[name]["accuracy"],
                           "n": after[name]["n"], "target_share": round(float(share), 4), "tokens": budget,
                           "by_type": after[name]["by_type"]}
    selectors["pooled"]["by_type"] = after["pooled"]["by_type"]
    return {"budget": budget, "coverage": coverage, "n_scenes": len(data.scenes), "n_questions": len(data.samples),
            "selectors": selectors, "full": _strip(after["full"]), "baselines": baselines,
            "gain_text_vs_pooled": paired_gain(after["text"], after["pooled"]),
            "gain_text_vs_pooled_before_lora": paired_gain(before["text"], before["pooled"]),
            # the two pipelines as shipped: LaViDa (pooled, no LoRA) against 003's plan (text-selected + LoRA)
            "gain_text_lora_vs_pooled_no_lora": paired_gain(after["text"], before["pooled"]),
            "gain_lora_text": paired_gain(after["text"], before["text"]),
            "stages": {stage: {k: _strip(v) for k, v in rows.items()} for stage, rows in stages.items()}}
