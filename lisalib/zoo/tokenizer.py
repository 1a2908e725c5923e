"""A word-level tokenizer for the shapes world, built with `tokenizers` and wrapped for transformers.

The tiny VLM only ever reads shapes-world text, so a closed vocabulary of whole words keeps its
embedding table tiny while remaining a real fast tokenizer (save_pretrained / from_pretrained, special
tokens, padding) that LlavaProcessor accepts exactly like LLaMA's.
"""
from __future__ import annotations

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from lisalib.constants import IMAGE_TOKEN

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]


def build_word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: lower-cases, splits on whitespace and punctuation, adds ``<s>`` in front."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^a-z0-9]"), behavior="isolated")]
    )
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",  # batched generation appends to the right
        clean_up_tokenization_spaces=True,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


# ----- grounding: LLaVA-1.5's referring-box prompt and Kosmos-2 / Pix2Seq-style location tokens -----
LOCATION_BINS = 32  # 4 px per bin on a 128 px image: shapes are 22-48 px wide
LOCATION_TOKENS = tuple(f"<loc_{k}>" for k in range(LOCATION_BINS))
GROUNDING_WORDS = ("provide", "bounding", "box", "coordinate", "region", "sentence", "describes")


def add_grounding_tokens(tokenizer: PreTrainedTokenizerFast) -> int:
    """Add the referring-box prompt's new words and one token per location bin (after the base vocabulary,
    so every earlier id keeps its meaning); returns how many were added (0 when they are there already)."""
    from transformers import AddedToken

    vocab = tokenizer.get_vocab()
    words = [AddedToken(w, single_word=True, normalized=True) for w in GROUNDING_WORDS if w not in vocab]
    locations = [AddedToken(t, normalized=False, special=False) for t in LOCATION_TOKENS if t not in vocab]
    return tokenizer.add_tokens(words) + tokenizer.add_tokens(locations)
