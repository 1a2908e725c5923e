"""One training protocol for every captioner variant, so that their figures can be compared.

Held fixed across variants (:class:`CaptionRecipe`): the training images and the order of the batches (both
depend on the seed only), the reference drawn for each image at each step, the caption length cap, steps,
batch, warm-up fraction, schedule (linear warm-up, cosine decay), precision (fp32 on a CPU), weight decay and
gradient clipping. What differs is only the architecture and what it trains:

- ``prefix``: frozen tower -> Linear -> every patch as a prefix -> tiny-lm (SmolLM-style) + LoRA (r 16, alpha 16,
  dropout 0.1; projection and LoRA learning rates set separately, as 004 does) on every linear layer of the LM
  (004's q, k, v, o only: at 500 steps CIDEr-D 1.88 -> 2.84 on the tuning split);
- ``prefix_pooled``: the same with a 2 x 2 pixel shuffle before the projection (a quarter of the prefix);
- ``ved_frozen``: ``VisionEncoderDecoderModel``, the same frozen tower, tiny-gpt2 with new cross-attention, the
  decoder trained fully (the fair counterpart of ``prefix``);
- ``ved``: the same with the tower trained too (004's "old architecture").

A run is saved as its trainable tensors only (the frozen backbones are the zoo's), a ``run.json`` and a run
card; :func:`load_variant` rebuilds the model from the backbones and loads them back.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from lisalib.captioning.data import CaptionSet, encode_captions, pixel_values
from lisalib.captioning.modeling import PrefixCaptioner
from lisalib.captioning.ved import build_ved, ved_loss

VARIANTS = ("prefix", "prefix_pooled", "ved_frozen", "ved")
LLAMA_ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def prefix_options(variant: str, recipe: "CaptionRecipe") -> dict:
    """:class:`PrefixCaptionerConfig` fields of a prefix variant under ``recipe``."""
    options = dict(lora_r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                   projection_type=recipe.projection_type, mlp_hidden_dim=recipe.mlp_hidden_dim,
                   lora_targets=[t for t in recipe.lora_targets.split(",") if t] or None,
                   max_caption_tokens=recipe.max_caption_tokens, freeze_language_model=not recipe.train_lm)
    if variant == "prefix_pooled":
        options.update(prefix_pooling=recipe.pool, pool_factor=recipe.pool_factor)
    return options


@dataclass
class CaptionRecipe:
    """Everything that determines a run besides the code and the variant (shared by all four)."""

    vision: str = "tiny-siglip"  # zoo name or hub id (real: google/siglip-base-patch16-224)
    prefix_lm: str = "tiny-lm"  # real: HuggingFaceTB/SmolLM-135M
    ved_lm: str = "tiny-gpt2"  # real: gpt2
    train_images: int = 4000
    steps: int = 900  # 3 seeds x 4 variants in 38 min on one (shared) CPU thread
    batch_size: int = 32
    warmup_fraction: float = 0.05
    max_caption_tokens: int = 30  # 004's max_length: tokens before eos
    # learning rates: each variant's best of the same x1 / x3 / x9 grid around the first build's settings (500-step
    # probes on the tuning split, `python -m lisalib.captioning tune`; docs/results.md): x3 for both
    projection_lr: float = 3e-2  # 004 (c3aac00): 1e-3 projection, 5e-5 LoRA, for a LM 1,400x the size
    lora_lr: float = 9e-3
    decoder_lr: float = 3e-3  # VED decoder (cross-attention is new, the rest pretrained)
    encoder_lr: float = 3e-4  # VED tower when it trains (``ved``)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    projection_type: str = "linear"  # 004's; "mlp" is its other option
    mlp_hidden_dim: int = 2048  # the "mlp" projection's hidden width (004's default)
    lora_targets: str = LLAMA_ALL_LINEAR  # every linear layer of the LM; "" = 004's auto targets (llama: q,k,v,o)
    pool: str = "pixel_shuffle"  # prefix_pooled's pooling ("pixel_shuffle" or "avg") ...
    pool_factor: int = 2  # ... and its factor s (the prefix shrinks s^2-fold)
    train_lm: bool = False  # diagnostic: the prefix LM trains whole at lora_lr (the model keeps it frozen)
    lora_r: int = 16
    lora_b_lr_ratio: float = 1.0  # LoRA+ (Hayou et al. 2024): LoRA's B matrices at this multiple of lora_lr
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    device: str = "cpu"  # "cuda" in the real profile: models and batches go there, bf16/fp16 autocast
    seed: int = 0


def build_variant(variant: str, recipe: CaptionRecipe, seed: int | None = None):
    """``(model, tokenizer, processor)`` of a freshly built variant from the recipe's backbones."""
    from lisalib.zoo import load_siglip, load_text_lm

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    seed = recipe.seed if seed is None else seed
    siglip, processor = load_siglip(recipe.vision)
    if variant.startswith("prefix"):
        lm, tokenizer = load_text_lm(recipe.prefix_lm)
        model = PrefixCaptioner.from_parts(siglip, lm, seed=seed, **prefix_options(variant, recipe))
    else:
        lm, tokenizer = load_text_lm(recipe.ved_lm)
        model = build_ved(siglip, lm, tokenizer, freeze_encoder=variant == "ved_frozen", seed=seed)
    return model.to(recipe.device), tokenizer, processor


def autocast(device: torch.device):
    """fp32 on a CPU; on a GPU bf16 where it is native, else fp16 (a T4), with a gradient scaler for fp16."""
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return torch.autocast("cuda", dtype=dtype), (torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)


def parameter_groups(model, variant: str, recipe: CaptionRecipe) -> list[dict]:
    """AdamW groups: projection / LoRA (prefix), decoder / encoder (VED); frozen tensors excluded."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if variant.startswith("prefix"):
        rest = [(n, p) for n, p in named if not n.startswith("projection.")]  # LoRA (+ the LM if trained)
        groups = [("projection", recipe.projection_lr, [p for n, p in named if n.startswith("projection.")]),
                  ("lora", recipe.lora_lr, [p for n, p in rest if "lora_B" not in n or recipe.lora_b_lr_ratio == 1]),
                  ("lora_B", recipe.lora_lr * recipe.lora_b_lr_ratio,
                   [p for n, p in rest if "lora_B" in n and recipe.lora_b_lr_ratio != 1])]
    else:
        # decoder group: GPT-2, its new cross-attention and enc_to_dec_proj (VED adds it when widths differ)
        groups = [("decoder", recipe.decoder_lr, [p for n, p in named if not n.startswith("encoder.")]),
                  ("encoder", recipe.encoder_lr, [p for n, p in named if n.startswith("encoder.")])]
    counted = sum(len(g[2]) for g in groups)
    if counted != len(named):
        raise RuntimeError(f"{len(named) - counted} trainable tensors belong to no optimizer group")
    return [{"name": name, "lr": lr, "params": params} for name, lr, params in groups if params]


def batch_plan(n_images: int, steps: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which images and which of their references each step uses: a function of the seed only, so every
    variant of a seed sees the same batches."""
    rng = np.random.default_rng([seed, 6])
    images = np.stack([rng.choice(n_images, batch_size, replace=False) for _ in range(steps)])
    return images, rng.integers(0, 1 << 30, size=images.shape)


def loss_of(model, variant: str, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if variant.startswith("prefix"):
        return model(pixels, ids, mask, labels=ids).loss
    return ved_loss(model, pixels, ids, mask)


def train_variant(variant: str, data: CaptionSet, recipe: CaptionRecipe, progress: bool = True,
                  model_bundle=None) -> tuple:
    """Train one variant in place; returns ``(model, tokenizer, processor, record)``; the record holds the
    loss of every step, the seconds and the mean step time after the first 10 steps."""
    model, tokenizer, processor = model_bundle or build_variant(variant, recipe)
    groups = parameter_groups(model, variant, recipe)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in groups],
                                  weight_decay=recipe.weight_decay)
    warmup = int(round(recipe.warmup_fraction * recipe.steps))
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup, recipe.steps)
    images, picks = batch_plan(len(data), recipe.steps, recipe.batch_size, recipe.seed)
    device = next(model.parameters()).device
    cast, scaler = autocast(device)
    model.train()
    losses, times, start = [], [], time.perf_counter()
    bar = tqdm(range(recipe.steps), desc=f"{variant} seed {recipe.seed}", disable=not progress)
    for step in bar:
        t0 = time.perf_counter()
        index = images[step]
        texts = [data.refs[i][picks[step, k] % len(data.refs[i])] for k, i in enumerate(index)]
        ids, mask = encode_captions(tokenizer, texts, recipe.max_caption_tokens)
        with cast:
            loss = loss_of(model, variant, pixel_values(data.images[index], processor).to(device), ids.to(device),
                           mask.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{variant}: loss {loss.item()} at step {step}")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.3f}")
    model.eval()
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    record = {"variant": variant, "recipe": asdict(recipe), "steps": recipe.steps, "warmup_steps": warmup,
              "seconds": round(time.perf_counter() - start, 1),
              "train_step_seconds": round(float(np.mean(times[10:] or times)), 4),
              "final_loss": round(float(np.mean(losses[-50:])), 4), "losses": [round(v, 4) for v in losses],
              "trainable_parameters": trainable, "parameters": total, "threads": torch.get_num_threads(),
              "train_images": len(data), "data": data.source,
              "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__}}
    return model, tokenizer, processor, record


# ----- saving and loading ---------------------------------------------------------------------------------
def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_variant(model, record: dict, out_dir) -> Path:
    """``out_dir``: ``trainable.safetensors`` (the tensors the run trained), ``run.json``, ``README.md``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), out / "trainable.safetensors")
    (out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "README.md").write_text(run_card(record))
    return out


def load_variant(folder) -> tuple:
    """``(model, tokenizer, processor, record)`` of a saved run: backbones from its recipe, then its tensors."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "run.json").is_file():
        raise FileNotFoundError(f"no saved captioning run at {folder}; train one: python -m lisalib.captioning train")
    record = json.loads((folder / "run.json").read_text())
    recipe = CaptionRecipe(**record["recipe"])
    model, tokenizer, processor = build_variant(record["variant"], recipe)
    state = load_file(folder / "trainable.safetensors")
    expected = set(trainable_state(model))
    if set(state) != expected:
        raise RuntimeError(f"{folder}: saved tensors do not match the {record['variant']} variant "
                           f"({len(set(state) ^ expected)} differ)")
    model.load_state_dict(state, strict=False)
    return model.eval(), tokenizer, processor, record


def run_card(record: dict) -> str:
    """The model card of a saved run."""
    r = record["recipe"]
    lines = [f"# tiny-caption-{record['variant'].replace('_', '-')} (seed {r['seed']})", "",
             f"Chapter 6's `{record['variant']}` captioner (`lisalib.captioning.train`), trained under the chapter's one "
             "protocol on shapes-world scenes with five references each. Only the trained tensors are stored; the "
             f"frozen parts are the zoo's `{r['vision']}` and `{r['prefix_lm'] if record['variant'].startswith('prefix') else r['ved_lm']}`. "
             "Load: `lisalib.captioning.train.load_variant(folder)`; score: `python -m lisalib.captioning evaluate --json`.", "",
             f"- {record['steps']} steps of {r['batch_size']} images ({record['train_images']} training images), "
             f"{record['warmup_steps']} warm-up steps, final loss {record['final_loss']}",
             f"- {record['trainable_parameters']:,} trainable of {record['parameters']:,} parameters",
             f"- {record['seconds']} s on {record['threads']} CPU thread(s), {record['train_step_seconds']} s per step "
             f"(torch {record['versions']['torch']}, transformers {record['versions']['transformers']}); rebuild: `make caption`",
             "", "| recipe | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r.items()]
    return "\n".join(lines) + "\n"


__all__ = ["CaptionRecipe", "LLAMA_ALL_LINEAR", "VARIANTS", "batch_plan", "build_variant", "load_variant", "loss_of",
           "parameter_groups", "prefix_options", "run_card", "save_variant", "train_variant", "trainable_state"]
