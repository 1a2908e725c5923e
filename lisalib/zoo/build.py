"""Build the tiny zoo: pretrain, measure, save with ``save_pretrained``, write a model card.

``python -m lisalib.zoo build`` runs this. It is deterministic (fixed seeds, fixed data) and is the only
place that trains zoo models: loading a zoo model never trains.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
import transformers

from lisalib.zoo import BACKBONES_DIR, ZOO_MODELS

CARD_FILE = "zoo_card.json"
# What each model should reach on held-out data (the aims), and the floor a shipped model must
# keep (well above chance: tiny-llava's QA chance level is about 0.3, an empty mask scores 0 IoU).
# text LMs: "gain" = unigram perplexity / model perplexity on held-out text (the unigram model is the
# strongest baseline that ignores context)
# tiny-siglip: "patch_hit" = the patch most similar to an object's name touches the object (chance 0.12)
ACCURACY_AIMS = {"tiny-llava": ("qa", 0.90), "tiny-sam": ("miou", 0.85), "tiny-lm": ("gain", 12.0),
                 "tiny-gpt2": ("gain", 12.0), "tiny-siglip": ("patch_hit", 0.80)}
REGRESSION_FLOORS = {"tiny-llava": ("qa", 0.40), "tiny-sam": ("miou", 0.75), "tiny-lm": ("gain", 8.0),
                     "tiny-gpt2": ("gain", 8.0), "tiny-siglip": ("patch_hit", 0.50)}
# Weights are stored in this dtype to keep the package small (the issue allows fp16/bf16 storage);
# loading upcasts them to float32 exactly, and the card is measured on the rounded weights.
STORAGE_DTYPES = {"tiny-llava": torch.float16, "tiny-sam": torch.float32,
                  "tiny-lm": torch.float32, "tiny-gpt2": torch.float32, "tiny-siglip": torch.float32}  # plain from_pretrained keeps fp16 as fp16


def build(name: str, out_dir: Path | None = None, progress: bool = True, start_from: str | None = None,
          **recipe_overrides) -> dict:
    """Pretrain zoo model ``name``, save it to ``out_dir`` (default: the package zoo) and return its card.

    ``start_from`` (tiny-llava only: a built checkpoint's name or folder) skips the stages that checkpoint
    already went through and runs the recipe's later stages on its weights; the card keeps the earlier
    build's recipe and times under ``earlier_stages``.
    """
    if name not in ZOO_MODELS:
        raise ValueError(f"unknown zoo model {name!r}; the zoo has: {', '.join(ZOO_MODELS)}")
    out_dir = Path(out_dir) if out_dir is not None else BACKBONES_DIR / name
    torch.set_num_threads(max(1, torch.get_num_threads()))
    recipe_class, pretrain, evaluate, data = _family(name)
    recipe = recipe_class(**recipe_overrides)
    earlier = None
    if start_from is not None:
        if ZOO_MODELS[name] != "vlm":
            raise ValueError("start_from continues a tiny-llava build only")
        from lisalib.zoo import resolve

        earlier_card = json.loads((Path(resolve(start_from)) / CARD_FILE).read_text())
        earlier = {key: earlier_card.get(key) for key in ("recipe", "train_seconds", "built_with", "metrics")}
    start = time.perf_counter()
    model, processor, history = pretrain(recipe, progress=progress, **({"start_from": start_from} if start_from else {}))
    train_seconds = time.perf_counter() - start
    round_to_storage(model, STORAGE_DTYPES[name])
    metrics = evaluate(model, processor, n_scenes=200)

    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.to(STORAGE_DTYPES[name]).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    metric, aim = ACCURACY_AIMS[name]
    card = {
        "name": name,
        "class": type(model).__name__,
        "processor": type(processor).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "storage_dtype": str(STORAGE_DTYPES[name]).removeprefix("torch."),
        "recipe": asdict(recipe),
        "data": data,
        "metrics": metrics,
        "aim": {"metric": metric, "min": aim, "met": metrics[metric] >= aim},
        "final_loss": round(sum(history[-50:]) / len(history[-50:]), 4),
        "train_seconds": round(train_seconds, 1),
        "build_command": f"python -m lisalib.zoo build --only {name}"
                         + "".join(f" --recipe {k}={json.dumps(v)}" for k, v in recipe_overrides.items())
                         + (f" --start_from {start_from}" if start_from else ""),
        "built_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                       "python": platform.python_version(), "threads": torch.get_num_threads()},
    }
    if earlier is not None:
        card["earlier_stages"] = earlier
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_card_markdown(card))
    return card


def _family(name: str):
    """(recipe class, pretrain function, evaluate function, data description) of a zoo model."""
    if ZOO_MODELS[name] == "vlm":
        from lisalib.zoo.pretrain.vlm import VlmRecipe, evaluate_vlm, pretrain_vlm

        return VlmRecipe, pretrain_vlm, evaluate_vlm, \
            "shapes world, scenes (1000, i) for i < train_scenes; held-out scenes (2000, i)"
    if ZOO_MODELS[name] == "siglip":
        from lisalib.zoo.pretrain.siglip import DATA, SiglipRecipe, evaluate_siglip, pretrain_tiny_siglip

        return SiglipRecipe, pretrain_tiny_siglip, evaluate_siglip, DATA
    if ZOO_MODELS[name] == "text_lm":
        from lisalib.zoo.pretrain.text_lm import DATA, LmRecipe, evaluate_text_lm, pretrain_tiny_gpt2, pretrain_tiny_lm

        return LmRecipe, pretrain_tiny_lm if name == "tiny-lm" else pretrain_tiny_gpt2, evaluate_text_lm, DATA
    from lisalib.zoo.pretrain.sam import SamRecipe, evaluate_sam, pretrain_sam

    return SamRecipe, pretrain_sam, evaluate_sam, \
        "shapes world, scenes (3000, i) for i < train_scenes; held-out scenes (4000, i)"


@torch.no_grad()
def round_to_storage(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Round float32 weights to what ``dtype`` storage keeps (in place, still float32), so that the
    figures measured next are those of the shipped checkpoint."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            tensor.copy_(tensor.to(dtype).to(tensor.dtype))


def model_card_markdown(card: dict) -> str:
    recipe = "\n".join(f"| {k} | {v} |" for k, v in card["recipe"].items())
    metrics = ", ".join(f"{k} = {v}" for k, v in card["metrics"].items())
    remeasured = ""
    if "remeasured" in card:
        built = ", ".join(f"{k} = {v}" for k, v in card["built_metrics"].items())
        remeasured = f"\n  Re-measured: {card['remeasured']['note']} At build time: {built}."
    if "earlier_stages" in card:
        earlier = card["earlier_stages"]
        remeasured += (f"\n- Built in two steps: stages 1-2 by an earlier build ({earlier['train_seconds']} s, its recipe and "
                       f"figures under `earlier_stages` in zoo_card.json), then this card's later stages on those weights "
                       f"({card['train_seconds']} s). `python -m lisalib.zoo build --only {card['name']}` runs all stages at once.")
    return f"""# {card['name']}

A `{card['class']}` with a `{card['processor']}`, {card['parameters']:,} parameters (stored as
{card.get('storage_dtype', 'float32')}, loaded as float32), pretrained from
scratch by this repository on its synthetic shapes world. Load it with plain transformers:
`{card['class']}.from_pretrained(<this directory>)`, or `lisalib.zoo` by name.

- Data: {card['data']}.
- Held-out metrics: {metrics} (aim: {card['aim']['metric']} >= {card['aim']['min']}, met: {card['aim']['met']}).{remeasured}
- Final training loss (mean of the last 50 steps): {card['final_loss']}.
- Training time: {card['train_seconds']} s on {card['built_with']['threads']} CPU threads
  (torch {card['built_with']['torch']}, transformers {card['built_with']['transformers']}).
- Rebuild: `{card['build_command']}`.

| recipe | value |
|---|---|
{recipe}
"""


def update_card(name: str, metrics: dict, note: str) -> dict:
    """Write re-measured held-out ``metrics`` into a shipped model's card (weights untouched), keeping the
    build's own figures under ``built_metrics`` and ``note`` saying why they were measured again."""
    from lisalib.zoo import zoo_path

    folder = zoo_path(name)
    card = read_card(name)
    card.setdefault("built_metrics", card["metrics"])
    card["metrics"] = metrics
    card["aim"]["met"] = metrics[card["aim"]["metric"]] >= card["aim"]["min"]
    card["remeasured"] = {"note": note, "torch": torch.__version__, "transformers": transformers.__version__}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "README.md").write_text(model_card_markdown(card))
    return card


def read_card(name: str) -> dict:
    """The measured card of a built zoo model (what the notebooks and tests quote)."""
    from lisalib.zoo import zoo_path

    return json.loads((zoo_path(name) / CARD_FILE).read_text())
