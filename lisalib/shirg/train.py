"""Training chapter 5's tiny LaViDa: first on pooled tokens (as LaViDa), then a projector LoRA on selected ones.

The tower is tiny-siglip after the detail stage of :mod:`lisalib.shirg.tower` (tiny-siglip's own tokens do
not carry the digits). Stage "pooled" trains ``mm_projector``, ``image_newline`` and the language model on the
small-detail questions with LaViDa's pooled tokens, a quarter of each batch a detailed scene caption; the
tower stays frozen (``tower_lr`` 0; LaViDa tunes so400m at lr 2e-6, nearly frozen). Stage "lora" is what 003 plans:
everything frozen but a peft LoRA on ``mm_projector.0`` / ``mm_projector.2``, trained on text-selected
tokens, so the projector learns what unpooled tokens look like. Rank: 003 asks r = 64, alpha = 16 on a
1152 -> 4096 -> 4096 projector (860,160 parameters, scale 0.25); the tiny projector is 64 -> 96 -> 96, where
r = 64 would be nearly full rank, so the tiny run keeps the ratio instead: r = 4 (64 / 1152 = 5.6 % of the
input width; 4 / 64 = 6.3 %) and alpha = 1 (the same scale, 0.25).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.constants import LABEL_IGNORE_INDEX
from lisalib.shirg.data import EncodedScenes, Sample, query_embeddings
from lisalib.shirg.select import relevance, text_selection
from lisalib.training.steps import take_step


@dataclass
class LavidaRecipe:
    """Everything that determines a shipped run besides the code (both stages)."""

    train_scenes: int = 8000
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3  # projector and newline
    lm_lr: float = 5e-4  # the language model (LaViDa stage 2 tunes it too)
    tower_lr: float = 0.0  # the vision tower (LaViDa: 2e-6 on a pretrained so400m; 0 freezes it)
    detail_scenes: int = 6000  # the tower's detail stage (lisalib.shirg.tower); 0 steps: tiny-siglip as shipped
    detail_steps: int = 5000
    warmup_steps: int = 100
    caption_share: float = 0.25  # share of each pooled-stage batch that is a detailed scene caption
    lora_steps: int = 800
    lora_lr: float = 2e-3
    lora_r: int = 4
    lora_alpha: int = 1
    budget: int = 80  # K: what pooling leaves (5 views x 4 x 4)
    coverage: float = 0.25
    seed: int = 0


def encode_text(tokenizer, samples: list[Sample], with_answer: bool = True) -> dict:
    """``<s> question [answer </s>]`` ids, right-padded; labels only on the answer and ``</s>``."""
    rows, labels = [], []
    for s in samples:
        prompt = tokenizer(s.question).input_ids  # starts with <s>
        if not with_answer:
            rows.append(prompt)
            labels.append([LABEL_IGNORE_INDEX] * len(prompt))
            continue
        full = tokenizer(f"{s.question} {s.answer}").input_ids + [tokenizer.eos_token_id]
        rows.append(full)
        labels.append([LABEL_IGNORE_INDEX] * len(prompt) + full[len(prompt):])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.full((len(rows), width), LABEL_IGNORE_INDEX, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels)):
        ids[i, :len(row)], mask[i, :len(row)], target[i, :len(row)] = torch.tensor(row), 1, torch.tensor(label)
    return {"input_ids": ids, "attention_mask": mask, "labels": target}


def text_selections(data: EncodedScenes, siglip, processor, k: int, coverage: float) -> np.ndarray:
    """[n_samples, views, tokens] text-relevance selections for every question of ``data``."""
    queries = query_embeddings(siglip, processor, data.samples)
    return np.stack([text_selection(relevance(data.patch_text[s.scene_index], q), k, coverage)
                     for s, q in zip(data.samples, queries)])


def train_stage(model, tokenizer, data: EncodedScenes, recipe: LavidaRecipe, stage: str,
                selections: np.ndarray | None = None, progress: bool = True) -> dict:
    """One training stage in place; returns the loss history and timing. ``stage``: "pooled" or "lora"."""
    generator = np.random.default_rng(recipe.seed + (stage == "lora"))
    if stage == "pooled":
        groups = [{"params": [*model.mm_projector.parameters(), model.image_newline], "lr": recipe.lr},
                  {"params": list(model.language_model.parameters()), "lr": recipe.lm_lr}]
        if recipe.tower_lr > 0:
            groups.append({"params": list(model.vision_tower.parameters()), "lr": recipe.tower_lr})
        else:
            model.vision_tower.requires_grad_(False)
        steps, mode = recipe.steps, "pooled"
    elif stage == "lora":
        if selections is None:
            raise ValueError("the lora stage trains on selected tokens: pass selections")
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": recipe.lora_lr}]
        steps, mode = recipe.lora_steps, "selected"
    else:
        raise ValueError(f"stage must be 'pooled' or 'lora', not {stage!r}")
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, min(recipe.warmup_steps, steps // 10), steps)
    model.train()
    losses, start = [], time.perf_counter()
    for _ in tqdm(range(steps), desc=f"tiny-lavida {stage}", disable=not progress):
        index = generator.choice(len(data.samples), recipe.batch_size, replace=False)
        batch = [data.samples[i] for i in index]
        if mode == "pooled" and data.captions and recipe.caption_share > 0:  # LaViDa's stage 2 mixes captions in
            n = int(round(recipe.caption_share * recipe.batch_size))
            batch = batch[n:] + [data.captions[i] for i in generator.choice(len(data.captions), n, replace=False)]
        features = tower_features(model, data, [s.scene_index for s in batch])
        out = model(**encode_text(tokenizer, batch), image_features=features, mode=mode,
                    selection=None if selections is None else selections[index])
        losses.append(take_step(out.loss, params, optimizer, schedule))
    model.eval()
    seconds = time.perf_counter() - start
    return {"stage": stage, "steps": steps, "seconds": round(seconds, 1), "step_seconds": round(seconds / steps, 4),
            "final_loss": round(float(np.mean(losses[-50:])), 4), "losses": [round(v, 4) for v in losses],
            "recipe": asdict(recipe)}


def tower_features(model, data: EncodedScenes, scene_indices: list[int]) -> torch.Tensor:
    """[B, 5, 64, C] features of these scenes from the model's own tower (with gradients if it trains)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.encode_views(data.pixel_values(scene_indices)).unflatten(0, (len(scene_indices), base.config.n_views))


def add_projector_lora(model, recipe: LavidaRecipe):
    """peft LoRA on ``mm_projector.0`` and ``mm_projector.2`` only (everything else frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=0.0,
                        target_modules=["mm_projector.0", "mm_projector.2"])
    return get_peft_model(model, config)


def train_run(recipe: LavidaRecipe = LavidaRecipe(), progress: bool = True) -> tuple:
    """Both stages from the zoo's tiny-siglip and tiny-lm: ``(peft model, tokenizer, run record)``."""
    from lisalib.shirg.data import make_scenes, encode_scenes
    from lisalib.shirg.modeling import LavidaForCausalLM
    from lisalib.zoo import load_siglip, load_text_lm

    from lisalib.shirg.probe import detail_probe
    from lisalib.shirg.tower import DetailRecipe, tower_view_features, train_detail_tower

    start = time.perf_counter()
    siglip, processor = load_siglip("tiny-siglip")
    lm, tokenizer = load_text_lm("tiny-lm")
    data = encode_scenes(siglip, processor, make_scenes(recipe.train_scenes, recipe.seed, "train"), progress=progress,
                         captions=recipe.caption_share > 0)
    tower, detail = siglip, None
    if recipe.detail_steps > 0:
        tower, detail = train_detail_tower(siglip, DetailRecipe(scenes=recipe.detail_scenes, steps=recipe.detail_steps,
                                                                seed=recipe.seed), progress)
        val = encode_scenes(siglip, processor, make_scenes(300, 0, "val"), progress=False)
        detail["probe"] = {"tiny-siglip": detail_probe(data, val),
                           "detail tower": detail_probe(data, val, tower_view_features(tower.vision_model, data),
                                                        tower_view_features(tower.vision_model, val))}
    model = LavidaForCausalLM.from_parts(tower, lm, seed=recipe.seed)
    pooled = train_stage(model, tokenizer, data, recipe, "pooled", progress=progress)
    selected = text_selections(data, siglip, processor, recipe.budget, recipe.coverage)
    peft_model = add_projector_lora(model, recipe)
    trainable, total = peft_model.get_nb_trainable_parameters()
    lora = train_stage(peft_model, tokenizer, data, recipe, "lora", selections=selected, progress=progress)
    answers = {}
    for kind in sorted({s.type for s in data.samples}):
        values = [s.answer for s in data.samples if s.type == kind]
        answers[kind] = max(sorted(set(values)), key=values.count)
    run = {"recipe": asdict(recipe), "train_scenes": recipe.train_scenes, "train_questions": len(data.samples),
           "majority_answers": answers, "stages": {"detail": detail, "pooled": pooled, "lora": lora},
           "lora_trainable_parameters": trainable, "parameters": total,
           "seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads(),
           "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__}}
    return peft_model, tokenizer, run


def base_weights(peft_model):
    """The model without its LoRA, as a plain ``LavidaForCausalLM`` with the trained base weights.

    ``get_base_model()`` alone is not that: peft wraps ``mm_projector.0`` / ``.2`` in place, so their weights
    are saved as ``mm_projector.0.base_layer.weight`` and ``from_pretrained`` would silently re-initialise
    ``mm_projector.0.weight`` (a random projector: answers at the majority level)."""
    from lisalib.shirg.modeling import LavidaForCausalLM

    base = peft_model.get_base_model()
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ".lora_" not in k}
    clean = LavidaForCausalLM(base.config)
    clean.load_state_dict(state, strict=True)
    return clean


def save_run(peft_model, tokenizer, run: dict, out_dir) -> None:
    """``out_dir``: the base model (``save_pretrained``), its tokenizer, ``projector-lora/`` (the peft adapter)
    and ``run.json``."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_weights(peft_model).save_pretrained(out)
    tokenizer.save_pretrained(out)
    peft_model.save_pretrained(out / "projector-lora")
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    (out / "README.md").write_text(run_card(run))


def run_card(run: dict) -> str:
    """The run's model card: what it is, how it was trained, what each stage cost."""
    stages = run["stages"]
    lines = ["# tiny-lavida", "",
             "Chapter 5's LaViDa-style VLM: tiny-siglip's tower after a detail stage, without its last layer and head,",
             "LaViDa's `mlp2x_gelu` projector (`mm_projector.0` / `.2`), a newline token and tiny-lm, trained on the",
             "high-resolution world's small-detail questions with pooled tokens (stage 2: projector and LM trained, the",
             "tower frozen unless `tower_lr` > 0), then a peft LoRA on",
             "`mm_projector.0` / `.2` on text-selected tokens (`projector-lora/`). Load: `lisalib.shirg.train.load_run()`;",
             "measure: `python -m lisalib.shirg evaluate --json`.", "",
             f"- Data: {run['train_scenes']} training scenes (9000, i), {run['train_questions']} questions, plus one "
             "detailed caption per scene mixed into the pooled stage.",
             *([f"- Detail stage (the tower, `lisalib.shirg.tower`): {stages['detail']['recipe']['steps']} steps on "
                f"{stages['detail']['recipe']['scenes']} detail scenes, {stages['detail']['seconds']} s, final loss "
                f"{stages['detail']['final_loss']}; linear probe (val, kept token / pooled block / global view): digit "
                + " vs ".join(f"{p['digit']['token']} / {p['digit']['pooled']} / {p['digit']['global']} ({name})"
                              for name, p in stages['detail']['probe'].items())
                + f", chance {stages['detail']['probe']['tiny-siglip']['digit']['chance']}."]
               if stages.get("detail") else []),
             f"- Pooled stage: {stages['pooled']['steps']} steps, {stages['pooled']['seconds']} s, final loss "
             f"{stages['pooled']['final_loss']}; projector LoRA: {stages['lora']['steps']} steps, "
             f"{stages['lora']['seconds']} s, final loss {stages['lora']['final_loss']}; "
             f"{run['lora_trainable_parameters']:,} LoRA parameters of {run['parameters']:,}.",
             f"- Built in {run['seconds']} s on {run['threads']} CPU thread(s) (torch {run['versions']['torch']}, "
             f"transformers {run['versions']['transformers']}). Rebuild: `make shirg`.", "",
             "| recipe | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in run["recipe"].items()]
    return "\n".join(lines) + "\n"


def load_run(path=None) -> tuple:
    """``(peft model, tokenizer, run record)`` of a saved run (default: the shipped ``tiny-lavida``).
    ``with model.disable_adapter():`` gives the model before its projector LoRA."""
    import json
    from pathlib import Path

    from peft import PeftModel
    from transformers import AutoTokenizer

    from lisalib.shirg.modeling import LavidaForCausalLM
    from lisalib.zoo import RUNS_DIR

    folder = Path(path) if path is not None else RUNS_DIR / "tiny-lavida"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no saved tiny-lavida run at {folder}; build it: python -m lisalib.shirg train")
    base = LavidaForCausalLM.from_pretrained(folder)
    model = PeftModel.from_pretrained(base, folder / "projector-lora").eval()
    return model, AutoTokenizer.from_pretrained(folder), json.loads((folder / "run.json").read_text())
