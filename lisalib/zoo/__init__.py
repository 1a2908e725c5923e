"""One loader per model family, for zoo names, local directories and hub ids alike.

``load_vlm("tiny-llava")`` and ``load_vlm("llava-hf/llava-1.5-7b-hf")`` run the same code: resolve
the name to a directory or hub id, then the standard transformers ``from_pretrained`` of the real
class (``LlavaForConditionalGeneration``, ``SamModel`` and their processors). The tiny zoo is this
repository's own pretrained checkpoints, shipped inside the package, so CI never touches a hub.

With ``LISALIB_HUB_MAP`` set (a ``hub_map.json`` or its folder, from ``python -m lisalib.zoo.miniatures``),
hub ids resolve to the local folders it lists, and a hub id it does not list is an error, never a download.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from lisalib.profile import HUB_MAP_ENV  # "LISALIB_HUB_MAP", defined once with the other environment switches

ZOO_DIR = Path(__file__).resolve().parent / "checkpoints"
BACKBONES_DIR = ZOO_DIR / "backbones"  # pretrained tiny backbones (python -m lisalib.zoo build)
RUNS_DIR = ZOO_DIR / "runs"  # trained runs on top of them (trainable tensors only, python -m lisalib.lisa.train)
ZOO_MODELS: dict[str, str] = {
    "tiny-llava": "vlm",  # LlavaForConditionalGeneration + LlavaProcessor, shapes-world QA
    "tiny-sam": "sam",  # SamModel + SamProcessor, shapes-world masks from point/box prompts
    "tiny-lm": "text_lm",  # LlamaForCausalLM (SmolLM-135M's code paths) + word-level fast tokenizer (chapter 6)
    "tiny-gpt2": "text_lm",  # GPT2LMHeadModel, same tokenizer: chapter 6's cross-attention decoder
    "tiny-siglip": "siglip",  # SiglipModel + SiglipProcessor: image/caption and patch/name alignment (chapters 5, 6)
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ZooError(ValueError):
    """A model name that is neither a zoo name, an existing directory, nor a hub id."""


def zoo_path(name: str) -> Path:
    """Directory of a zoo model; raises :class:`ZooError` if the name is unknown or not built."""
    if name not in ZOO_MODELS:
        raise ZooError(f"unknown zoo model {name!r}; the zoo has: {', '.join(ZOO_MODELS)}")
    path = BACKBONES_DIR / name
    if not (path / "config.json").is_file():
        raise ZooError(f"zoo model {name!r} is not built at {path}; run: python -m lisalib.zoo build --only {name}")
    return path


def _hub_map_file() -> Path | None:
    value = os.environ.get(HUB_MAP_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    return path / "hub_map.json" if path.is_dir() else path


def hub_map() -> dict[str, str]:
    """``{hub id: local folder}`` of the map ``LISALIB_HUB_MAP`` names (relative folders resolved against
    the map's directory; keys starting with ``_`` are the map's own metadata); ``{}`` when it is unset."""
    path = _hub_map_file()
    if path is None:
        return {}
    if not path.is_file():
        raise ZooError(f"{HUB_MAP_ENV}={os.environ[HUB_MAP_ENV]!r}: no hub map at {path}")
    entries = json.loads(path.read_text())
    return {hub_id: str(path.parent / folder) for hub_id, folder in entries.items() if not hub_id.startswith("_")}


def resolve(name_or_path: str | os.PathLike) -> str:
    """Map a zoo name, a local directory or a hub id to what ``from_pretrained`` takes."""
    name = os.fspath(name_or_path)
    if name in ZOO_MODELS:
        return str(zoo_path(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooError(f"directory {path} has no config.json; is it a save_pretrained() output?")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ZooError(f"local model directory {name!r} does not exist")
    if _HUB_ID.match(name):
        if _hub_map_file() is None:
            return name
        mapped = hub_map()  # CI: every hub id must be a local miniature
        if name not in mapped:
            raise ZooError(f"hub id {name!r} is not in the hub map {_hub_map_file()} ({HUB_MAP_ENV}); it lists: "
                           f"{', '.join(mapped) or 'nothing'}")
        return resolve(mapped[name])
    raise ZooError(
        f"{name!r} is not a zoo model ({', '.join(ZOO_MODELS)}), an existing directory, or a hub id like 'owner/model'"
    )


def quantization_config(load_in_4bit: bool = False, load_in_8bit: bool = False,
                        compute_dtype: torch.dtype = torch.float32, skip_modules: list[str] | None = None):
    """The bitsandbytes settings this tutorial uses: NF4 with double quantization, or LLM.int8().

    ``skip_modules`` replaces transformers' own skip list rather than extending it, so ``lm_head`` is
    added back here: a custom list would otherwise quantize the output layer too.
    """
    if load_in_4bit and load_in_8bit:
        raise ValueError("choose one of load_in_4bit and load_in_8bit")
    if not (load_in_4bit or load_in_8bit):
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=load_in_4bit,
        load_in_8bit=load_in_8bit,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=None if skip_modules is None else sorted({*skip_modules, "lm_head"}),
    )


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}: use float32, float16 or bfloat16") from None


def _load(model_class, processor_class, name_or_path, *, dtype=None, load_in_4bit=False, load_in_8bit=False,
          device_map=None, skip_modules=None):
    source = resolve(name_or_path)
    torch_dtype = _dtype(dtype)
    kwargs = {"dtype": torch_dtype}
    quant = quantization_config(load_in_4bit, load_in_8bit, torch_dtype, skip_modules)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = device_map or ({"": 0} if torch.cuda.is_available() else {"": "cpu"})
    elif device_map is not None:
        kwargs["device_map"] = device_map
    model = model_class.from_pretrained(source, **kwargs)
    processor = getattr(processor_class, "from_pretrained", processor_class)(source)
    model.eval()
    return model, processor


def load_vlm(name_or_path: str = "tiny-llava", **kwargs):
    """``(model, processor)`` of any VLM family for a zoo name, directory or hub id: LLaVA
    (``LlavaForConditionalGeneration``, ``LlavaProcessor``, as before), SmolVLM/Idefics3, Qwen2-VL, PaliGemma
    (``AutoModelForImageTextToText`` and the family's processor) or a traditional composite
    (:mod:`lisalib.backbones`), saved or named ``traditional:ENCODER+LLM`` (assembled on the fly).

    Keyword arguments: ``dtype``, ``load_in_4bit`` (NF4 + double quant), ``load_in_8bit``,
    ``device_map``, ``skip_modules`` (kept in full precision when quantizing).
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, LlavaForConditionalGeneration

    from lisalib.backbones import LlavaAdapter, adapter_for
    from lisalib.backbones.traditional import load_traditional, parse_spec

    pair = parse_spec(name_or_path)  # "traditional:ENCODER+LLM": assembled here, seeded (unquantized only)
    if pair is not None:
        if kwargs.get("load_in_4bit") or kwargs.get("load_in_8bit"):
            raise ValueError(f"{name_or_path!r}: quantize a traditional composite after saving it (save_pretrained)")
        return load_traditional(*pair, dtype=kwargs.get("dtype"))
    adapter = adapter_for(AutoConfig.from_pretrained(resolve(name_or_path)))
    model_class = LlavaForConditionalGeneration if isinstance(adapter, LlavaAdapter) else AutoModelForImageTextToText
    return _load(model_class, adapter.load_processor, name_or_path, **kwargs)


def load_text_lm(name_or_path: str = "tiny-lm", **kwargs):
    """``(causal LM, tokenizer)`` for a zoo name, directory or hub id (``AutoModelForCausalLM``; same keywords)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return _load(AutoModelForCausalLM, AutoTokenizer, name_or_path, **kwargs)


def load_siglip(name_or_path: str = "tiny-siglip", **kwargs):
    """``(SiglipModel, SiglipProcessor)`` for a zoo name, directory or hub id (same keywords)."""
    from transformers import SiglipModel, SiglipProcessor

    return _load(SiglipModel, SiglipProcessor, name_or_path, **kwargs)


def load_zoo_model(name: str, **kwargs):
    """The loader of a zoo model's family: ``load_vlm``, ``load_sam``, ``load_text_lm`` or ``load_siglip``."""
    loaders = {"vlm": load_vlm, "sam": load_sam, "text_lm": load_text_lm, "siglip": load_siglip}
    return loaders[ZOO_MODELS[name]](name, **kwargs)


def load_sam(name_or_path: str = "tiny-sam", **kwargs):
    """``(SamModel, SamProcessor)`` for a zoo name, directory or hub id (same keywords as :func:`load_vlm`)."""
    from transformers import SamModel, SamProcessor

    return _load(SamModel, SamProcessor, name_or_path, **kwargs)
