"""Random-weight miniatures of the real profile's hub models, so CI runs their code paths offline.

``python -m lisalib.zoo.miniatures --out DIR [--json]`` writes one ``save_pretrained`` folder per hub id
(``DIR/llava-hf--llava-1.5-7b-hf``, ``DIR/facebook--sam-vit-base``) and ``DIR/hub_map.json``; with
``LISALIB_HUB_MAP=DIR`` set, ``lisalib.zoo.load_vlm("llava-hf/llava-1.5-7b-hf")`` loads the miniature.

Each config is the shipped hub config (``lisalib/configs``) with only sizes reduced (widths, depths, heads,
vocabulary): the same classes, image and patch sizes, token counts, feature layer and strategy, activations,
processors and tokenizer conventions. The text vocabulary is a LLaMA-style BPE trained here on shapes-world
text, so ``<image>`` and ``<pad>`` get small ids rather than 32000/32001; the config's ``image_token_index``
and ``pad_token_id`` follow the tokenizer. The build is seeded and cached by a fingerprint of its recipe.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lisalib.cli import dataclass_parser

MAP_FILE = "hub_map.json"
FINGERPRINT_KEY = "_fingerprint"  # the map's one non-hub-id key (lisalib.zoo.hub_map drops it)
SHIPPED = {"vlm": "llava-1.5-7b", "sam": "sam-vit-base",  # lisalib/configs/<name>.json
           "siglip": "siglip-so400m-patch14-384",  # chapter 5's real tower (LaViDa's)
           # chapter 6's real captioners: 004's tower, its prefix LM and its cross-attention decoder
           "caption_siglip": "siglip-base-patch16-224", "caption_lm": "smollm-135m", "caption_gpt2": "gpt2"}
# What https://huggingface.co/llava-hf/llava-1.5-7b-hf ships besides config.json, as its own files say:
# - chat_template.json: the template below (with the {% generation %} tags of hub PR #29); transformers'
#   tests/models/llava/test_processor_llava.py renders it to "USER: <image>\nWhat is shown in this image? ASSISTANT:"
# - processor_config.json: image_token "<image>", num_additional_image_tokens 1 (CLIP's CLS), patch_size 14,
#   vision_feature_select_strategy "default" (the last two are read from the config here)
# - tokenizer_config.json: padding_side "left", model_max_length 1000000000000000019884624838656 (int(1e30),
#   transformers' "no limit"), pad_token "<pad>", add_bos_token true, add_eos_token false, legacy false,
#   clean_up_tokenization_spaces false; <image> (32000) and <pad> (32001) added as special, unnormalized tokens
# - preprocessor_config.json: CLIPImageProcessor, shortest_edge 336, crop 336x336, do_center_crop, resample 3
#   (bicubic), rescale 1/255, OpenAI CLIP mean/std; generation_config.json: bos 1, eos 2, pad 32001
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_PROCESSOR = {"image_token": "<image>", "num_additional_image_tokens": 1}
LLAVA_TOKENIZER = {"padding_side": "left", "pad_token": "<pad>", "model_max_length": int(1e30),
                   "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False}
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 as in LLaMA; ids 3-258 are its byte-fallback tokens
VOCAB_MULTIPLE = 64  # convert_llava_weights_to_hf.py pads the embeddings to a multiple of 64 (32002 -> 32064)


@dataclass(frozen=True)
class MiniatureRecipe:
    """Everything the miniatures depend on besides the shipped configs: sizes, seed, tokenizer corpus."""

    seed: int = 0
    corpus_scenes: int = 12  # shapes-world scenes whose questions, answers and captions train the BPE
    bpe_vocab_size: int = 512  # specials + 256 byte tokens + learnt pieces (the corpus may stop it earlier)
    # widths 32, two layers, two heads; feed-forward ratios as in the real models (CLIP and SAM 4x, SAM's decoder 8x)
    clip: dict = field(default_factory=lambda: dict(
        hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, projection_dim=32))
    llama: dict = field(default_factory=lambda: dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    sam_vision: dict = field(default_factory=lambda: dict(
        hidden_size=32, mlp_dim=128, num_hidden_layers=2, num_attention_heads=2))
    sam_channels: int = 32  # the neck's output_channels = prompt encoder and mask decoder width (real: 256)
    sam_decoder: dict = field(default_factory=lambda: dict(mlp_dim=256, num_attention_heads=2))
    siglip: dict = field(default_factory=lambda: dict(  # both towers; 384 px / patch 14 kept: 729 tokens a view
        hidden_size=32, intermediate_size=120, num_hidden_layers=3, num_attention_heads=2))
    caption_lm: dict = field(default_factory=lambda: dict(  # SmolLM-135M: 576 wide, 30 layers, 9 : 3 heads
        hidden_size=32, intermediate_size=86, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1))
    caption_gpt2: dict = field(default_factory=lambda: dict(n_embd=32, n_layer=2, n_head=2))


def folder_name(hub_id: str) -> str:
    return hub_id.replace("/", "--")


def shapes_corpus(n_scenes: int, seed: int) -> list[str]:
    """Shapes-world chat turns and captions, plus every word the generators know (one text per turn)."""
    from lisalib.constants import IMAGE_TOKEN, chat_prompt
    from lisalib.world import CAPTION_QUESTION, generate_scenes, vocabulary

    texts = [" ".join(vocabulary())]
    for scene in generate_scenes(n_scenes, seed=seed):
        turns = [(qa["question"], qa["answer"]) for qa in scene.questions()]
        turns += [(q["text"], scene.objects[q["target"]].name) for q in scene.reasoning_queries()]
        turns.append((CAPTION_QUESTION, scene.caption()))
        texts += [f"{chat_prompt(q)} {a}" for q, a in turns]
    # LLaMA has no newline piece ("\n" is its byte token <0x0A>) and <image> is an added token: train on neither
    return [text.replace(IMAGE_TOKEN, "").replace("\n", " ") for text in texts]


def llama_tokenizer(texts: list[str], vocab_size: int):
    """A ``LlamaTokenizerFast`` on a BPE learnt from ``texts`` with LLaMA's layout and conventions.

    ``<unk> <s> </s>`` are ids 0-2, the 256 byte-fallback tokens 3-258, learnt pieces after them; then
    ``<image>`` and ``<pad>`` are added as llava-hf's conversion did (an added special token, then the pad).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, LlamaTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    core.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(LLAMA_SPECIALS),
                                                         show_progress=False))
    learnt = json.loads(core.to_str())["model"]
    vocab = {token: i for i, token in enumerate([*LLAMA_SPECIALS, *(f"<0x{b:02X}>" for b in range(256))])}
    for token, _ in sorted(learnt["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    settings = {k: v for k, v in LLAVA_TOKENIZER.items() if k != "pad_token"}
    tokenizer = LlamaTokenizerFast(vocab=vocab, merges=merges, legacy=False, **settings)
    tokenizer.add_tokens([AddedToken(LLAVA_PROCESSOR["image_token"], special=True, normalized=False)],
                         special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": LLAVA_TOKENIZER["pad_token"]})
    return tokenizer


def llava_miniature(recipe: MiniatureRecipe):
    """``(LlavaForConditionalGeneration, LlavaProcessor)``: llava-1.5-7b-hf's config, CLIP and LLaMA shrunk."""
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling

    from lisalib.accounting.registry import model_spec

    tokenizer = llama_tokenizer(shapes_corpus(recipe.corpus_scenes, recipe.seed), recipe.bpe_vocab_size)
    image_id = tokenizer.convert_tokens_to_ids(LLAVA_PROCESSOR["image_token"])
    raw = model_spec(SHIPPED["vlm"]).config
    raw["vision_config"].update(recipe.clip)
    vocab = -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    raw["text_config"].update(recipe.llama, vocab_size=vocab, pad_token_id=tokenizer.pad_token_id)
    raw.update(image_token_index=image_id, pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig.from_dict(raw)
    torch.manual_seed(recipe.seed)
    model = LlavaForConditionalGeneration(config).eval()
    # generation_config.json as the hub's: bos 1, eos 2, pad the <pad> id
    model.generation_config.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                   pad_token_id=tokenizer.pad_token_id)
    side = config.vision_config.image_size  # 336: the hub's preprocessor_config.json, listed above
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}, do_center_crop=True,
        resample=PILImageResampling.BICUBIC, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD, do_convert_rgb=True)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=LLAVA_CHAT_TEMPLATE,
                               patch_size=config.vision_config.patch_size,
                               vision_feature_select_strategy=config.vision_feature_select_strategy, **LLAVA_PROCESSOR)
    return model, processor


def siglip_miniature(recipe: MiniatureRecipe, name: str = SHIPPED["siglip"]):
    """``(SiglipModel, SiglipProcessor)``: so400m/14-384's config with both towers shrunk (image size, patch,
    text length, activation, ids kept); the text side is the shapes world's word-level tokenizer (tiny-siglip's
    conventions: pad = eos = 1, padded to max length) instead of so400m's 32,000-piece SentencePiece model."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    from lisalib.accounting.registry import model_spec
    from lisalib.zoo.pretrain.siglip import build_tokenizer

    tokenizer = build_tokenizer()
    raw = model_spec(name).config
    tokenizer.model_max_length = raw["text_config"]["max_position_embeddings"]  # 64
    raw["text_config"].update(recipe.siglip, vocab_size=len(tokenizer))
    raw["vision_config"].update(recipe.siglip)
    config = SiglipConfig.from_dict(raw)
    torch.manual_seed(recipe.seed)
    model = SiglipModel(config).eval()
    side = config.vision_config.image_size
    image_processor = SiglipImageProcessorPil(size={"height": side, "width": side})  # mean/std 0.5, bicubic
    return model, SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def endoftext_tokenizer():
    """A word-level fast tokenizer over the shapes world's words with SmolLM's and GPT-2's conventions: one
    special token ``<|endoftext|>`` that is bos and eos (SmolLM: id 0), no pad token, nothing added around a
    text, so the chapter's code meets the same ``pad_token_id is None`` as with the hub tokenizers."""
    from transformers import PreTrainedTokenizerFast

    from lisalib.zoo.pretrain.text_lm import word_level_core

    core, _ = word_level_core(["<|endoftext|>", "<unk>"])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False)


def text_lm_miniature(recipe: MiniatureRecipe, name: str):
    """``(causal LM, tokenizer)``: SmolLM-135M's or GPT-2's config with sizes and vocabulary shrunk, ids moved
    to :func:`endoftext_tokenizer`'s (bos = eos = 0, no pad)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from lisalib.accounting.registry import model_spec

    tokenizer = endoftext_tokenizer()
    raw = dict(model_spec(name).config)
    raw.update(recipe.caption_gpt2 if raw["model_type"] == "gpt2" else recipe.caption_lm, vocab_size=len(tokenizer),
               bos_token_id=0, eos_token_id=0)
    model_type = raw.pop("model_type")
    config = AutoConfig.for_model(model_type, **{k: v for k, v in raw.items() if k != "architectures"})
    torch.manual_seed(recipe.seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.bos_token_id = model.generation_config.eos_token_id = 0
    return model, tokenizer


def global_attention_layers(real: list[int], real_depth: int, depth: int) -> list[int]:
    """SAM's global-attention blocks at a reduced depth: the same stride, ending at the last block
    (ViT-B's [2, 5, 8, 11] of 12 becomes [1] of 2: a windowed block, then a global one)."""
    stride = real_depth // len(real)
    return sorted(range(depth - 1, -1, -stride))


def sam_miniature(recipe: MiniatureRecipe):
    """``(SamModel, SamProcessor)``: sam-vit-base's config with a narrow, shallow ViT at the same 1024 px."""
    import torch
    from transformers import SamConfig, SamImageProcessorPil, SamModel, SamProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

    from lisalib.accounting.registry import model_spec

    raw = model_spec(SHIPPED["sam"]).config
    vision, channels = raw["vision_config"], recipe.sam_channels
    depth = recipe.sam_vision["num_hidden_layers"]
    vision["global_attn_indexes"] = global_attention_layers(vision["global_attn_indexes"], vision["num_hidden_layers"],
                                                            depth)
    vision.update(recipe.sam_vision, output_channels=channels, num_pos_feats=channels // 2)
    raw["prompt_encoder_config"]["hidden_size"] = channels
    raw["mask_decoder_config"].update(recipe.sam_decoder, hidden_size=channels, iou_head_hidden_dim=channels)
    config = SamConfig.from_dict(raw)
    torch.manual_seed(recipe.seed)
    model = SamModel(config).eval()
    with torch.no_grad():  # the hub's vision initializer_range (1e-10) expects SAM's weights on top; drawn from
        # scratch it leaves the image embedding at ~1e-21, so the encoder's layers get the model's 0.02 instead
        for module in model.vision_encoder.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.normal_(0.0, config.initializer_range)
    # facebook/sam-vit-base's preprocessor_config.json (as Xenova/sam-vit-base's copy and facebook/sam-vit-huge's):
    # SamImageProcessor, longest_edge 1024, pad to 1024x1024, resample 2 (bilinear), rescale 1/255, ImageNet
    # mean/std; it names no mask sizes, so transformers' defaults apply (256: four times the 64x64 embedding)
    side, low_res = config.vision_config.image_size, 256
    image_processor = SamImageProcessorPil(
        size={"longest_edge": side}, pad_size={"height": side, "width": side}, do_pad=True,
        mask_size={"longest_edge": low_res}, mask_pad_size={"height": low_res, "width": low_res},
        resample=PILImageResampling.BILINEAR, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD, do_convert_rgb=True)
    return model, SamProcessor(image_processor=image_processor)


def fingerprint(recipe: MiniatureRecipe) -> str:
    """A hash of the recipe, the shipped configs it shrinks and the transformers version that saves it."""
    import transformers

    from lisalib.accounting.registry import model_spec

    payload = {"recipe": asdict(recipe), "configs": {k: model_spec(v).config for k, v in SHIPPED.items()},
               "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _summary(out: Path, entries: dict, cached: bool, seconds: float) -> dict:
    from safetensors import safe_open

    models = {}
    for hub_id, folder in entries.items():
        path = out / folder
        with safe_open(path / "model.safetensors", "pt") as weights:
            count = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
        models[hub_id] = {"folder": str(path), "parameters": count,
                          "bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file())}
    return {"hub_map": str(out / MAP_FILE), "cached": cached, "seconds": round(seconds, 2), "models": models}


def build(out_dir: str | os.PathLike, recipe: MiniatureRecipe = MiniatureRecipe()) -> dict:
    """Write both miniatures and ``hub_map.json`` into ``out_dir`` unless a build of this recipe is there.

    The map is written last, so its fingerprint marks a complete build. Returns a summary: the map's path,
    whether it was a cache hit, the seconds taken, and each model's folder, parameter count and bytes.
    """
    from lisalib.accounting.registry import model_spec

    start = time.perf_counter()
    out = Path(out_dir)
    entries = {model_spec(name).hub_id: folder_name(model_spec(name).hub_id) for name in SHIPPED.values()}
    stamp = fingerprint(recipe)
    map_path = out / MAP_FILE
    if map_path.is_file():
        known = json.loads(map_path.read_text())
        if known.get(FINGERPRINT_KEY) == stamp and all(
                (out / f / "config.json").is_file() and (out / f / "model.safetensors").is_file()
                for f in entries.values()):
            return _summary(out, entries, True, time.perf_counter() - start)
        map_path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    builders = {"vlm": llava_miniature, "sam": sam_miniature, "siglip": siglip_miniature,
                "caption_siglip": lambda r: siglip_miniature(r, SHIPPED["caption_siglip"]),
                "caption_lm": lambda r: text_lm_miniature(r, SHIPPED["caption_lm"]),
                "caption_gpt2": lambda r: text_lm_miniature(r, SHIPPED["caption_gpt2"])}
    for role, folder in zip(SHIPPED, entries.values()):
        model, processor = builders[role](recipe)
        shutil.rmtree(out / folder, ignore_errors=True)
        model.save_pretrained(out / folder)
        processor.save_pretrained(out / folder)
    partial = map_path.with_suffix(".tmp")
    partial.write_text(json.dumps({**entries, FINGERPRINT_KEY: stamp}, indent=2) + "\n")
    os.replace(partial, map_path)
    return _summary(out, entries, False, time.perf_counter() - start)


@dataclass
class MiniaturesArgs:
    """The command line of ``python -m lisalib.zoo.miniatures``."""

    out: str = field(metadata={"help": "folder for the miniatures and hub_map.json (point LISALIB_HUB_MAP at it)"})
    json: bool = field(default=False, metadata={"help": "print the summary as JSON"})


def main(argv: list[str] | None = None) -> int:
    from lisalib.cli import format_table

    parser = dataclass_parser(MiniaturesArgs, "python -m lisalib.zoo.miniatures", __doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    summary = build(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    rows = [(hub_id, m["folder"], m["parameters"], m["bytes"]) for hub_id, m in summary["models"].items()]
    print(format_table(rows, ("hub id", "folder", "parameters", "bytes")))
    print(f"{'cached' if summary['cached'] else 'built'} in {summary['seconds']} s; "
          f"export LISALIB_HUB_MAP={summary['hub_map']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
