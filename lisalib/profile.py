"""Run profiles: the same notebook code drives tiny offline models on a CPU and real hub models on a GPU.

A notebook calls :func:`get_profile` once at the top; every model id, image size, quantization flag and
step budget it uses afterwards comes from the returned :class:`Profile`, so switching between CI and
Colab is a matter of environment, never of editing cells.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

PROFILE_ENV = "LISALIB_PROFILE"
PROFILE_NAMES = ("tiny", "real")
ALLOW_CPU_ENV = "LISALIB_ALLOW_CPU"  # opt-in: the real profile's hub models on a CPU (about 28 GB for LLaVA-7B)
HUB_MAP_ENV = "LISALIB_HUB_MAP"  # hub ids -> local miniatures (python -m lisalib.zoo.miniatures): CI's real profile
RUNS_ENV = "LISALIB_RUNS"  # where chapters 3-4 keep training runs (point it at Google Drive on Colab)


class ProfileError(ValueError):
    """Raised for a profile name that is neither ``tiny`` nor ``real``."""


@dataclass(frozen=True)
class Profile:
    """Everything a chapter needs to know about the models and budgets it should use."""

    name: str
    vlm: str  # zoo name, local directory or hub id understood by lisalib.zoo.load_vlm
    sam: str  # same, for lisalib.zoo.load_sam
    device: str
    dtype: str  # "float32" on CPU, "float16"/"bfloat16" on GPU
    load_in_4bit: bool  # quantize the VLM with bitsandbytes NF4 (real profile on an 8 GB GPU)
    train_steps: int
    eval_samples: int
    ceiling_samples: int  # chapter 4: training samples of the mask-path ceilings (lisalib.lisa.ceiling)
    ceiling_steps: int
    train_batch_size: int = 8  # chapter 3: micro-batch and accumulation (batch = their product)
    grad_accum: int = 1
    eval_batch_size: int = 8  # chapter 4: images per evaluation batch
    encode_chunk: int = 32  # chapter 2/4: images per vision-encoder call
    max_new_tokens: int = 4  # chapter 0: answer length of the VQA check
    answer_suffix: str = ""  # chapter 0: instruction appended to each question (LLaVA-1.5's short-answer prompt)
    runs_dir: str = "runs"  # chapters 3-4: training runs (LISALIB_RUNS); never deleted by a notebook
    smoke: bool = False  # real code paths on random-weight miniatures (LISALIB_HUB_MAP): budgets cut to seconds
    siglip: str = "tiny-siglip"  # chapter 5: the multi-view tower (lisalib.zoo.load_siglip); real: LaViDa's so400m
    caption_vision: str = "tiny-siglip"  # chapter 6: the captioners' frozen tower; real: google/siglip-base-patch16-224
    caption_lm: str = "tiny-lm"  # chapter 6: the prefix model's decoder-only LM; real: HuggingFaceTB/SmolLM-135M
    caption_ved_lm: str = "tiny-gpt2"  # chapter 6: the cross-attention decoder; real: openai-community/gpt2
    caption_steps: int = 0  # chapter 6: steps per variant in the notebook; 0 = the shipped runs (make caption)
    notes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken CUDA install: behave like a CPU machine
        return False


def resolve_profile_name(name: str | None = None) -> str:
    """Explicit name > ``LISALIB_PROFILE`` > ``real`` when a CUDA GPU is present > ``tiny``."""
    if name is None:
        name = os.environ.get(PROFILE_ENV) or None
    if name is None:
        return "real" if _cuda_available() else "tiny"
    cleaned = str(name).strip().lower()
    if cleaned not in PROFILE_NAMES:
        raise ProfileError(
            f"unknown profile {name!r}: use one of {', '.join(PROFILE_NAMES)} "
            f"(set {PROFILE_ENV}=tiny for the offline CPU models, {PROFILE_ENV}=real for hub models on a GPU)"
        )
    return cleaned


def get_profile(name: str | None = None, require_gpu: bool = True) -> Profile:
    """Return the :class:`Profile` chosen by ``name``, the environment, or the hardware.

    ``require_gpu=False`` returns the real profile's settings without a GPU, to read its budgets (chapter 3
    prints what the real profile would cost on a T4); nothing should be loaded with it.
    """
    resolved = resolve_profile_name(name)
    if resolved == "tiny":
        return Profile(
            name="tiny",
            vlm="tiny-llava",
            sam="tiny-sam",
            device="cpu",
            dtype="float32",
            load_in_4bit=False,
            train_steps=150,  # chapter 3: optimizer steps per model inside the notebook
            eval_samples=200,  # chapter 4: the whole synthetic val split (ReasonSeg val has 200 too)
            ceiling_samples=400,
            ceiling_steps=500,  # four mask-path runs in chapter 4, about 35 s each on one thread
            runs_dir=os.environ.get(RUNS_ENV) or "runs",
            notes={"why": "offline models this repo trains itself on the shapes world; runs on 2 CPU cores"},
        )
    gpu = _cuda_available()
    smoke = bool(os.environ.get(HUB_MAP_ENV))
    opted_in = os.environ.get(ALLOW_CPU_ENV, "").strip().lower() in ("1", "true", "yes")
    if require_gpu and not gpu and not smoke and not opted_in:
        raise ProfileError(
            "the real profile needs a CUDA GPU and none is visible: it loads llava-hf/llava-1.5-7b-hf (7B "
            "parameters, about 28 GB in float32 on a CPU, 4 GB in NF4 on a GPU). On Colab choose Runtime > "
            f"Change runtime type > T4 GPU; to run it on the CPU anyway set {ALLOW_CPU_ENV}=1; for the offline "
            f"models use {PROFILE_ENV}=tiny")
    bf16 = False
    if gpu:
        import torch

        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)  # a T4 only emulates bf16: fp16 there
    budget = dict(train_steps=2, eval_samples=4, ceiling_samples=4, ceiling_steps=2) if smoke else dict(
        train_steps=60, eval_samples=200, ceiling_samples=200, ceiling_steps=100)
    return Profile(
        name="real",
        vlm="llava-hf/llava-1.5-7b-hf",
        sam="facebook/sam-vit-base",
        device="cuda" if gpu else "cpu",
        dtype=("bfloat16" if bf16 else "float16") if gpu else "float32",
        load_in_4bit=gpu,  # NF4 + double quant keeps the 7B VLM near 4 GB, inside an 8 GB card
        **budget,
        train_batch_size=1,
        grad_accum=8,
        eval_batch_size=1,  # SAM ViT-B at 1024 px: one image at a time keeps activations small on a T4
        encode_chunk=2,
        max_new_tokens=8,
        answer_suffix="Answer the question using a single word or phrase.",  # LLaVA-1.5's VQA prompt
        runs_dir=os.environ.get(RUNS_ENV) or "runs",
        smoke=smoke,
        siglip="google/siglip-so400m-patch14-384",
        caption_vision="google/siglip-base-patch16-224",
        caption_lm="HuggingFaceTB/SmolLM-135M",
        caption_ved_lm="openai-community/gpt2",
        caption_steps=2 if smoke else 600,
        notes={"why": "hub models; needs network for the first download and a CUDA GPU for 4-bit"
                      + ("; smoke run on random-weight miniatures" if smoke else "")},
    )
