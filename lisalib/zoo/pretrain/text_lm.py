"""Pretraining of ``tiny-lm`` and ``tiny-gpt2``: two small causal language models of shapes-world text.

Chapter 6 compares prefix captioning (ClipCap: image features become prefix embeddings of a frozen LM) with
cross-attention captioning (``VisionEncoderDecoderModel``: a GPT-2 decoder gains cross-attention). Both
start from a language model that already speaks the world's language, as ClipCap starts from GPT-2, so
the zoo pretrains them here, from scratch, on captions and question/answer lines of both worlds:

- ``tiny-lm``: ``LlamaForCausalLM`` with SmolLM-135M's code paths (tied embeddings, 3:1 grouped-query
  attention, SiLU, RMSNorm, rope), only the sizes changed;
- ``tiny-gpt2``: ``GPT2LMHeadModel`` from GPT-2 small's config, only the sizes changed.

They share one word-level fast tokenizer (:func:`build_lm_tokenizer`). Held-out perplexity is measured
next to the perplexity of a unigram model of the same text, the trivial baseline.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers import get_cosine_schedule_with_warmup

from lisalib.accounting.registry import model_spec
from lisalib.constants import LABEL_IGNORE_INDEX
from lisalib.training.steps import take_step
from lisalib.world import (generate_highres_scenes, generate_scenes, highres_caption, highres_questions,
                           highres_vocabulary, vocabulary)

TRAIN_SEED = 5000  # scenes (5000, i) of both worlds train the language models ...
HELDOUT_SEED = 6000  # ... scenes (6000, i) are never seen in training
SPACE = "\u2581"  # "▁": a word's leading space is part of its token, as SentencePiece writes it
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
MAX_POSITIONS = 128  # the longest line (a 17-shape high-res caption with details) is under 90 tokens
DATA = (f"shapes-world and high-res-world text: captions (high-res with and without details) and question/answer "
        f"lines of scenes ({TRAIN_SEED}, i) of both worlds for i < train_scenes / highres_train_scenes; "
        f"held-out scenes ({HELDOUT_SEED}, i)")


# ----- the tokenizer ------------------------------------------------------------------------------------
def lm_words() -> list[str]:
    """Every word and punctuation mark of both worlds' texts (``highres_vocabulary`` includes ``vocabulary``)."""
    return sorted(set(vocabulary()) | set(highres_vocabulary()))


def normalise(text: str) -> str:
    """What a round trip gives back: the world's own normalisation (``split_words`` lower-cases), and no
    leading spaces (the first word's "▁" is dropped on decoding). World texts are lower-case and start with
    a word, so for them this is the identity."""
    return text.lower().lstrip(" ")


def word_level_core(specials) -> tuple[Tokenizer, dict]:
    """``(tokenizers.Tokenizer, vocab)``: ``specials`` (ids 0..), then every word of both worlds with its
    leading "▁", lower-casing, punctuation split off; no post-processor (callers add bos or not)."""
    vocab = {token: i for i, token in enumerate(specials)}
    for word in [SPACE] + [w if not w.isalnum() else SPACE + w for w in lm_words()]:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(f"[^a-z0-9{SPACE}]"), behavior="isolated"),
    ])
    core.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    return core, vocab


def build_lm_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over the closed vocabulary of both worlds.

    Word-level rather than BPE: the vocabulary is closed (about 120 tokens), so every word is one token, the
    embedding table stays tiny and perplexity is per word; BPE would only split words the models never
    need split. As in GPT-2 and SentencePiece a word carries its leading space ("▁red"); punctuation is
    its own token and a bare "▁" stands for any other space, so decoding rebuilds the spacing exactly
    (``decode(encode(t), skip_special_tokens=True) == normalise(t)``). ``<s>`` is prepended as LLaMA's
    tokenizer does (training adds ``</s>`` itself); pad, unk, bos and eos are ids 0-3 of the vocabulary.
    A word glued to punctuation on its left ("a,b") would read as ``<unk>``: world texts never have one.
    """
    core, vocab = word_level_core(SPECIAL_TOKENS)
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        padding_side="right", clean_up_tokenization_spaces=False, model_max_length=MAX_POSITIONS,
    )


# ----- the two architectures ----------------------------------------------------------------------------
def tiny_lm_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """SmolLM-135M's config (``lisalib/configs/smollm-135m.json``) with sizes and token ids changed only:
    width 96 (576), 4 layers (30), 3 heads : 1 key/value head (9 : 3), MLP 256 (1536, the same 8/3 ratio),
    128 positions (2048) and this tokenizer's vocabulary and special ids; tied embeddings, SiLU, RMSNorm
    eps and rope theta are SmolLM's."""
    config = dict(model_spec("smollm-135m").config)
    config.pop("model_type")
    config.update(vocab_size=len(tokenizer), hidden_size=96, intermediate_size=256, num_hidden_layers=4,
                  num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=MAX_POSITIONS,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return LlamaConfig(**config)


def tiny_gpt2_config(tokenizer: PreTrainedTokenizerFast) -> GPT2Config:
    """GPT-2 small's config (``lisalib/configs/gpt2.json``) with sizes and token ids changed only: width 96
    (768), 4 layers (12), 3 heads (12), 128 positions (1024), this tokenizer's vocabulary; gelu_new, tied
    embeddings, the 4x MLP and GPT-2's dropouts are GPT-2's."""
    config = dict(model_spec("gpt2").config)
    config.pop("model_type")
    config.update(vocab_size=len(tokenizer), n_embd=96, n_layer=4, n_head=3, n_positions=MAX_POSITIONS,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return GPT2Config(**config)


def build_text_lm(architecture: str, tokenizer: PreTrainedTokenizerFast, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` ("llama") or ``GPT2LMHeadModel`` ("gpt2")."""
    torch.manual_seed(seed)
    if architecture == "llama":
        model = LlamaForCausalLM(tiny_lm_config(tokenizer))
    elif architecture == "gpt2":
        model = GPT2LMHeadModel(tiny_gpt2_config(tokenizer))
    else:
        raise ValueError(f"architecture must be 'llama' or 'gpt2', got {architecture!r}")
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    return model


# ----- data ---------------------------------------------------------------------------------------------
def scene_lines(n_scenes: int, n_highres_scenes: int, seed: int) -> list[tuple[str, str]]:
    """(kind, text) lines of scenes ``(seed, i)`` of both worlds: ``caption`` (a high-res scene gives two,
    with and without details) and ``qa`` ("what color is the star? red")."""
    lines = []
    for scene in generate_scenes(n_scenes, seed=seed):
        lines.append(("caption", scene.caption()))
        lines += [("qa", f"{qa['question']} {qa['answer']}") for qa in scene.questions()]
    for scene in generate_highres_scenes(n_highres_scenes, seed=seed):
        lines += [("caption", highres_caption(scene)), ("caption", highres_caption(scene, details=True))]
        lines += [("qa", f"{qa['question']} {qa['answer']}") for qa in highres_questions(scene)]
    return lines


def encode_lines(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[list[int]]:
    """``<s> text </s>`` ids per line: the model learns where a caption or an answer ends."""
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts)["input_ids"]]


def collate(rows: list[list[int]], pad_token_id: int) -> dict:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (the inputs, ``-100`` on padding)."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention[i, :len(row)] = 1
    labels = input_ids.masked_fill(attention == 0, LABEL_IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def pack(rows: list[list[int]], pad_token_id: int, width: int = MAX_POSITIONS) -> dict:
    """Lines packed whole, in order, into rows of ``width`` tokens (padding only at a row's end), for
    transformers' padding-free training: with ``position_ids`` restarting at 0 on each line and no
    ``attention_mask``, the models' causal mask keeps every line to itself (``find_packed_sequence_indices``),
    so the loss is that of :func:`collate`'s padded batch (same lines, same positions) at a fraction of
    its cost: lines are 4-88 tokens, a padded batch is mostly padding. Each line's ``<s>`` is no target
    (the previous line's last token cannot predict it)."""
    packed: list[list[list[int]]] = []
    for row in rows:
        if len(row) > width:
            raise ValueError(f"a line of {len(row)} tokens does not fit a row of {width}")
        if not packed or sum(map(len, packed[-1])) + len(row) > width:
            packed.append([])
        packed[-1].append(row)
    input_ids = torch.full((len(packed), width), pad_token_id)
    labels = torch.full((len(packed), width), LABEL_IGNORE_INDEX)
    position_ids = torch.zeros((len(packed), width), dtype=torch.long)
    for r, lines in enumerate(packed):
        start = 0
        for line in lines:
            input_ids[r, start:start + len(line)] = torch.tensor(line)
            labels[r, start + 1:start + len(line)] = torch.tensor(line[1:])
            position_ids[r, start:start + len(line)] = torch.arange(len(line))
            start += len(line)
        position_ids[r, start:] = torch.arange(width - start)  # padding: a segment of its own, no targets
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


# ----- pretraining --------------------------------------------------------------------------------------
@dataclass
class LmRecipe:
    """Everything that determines a built tiny-lm / tiny-gpt2 checkpoint (with the code itself); the
    architecture is the zoo model's (:func:`pretrain_tiny_lm`, :func:`pretrain_tiny_gpt2`), so one recipe
    serves both. Lines are drawn uniformly from the training scenes' captions and QA lines."""

    train_scenes: int = 3000  # shapes-world scenes (5000, i)
    highres_train_scenes: int = 1000  # high-res scenes (5000, i): a third of the tokens (long captions)
    steps: int = 1200
    batch_size: int = 32  # lines per step
    lr: float = 3e-3
    warmup_steps: int = 60
    weight_decay: float = 0.01
    seed: int = 0


def pretrain_text_lm(recipe: LmRecipe, architecture: str, progress: bool = True):
    """Next-token training from scratch (AdamW, warm-up + cosine, pads ignored, lines packed: :func:`pack`);
    returns (model, tokenizer, loss history). Deterministic for a recipe: the seed fixes the initialisation
    and the batches."""
    tokenizer = build_lm_tokenizer()
    model = build_text_lm(architecture, tokenizer, recipe.seed)
    lines = scene_lines(recipe.train_scenes, recipe.highres_train_scenes, TRAIN_SEED)
    rows = encode_lines(tokenizer, [text for _, text in lines])
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.steps)
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    model.train()
    history: list[float] = []
    name = "tiny-lm" if architecture == "llama" else "tiny-gpt2"
    bar = tqdm(range(recipe.steps), desc=name, disable=not progress)
    for step in bar:
        chosen = torch.randint(len(rows), (recipe.batch_size,), generator=generator).tolist()
        loss = model(**pack([rows[i] for i in chosen], tokenizer.pad_token_id), use_cache=False).loss
        history.append(take_step(loss, params, optimizer, schedule))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(history[-20:]) / len(history[-20:]):.3f}")
    model.eval()
    return model, tokenizer, history


def pretrain_tiny_lm(recipe: LmRecipe = LmRecipe(), progress: bool = True):
    """``tiny-lm``: a SmolLM-style ``LlamaForCausalLM`` (:func:`pretrain_text_lm`)."""
    return pretrain_text_lm(recipe, "llama", progress)


def pretrain_tiny_gpt2(recipe: LmRecipe = LmRecipe(), progress: bool = True):
    """``tiny-gpt2``: a GPT-2-style ``GPT2LMHeadModel`` (:func:`pretrain_text_lm`)."""
    return pretrain_text_lm(recipe, "gpt2", progress)


# ----- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_text_lm(model, tokenizer, n_scenes: int = 200, seed: int = HELDOUT_SEED, batch_size: int = 64) -> dict:
    """Held-out figures on the lines of ``n_scenes`` scenes of each world (never trained on).

    ``perplexity``: exp of the mean next-token loss over every token after ``<s>`` (``</s>`` included, pads
    excluded); ``caption_perplexity``: the same over caption lines only; ``unigram_perplexity``: that of the
    maximum-likelihood unigram model of these very tokens, the best any context-free model can do, so the
    trivial baseline at its strongest; ``gain``: their ratio (higher is better, the zoo's aim metric);
    ``roundtrip``: fraction of lines the tokenizer gives back exactly (:func:`build_lm_tokenizer`).
    """
    lines = scene_lines(n_scenes, n_scenes, seed)
    texts = [text for _, text in lines]
    ids = tokenizer(texts)["input_ids"]
    roundtrip = sum(tokenizer.decode(row, skip_special_tokens=True) == normalise(text)
                    for row, text in zip(ids, texts)) / len(texts)
    rows = [row + [tokenizer.eos_token_id] for row in ids]
    losses = []  # summed loss per line
    was_training = model.training
    model.eval()
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets,
                                                ignore_index=LABEL_IGNORE_INDEX, reduction="none")
        losses += nll.sum(1).tolist()
    model.train(was_training)
    lengths = [len(row) - 1 for row in rows]
    captions = [k for k, (kind, _) in enumerate(lines) if kind == "caption"]
    counts = Counter(token for row in rows for token in row[1:])
    n_tokens = sum(counts.values())
    unigram_nll = -sum(c * math.log(c / n_tokens) for c in counts.values()) / n_tokens
    perplexity = math.exp(sum(losses) / n_tokens)
    return {
        "perplexity": round(perplexity, 4),
        "caption_perplexity": round(math.exp(sum(losses[k] for k in captions) / sum(lengths[k] for k in captions)), 4),
        "unigram_perplexity": round(math.exp(unigram_nll), 4),
        "gain": round(math.exp(unigram_nll) / perplexity, 4),
        "roundtrip": round(roundtrip, 4),
        "n_tokens": n_tokens,
        "n_lines": len(lines),
    }


__all__ = ["DATA", "HELDOUT_SEED", "LmRecipe", "TRAIN_SEED", "build_lm_tokenizer", "build_text_lm", "collate",
           "encode_lines", "evaluate_text_lm", "normalise", "pack", "pretrain_text_lm", "pretrain_tiny_gpt2",
           "pretrain_tiny_lm", "scene_lines", "tiny_gpt2_config", "tiny_lm_config"]
