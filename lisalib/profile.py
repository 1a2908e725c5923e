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


def get_profile(name: str | None = None) -> Profile:
    """Return the :class:`Profile` chosen by ``name``, the environment, or the hardware."""
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
            notes={"why": "offline models this repo trains itself on the shapes world; runs on 2 CPU cores"},
        )
    gpu = _cuda_available()
    bf16 = False
    if gpu:
        import torch

        bf16 = torch.cuda.is_bf16_supported()
    return Profile(
        name="real",
        vlm="llava-hf/llava-1.5-7b-hf",
        sam="facebook/sam-vit-base",
        device="cuda" if gpu else "cpu",
        dtype=("bfloat16" if bf16 else "float16") if gpu else "float32",
        load_in_4bit=gpu,  # NF4 + double quant keeps the 7B VLM near 4 GB, inside an 8 GB card
        train_steps=500,
        eval_samples=200,
        ceiling_samples=400,
        ceiling_steps=800,
        notes={"why": "hub models; needs network for the first download and a CUDA GPU for 4-bit"},
    )
