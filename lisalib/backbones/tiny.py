"""Tiny random-weight members of each family, built in code (no hub): config, model and processor.

Each keeps its family's real structure -- the same transformers classes, the processor's image-token
expansion, the connector (LLaVA's MLP, Idefics3's pixel shuffle, Qwen2-VL's 2x2 patch merger, PaliGemma's
linear projector), M-RoPE and the prefix-LM mask -- with widths of 32-64, two layers and a shapes-world
word-level tokenizer plus the family's own special tokens. ``tiny_backbone(family)`` returns
``(model, processor)``; ``save_tiny(family, folder)`` writes them as a ``save_pretrained`` folder that
:func:`lisalib.zoo.load_vlm` loads like a hub checkpoint.

The llava family's tiny member is the zoo's pretrained ``tiny-llava`` (``tiny_backbone("llava")`` returns a
random one of the same sizes for symmetry; the check uses the zoo model).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from lisalib.constants import SEG_TOKEN

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, head_dim=32)
IMAGE_SIDE = 64  # pixels of the (padded-square) view every tiny family sees
PATCH = 8  # so every family's grid is 8 x 8 patches

# The published chat templates of the real checkpoints, reduced to the single-image user turn LISA uses.
SMOLVLM_TEMPLATE = (  # HuggingFaceTB/SmolVLM-Instruct's chat_template.json
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
QWEN2_VL_TEMPLATE = (  # Qwen/Qwen2-VL-2B-Instruct's chat_template.json (image branch)
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

FAMILY_TOKENS = {  # what each family's real tokenizer has as added tokens (the ones its processor uses)
    "llava": ["<image>"],
    "traditional": ["<image>"],
    "smolvlm": ["<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|im_start|>",
                *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))],
    "qwen2_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                 "<|video_pad|>"],
    "paligemma": [],
}


def word_tokenizer(family: str):
    """The shapes world's word-level tokenizer with ``family``'s special tokens; only LLaVA's adds ``<s>``
    itself (the others' templates or processors place their own start tokens)."""
    from tokenizers import processors
    from transformers import AddedToken

    from lisalib.world import vocabulary
    from lisalib.zoo.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(vocabulary() + ["system", "user", "assistant", "helpful", "you", "are"])
    extra = [AddedToken(t, normalized=False, special=True) for t in FAMILY_TOKENS[family]]
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra}, replace_extra_special_tokens=False)
    if family not in ("llava", "traditional"):
        # "$B:1": the second segment (PaliGemma's suffix) gets token type 1, as the real tokenizers do
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    if family == "smolvlm":
        tokenizer.eos_token = "<end_of_utterance>"
    if family == "qwen2_vl":
        tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def _vocab(tokenizer) -> int:
    return -(-(len(tokenizer) + 1) // 64) * 64  # one spare row for <SEG>, a multiple of 64 as the real ones


def tiny_llava(family: str = "llava"):
    """LLaVA-1.5's structure (CLIP patches of layer -2 without CLS, 2-layer MLP projector, LLaMA)."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    from lisalib.zoo.miniatures import LLAVA_CHAT_TEMPLATE

    tokenizer = word_tokenizer(family)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=IMAGE_SIDE, patch_size=PATCH, **VISION),
        text_config=dict(model_type="llama", vocab_size=_vocab(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TEXT),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=(IMAGE_SIDE // PATCH) ** 2)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIDE},
                                            crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
                                            image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    return model, processor


def tiny_smolvlm(image_splitting: bool = False):
    """Idefics3 (SmolVLM): SigLIP-style tower, pixel shuffle x2 (8 x 8 patches -> 16 tokens), LLaMA text
    model; with ``image_splitting`` a 128 px longest edge is cut into 2 x 2 crops of 64 plus the global view."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, \
        Idefics3Processor

    tokenizer = word_tokenizer("smolvlm")
    config = Idefics3Config(
        vision_config=dict(image_size=IMAGE_SIDE, patch_size=PATCH, **VISION),
        text_config=dict(model_type="llama", vocab_size=_vocab(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, **TEXT),
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id)
    model = Idefics3ForConditionalGeneration(config)
    longest = 2 * IMAGE_SIDE if image_splitting else IMAGE_SIDE
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": longest}, max_image_size={"longest_edge": IMAGE_SIDE},
        do_image_splitting=image_splitting, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    seq = (IMAGE_SIDE // PATCH) ** 2 // config.scale_factor ** 2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq,
                                  chat_template=SMOLVLM_TEMPLATE)
    return model, processor


def tiny_qwen2_vl():
    """Qwen2-VL: 8 px patches (two temporal copies of a still image), 2 x 2 merger, M-RoPE (sections 4/6/6)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from lisalib.backbones.qwen2_vl import qwen2_vl_processor

    tokenizer = word_tokenizer("qwen2_vl")
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, hidden_size=TEXT["hidden_size"], num_heads=2, mlp_ratio=2,
                           patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        text_config=dict(vocab_size=_vocab(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                         rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 10000.0},
                         **{k: v for k, v in TEXT.items() if k != "head_dim"}),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    model = Qwen2VLForConditionalGeneration(config)
    pixels = IMAGE_SIDE * IMAGE_SIDE
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": pixels, "longest_edge": pixels},
                                               patch_size=PATCH, merge_size=2, temporal_patch_size=2)
    processor = qwen2_vl_processor(image_processor, tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    return model, processor


def tiny_paligemma():
    """PaliGemma: SigLIP tower (8 x 8 patches = 64 image tokens), linear projector, Gemma, prefix-LM mask."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, \
        SiglipImageProcessorPil

    tokenizer = word_tokenizer("paligemma")
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE})
    image_processor.image_seq_length = (IMAGE_SIDE // PATCH) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <image>, <locNNNN>...
    config = PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE_SIDE, patch_size=PATCH,
                           projection_dim=TEXT["hidden_size"], **VISION),
        text_config=dict(model_type="gemma", vocab_size=_vocab(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         **{**TEXT, "num_key_value_heads": 1}),
        image_token_id=processor.image_token_id, projection_dim=TEXT["hidden_size"])
    model = PaliGemmaForConditionalGeneration(config)
    return model, processor


def tiny_traditional():
    """002's traditional mode at tiny size: a CLIP vision tower and a Qwen3 LM pretrained separately (here:
    random), joined by a new image -> text connector (see :mod:`lisalib.backbones.traditional`)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen3Config, Qwen3ForCausalLM

    from lisalib.backbones.traditional import assemble

    tokenizer = word_tokenizer("traditional")
    vision = CLIPVisionModel(CLIPVisionConfig(image_size=IMAGE_SIDE, patch_size=PATCH, **VISION))
    llm = Qwen3ForCausalLM(Qwen3Config(vocab_size=_vocab(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                       tie_word_embeddings=True, **TEXT))
    return assemble(vision, llm, tokenizer, image_side=IMAGE_SIDE)


BUILDERS = {"llava": tiny_llava, "smolvlm": tiny_smolvlm, "qwen2_vl": tiny_qwen2_vl, "paligemma": tiny_paligemma,
            "traditional": tiny_traditional}


def tiny_backbone(family: str, seed: int = 0, **kwargs):
    """``(model, processor)`` of ``family``'s tiny random-weight member (seeded)."""
    if family not in BUILDERS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(BUILDERS)}")
    torch.manual_seed(seed)
    model, processor = BUILDERS[family](**kwargs)
    return model.eval(), processor


def save_tiny(family: str, folder: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Write ``family``'s tiny member as a ``save_pretrained`` folder (model + processor); returns it."""
    folder = Path(folder)
    model, processor = tiny_backbone(family, seed, **kwargs)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


__all__ = ["BUILDERS", "SEG_TOKEN", "save_tiny", "tiny_backbone", "word_tokenizer"]
