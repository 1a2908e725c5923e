"""Chapter 3's training: frozen backbones, trainable bridges (and optionally LoRA), LISA's losses.

``python -m lisalib.lisa.train`` (also under ``torchrun`` / ``accelerate launch``) trains a
:class:`LisaForReasoningSegmentation` on a ReasonSeg-format folder. Argument names follow the seed design
(``--vlm_name``, ``--sam_name``, ``--epochs``, ``--batch_size``, ``--lr``, ``--dtype``, ``--use_vlm_vision``,
``--no_quantization``, ``--use_lora``); ``--profile tiny|real`` fills in everything else. The loop,
checkpoints and arguments shared with other chapters are in :mod:`lisalib.training`; this module holds
what is LISA's: the data, the collation, the model and its loss.

What a run leaves in ``--output_dir``::

    run.json                       the arguments and the base checkpoints' fingerprints
    log.jsonl                      one JSON line per optimizer step (loss parts, lr, seconds)
    checkpoints/checkpoint_50/     trainable weights + optimizer, schedule and RNG state (resumable)
    final/                         trainable weights only: what ``lisalib.lisa.evaluate --checkpoint`` reads
    summary.json                   the benchmark: time per step, samples/s, peak memory, trainable counts

Only trainable tensors are saved (for the ``seg_row`` group: the two ``<SEG>`` rows), so a checkpoint of a
7B run is megabytes, not gigabytes; interrupted + resumed == uninterrupted, bit for bit on a CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from lisalib.cli import arg, dataclass_parser
from lisalib.constants import LABEL_IGNORE_INDEX, SEG_TOKEN
from lisalib.lisa.losses import total_loss
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.lisa.processing import LisaProcessor
from lisalib.profile import get_profile
from lisalib.reasonseg.dataset import ReasonSegDataset, answer_templates, question
from lisalib.training import checkpoints
from lisalib.training.arguments import TORCH_DTYPES, TrainingArguments
from lisalib.training.loop import SampleKey, TrainingStopped, TrainingTask, read_log, train_loop  # noqa: F401 (read_log: chapter 3)
from lisalib.training.recipes import DEFAULT_GROUPS, LORA_DEFAULTS, LoraDefaults, lora_config


# ----- arguments ---------------------------------------------------------------------------------
@dataclass
class TrainArgs(TrainingArguments):
    """Everything that determines a run. ``None`` means "the profile decides"."""

    data: str = field(default="data/reasonseg_synth", **arg(
        "ReasonSeg-format root with a train/ folder (written from the shapes world if missing)"))
    profile: Literal["tiny", "real"] | None = field(default=None, **arg(
        "tiny: the offline zoo on a CPU; real: hub models on a GPU (None: what this machine has)"))
    vlm_name: str | None = field(default=None, **arg("zoo name, directory or hub id (None: the profile's)"))
    sam_name: str | None = field(default=None, **arg("zoo name, directory or hub id (None: the profile's)"))
    vision_source: Literal["vlm", "dual", "sam"] = field(default="vlm", **arg(
        "vlm: Modified LISA (one CLIP pass); dual: LISA (CLIP + SAM's ViT); sam: one SAM pass"))
    seg_hidden_state: Literal["preceding", "seg"] = field(default="preceding", **arg(
        "hidden state that prompts SAM: the token before <SEG> (LISA) or <SEG> itself"))
    seg_prompt: Literal["embedding", "point", "both"] = field(default="embedding", **arg(
        "how the <SEG> state prompts SAM: LISA's learned token (embedding), a click predicted from it and "
        "embedded by SAM's prompt encoder (point), or both"))
    location_loss_weight: float = field(default=1.0, **arg(
        "weight of the point route's L1 loss towards the mask's inside-centre (point / both only)"))
    load_in_4bit: bool | None = field(default=None, **arg(
        "load the LLM in NF4 with bitsandbytes (None: the profile's choice)", nargs="?", const=True))
    load_in_8bit: bool = field(default=False, **arg("load the LLM in LLM.int8() with bitsandbytes (002's 8bit)"))
    use_lora: bool = field(default=False, **arg("add LoRA adapters (peft) to the LLM's attention projections"))
    lora_r: int = field(default=LORA_DEFAULTS.r, **arg("LoRA rank (LISA's)"))
    lora_alpha: int = field(default=LORA_DEFAULTS.alpha, **arg("LoRA alpha (LISA's)"))
    lora_dropout: float = field(default=LORA_DEFAULTS.dropout, **arg("LoRA dropout (LISA's)"))
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_DEFAULTS.targets), **arg(
        "module names of the LLM to adapt, space- or comma-separated (LISA: q_proj v_proj)"))
    trainable: list[str] = field(default_factory=lambda: list(DEFAULT_GROUPS), **arg(
        "trainable groups, space- or comma-separated: projections, seg_row, mask_decoder, llm "
        "(lora follows --use_lora)"))
    gradient_checkpointing: bool = field(default=False, **arg("recompute the LLM's activations in backward"))
    n_train: int = field(default=1000, **arg("samples to synthesise if DATA/train is missing"))

    def __post_init__(self):  # given as lists (command line) or tuples (Python); kept as tuples
        self.trainable = _names(self.trainable)
        self.lora_target_modules = _names(self.lora_target_modules)

    def resolved(self) -> "TrainArgs":
        """A copy with the profile's choices filled in and everything checked."""
        profile = get_profile(self.profile)
        values = asdict(self)
        values.update(profile=profile.name, vlm_name=self.vlm_name or profile.vlm, sam_name=self.sam_name or profile.sam)
        if self.dtype is None:
            values["dtype"] = {torch_name: name for name, torch_name in TORCH_DTYPES.items()}[profile.dtype]
        if self.load_in_4bit is None:
            values["load_in_4bit"] = profile.load_in_4bit
        if self.use_lora and "lora" not in self.trainable:
            values["trainable"] = (*self.trainable, "lora")
        args = TrainArgs(**values)
        args.command = getattr(self, "command", None)  # type: ignore[attr-defined]
        args.check()
        return args

    def check(self) -> None:
        from lisalib.lisa.processing import VISION_SOURCES
        from lisalib.training.recipes import check_groups

        if self.vision_source not in VISION_SOURCES:
            raise ValueError(f"vision_source must be one of {VISION_SOURCES}, got {self.vision_source!r}")
        super().check()
        if "lora" in self.trainable and not self.use_lora:
            raise ValueError("trainable group 'lora' needs --use_lora")
        if not self.trainable:
            raise ValueError("nothing to train: give at least one trainable group")
        check_groups(self.trainable)
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("choose one of 4-bit and 8-bit quantization")
        if (self.load_in_4bit or self.load_in_8bit) and "llm" in self.trainable:
            raise ValueError("trainable group 'llm' cannot train 4-bit weights: pass --no_quantization, "
                             "or train the LLM through LoRA (--use_lora)")


def _names(values) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    return tuple(name.strip() for value in values for name in str(value).split(",") if name.strip())


# ----- data --------------------------------------------------------------------------------------
class ReasonSegTrainSet(Dataset):
    """ReasonSeg samples turned into (image, query, answer, mask), looked up by :class:`SampleKey`.

    Which of a sample's phrases is asked and which of LISA's answer templates is forced depend only on
    (seed, epoch, index) -- not on a global RNG -- so resuming mid-epoch replays identical samples.
    """

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0, seg_token: str = SEG_TOKEN):
        self.samples = ReasonSegDataset(root, split)
        self.seed = seed
        self.answers = answer_templates(seg_token)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: SampleKey | None) -> dict | None:
        if key is None:  # padding of a process's slice (GlobalBatchSampler)
            return None
        item = self.samples[key.index]
        rng = np.random.default_rng([self.seed, key.epoch, key.index])
        text = item["texts"][int(rng.integers(len(item["texts"])))]
        return {
            "image": item["image"],
            "query": question(text, item["is_sentence"], image_token="").strip(),
            "answer": self.answers[int(rng.integers(len(self.answers)))],
            "mask": item["mask"],
            "is_sentence": item["is_sentence"],
            "epoch": key.epoch,
            "weight": key.weight,
        }


class Collator:
    """Samples -> a LisaProcessor batch (teacher-forced answer with one <SEG>, its mask), plus the counts the
    loss terms average over: answer tokens (CE) and masks (BCE, Dice); a stand-in counts for nothing."""

    def __init__(self, processor: LisaProcessor, vision_source: str):
        self.processor = processor
        self.vision_source = vision_source

    def __call__(self, items: list[dict | None]) -> dict:
        present = [s for s in items if s is not None]
        samples = [s for s in present if s["weight"]] or present[:1]
        batch = dict(self.processor([s["image"] for s in samples], [s["query"] for s in samples],
                                    answers=[s["answer"] for s in samples], masks=[s["mask"] for s in samples],
                                    vision_source=self.vision_source, require_seg=True))
        real = bool(samples[0]["weight"])
        tokens = int((batch["labels"][:, 1:] != LABEL_IGNORE_INDEX).sum())  # the CE's shifted targets
        masks = sum(int(m.shape[0]) for m in batch["gt_masks"])
        batch["counts"] = {"samples": len(samples) if real else 0, "tokens": tokens if real else 0,
                           "masks": masks if real else 0}
        batch["epoch"] = samples[0]["epoch"]
        return batch


def ensure_train_split(root: str | Path, n: int, seed: int, progress: bool = True) -> Path:
    """DATA/train, written from the shapes world first if it does not exist (seconds for 1,000 samples)."""
    folder = Path(root) / "train"
    if folder.is_dir() and any(folder.glob("*.json")):
        return folder
    from lisalib.reasonseg.synth import write_split

    if progress:
        print(f"{folder} not found: writing {n} synthetic ReasonSeg training samples (seed {seed}) ...", flush=True)
    write_split(root, "train", n, seed=seed)
    return folder


# ----- model -------------------------------------------------------------------------------------
def build_model(args: TrainArgs, device: torch.device | str | None = None) -> LisaForReasoningSegmentation:
    """Backbones from the zoo / hub, bridges, optional LoRA; trainable groups set and kept in float32."""
    model = LisaForReasoningSegmentation.from_parts(
        args.vlm_name, args.sam_name, args.vision_source, load_in_4bit=bool(args.load_in_4bit),
        load_in_8bit=bool(getattr(args, "load_in_8bit", False)),
        dtype=TORCH_DTYPES[args.dtype], device=device,
        seg_hidden_state=args.seg_hidden_state, seg_prompt=args.seg_prompt,
        location_loss_weight=args.location_loss_weight)  # frozen backbones in the compute dtype
    return prepare_for_training(model, args)


def prepare_for_training(model: LisaForReasoningSegmentation, args: TrainArgs) -> LisaForReasoningSegmentation:
    """Optional LoRA, the trainable groups, fp32 master copies of what trains, gradient checkpointing."""
    if args.use_lora:
        add_lora(model, args)
    model.trainable_counts = model.set_trainable(args.trainable)  # per group, seg_row as its two rows
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # fp32 master weights; autocast does the low-precision compute
    if args.gradient_checkpointing:
        model.backbone.language_model(model.vlm).gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def add_lora(model: LisaForReasoningSegmentation, args: TrainArgs) -> None:
    """LoRA adapters on the language model's attention projections (LISA: r 8, alpha 16, q/v), via peft;
    with the ``seg_row`` group the ``<SEG>`` rows join them as trainable tokens (one peft injection)."""
    from peft import inject_adapter_in_model

    lora = LoraDefaults(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                        targets=tuple(args.lora_target_modules))
    seg = model.config.seg_token_id if "seg_row" in args.trainable else None
    # the family's language model only (LLaVA: LM_SCOPE); LoRA stays out of the vision tower, which has q_proj too
    inject_adapter_in_model(lora_config(lora, scope=model.backbone.lm_scope, seg_token_id=seg), model.vlm)


def trainable_state(model: LisaForReasoningSegmentation) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: trainable tensors, the ``<SEG>`` rows as ``<matrix>.weight@seg_row``."""
    return checkpoints.trainable_state(model)


def load_trainable_state(model: LisaForReasoningSegmentation, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`trainable_state`; every saved tensor must find its parameter."""
    checkpoints.load_trainable_state(model, state, token_ids=[model.config.seg_token_id])


def optimizer_for(model: LisaForReasoningSegmentation, args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW with LISA's betas (0.9, 0.95); no weight decay on the ``<SEG>`` rows."""
    seg_ids = {id(w) for w in model.trainable_groups()["seg_row"]}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) not in seg_ids], "weight_decay": args.weight_decay}]
    if any(id(p) in seg_ids for p in params):
        groups.append({"params": [p for p in params if id(p) in seg_ids], "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))


def fingerprint(name_or_path: str) -> str | None:
    """sha256 (first 16 hex) of a local checkpoint's weights: trained bridges only fit the base they saw."""
    from lisalib.backbones.traditional import parse_spec
    from lisalib.zoo import ZooError, resolve

    pair = parse_spec(name_or_path)  # a traditional composite named by its two parts: both parts' weights
    if pair is not None:
        parts = [fingerprint(part) for part in pair]
        return None if None in parts else hashlib.sha256("+".join(parts).encode()).hexdigest()[:16]
    try:
        path = Path(resolve(name_or_path))
    except ZooError:
        return None
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


class LisaTask(TrainingTask):
    """Chapter 3's run for :func:`lisalib.training.loop.train_loop`: LISA's CE + 2 BCE + 0.5 Dice, plus the
    point route's weighted L1 when ``seg_prompt`` uses it."""

    def __init__(self, args: TrainArgs):
        self.args = args
        self.description = f"train {args.vision_source}"
        self.model: LisaForReasoningSegmentation | None = None

    def build_model(self, device):
        self.model = build_model(self.args, device=device)
        return self.model

    def trainable_counts(self) -> dict[str, int]:
        return dict(self.model.trainable_counts)

    def dataset(self, is_main_process: bool) -> ReasonSegTrainSet:
        args = self.args
        if is_main_process:
            ensure_train_split(args.data, args.n_train, args.seed, progress=args.progress)
        return ReasonSegTrainSet(args.data, "train", seed=args.seed, seg_token=self.model.processor.seg_token)

    def collate(self, items):
        return Collator(self.model.processor, self.args.vision_source)(items)

    def loss(self, model, batch, scales):
        out = model(**batch)
        ce, bce, dice = out.ce_loss * scales["tokens"], out.bce_loss * scales["masks"], out.dice_loss * scales["masks"]
        terms = {"ce": ce, "bce": bce, "dice": dice}
        if out.location_loss is not None:
            terms["location"] = out.location_loss * scales["masks"]
        loss = total_loss(ce, bce, dice, self.model.config.loss_weights,
                          terms.get("location", 0.0))  # out.loss exactly, on one process
        return loss, {"loss": loss, **terms}

    def optimizer(self, model):
        return optimizer_for(model, self.args)

    def trainable_state(self, model):
        return trainable_state(model)

    def load_trainable_state(self, model, state):
        load_trainable_state(model, state)

    def record(self) -> dict:
        args = self.args
        return {"command": getattr(args, "command", None),
                "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(args).items()},
                "base": {"vlm": fingerprint(args.vlm_name), "sam": fingerprint(args.sam_name)}}

    def summary_fields(self) -> dict:
        return {"vision_source": self.args.vision_source}


def notebook_args(profile, vision_source: str, data: str | Path, output_dir: str | Path | None = None,
                  seg_prompt: str | None = None, **overrides) -> TrainArgs:
    """Chapter 3's in-notebook recipe on ``profile`` (chapter 4 reuses it to train in a fresh session).

    Every size comes from the profile: steps, micro-batch and accumulation (1 x 8 on a T4), 4-bit; the
    tiny profile uses the point route its shipped runs use, the real profile LISA's embedding. The run
    folder defaults to ``<profile.runs_dir>/nb03-<design>-<prompt>``; with ``resume`` a finished run is
    returned as it is, an interrupted one continued.
    """
    seg_prompt = seg_prompt or ("point" if profile.name == "tiny" else "embedding")
    values = dict(
        profile=profile.name, data=str(data), vision_source=vision_source, seg_prompt=seg_prompt, use_lora=True,
        load_in_4bit=profile.load_in_4bit, seed=0, save_every=50, progress=True, resume=True,
        max_steps=profile.train_steps, batch_size=profile.train_batch_size, grad_accum=profile.grad_accum,
        lr=1e-3 if profile.name == "tiny" else 3e-4, warmup_steps=min(20, profile.train_steps),
        gradient_checkpointing=profile.name == "real",
        output_dir=str(output_dir or Path(profile.runs_dir) / f"nb03-{vision_source}-{seg_prompt}"))
    values.update(overrides)
    return TrainArgs(**values)


def train(args: TrainArgs, stop_after: int | None = None) -> dict:
    """Run (or resume) training; returns the benchmark summary. ``stop_after`` simulates an interruption.

    Raises :class:`TrainingStopped` on a NaN/inf loss after saving the last good state.
    """
    args = args.resolved()
    return train_loop(args, LisaTask(args), stop_after=stop_after)


# ----- command line ------------------------------------------------------------------------------
def build_parser():
    """``TrainArgs`` as flags, plus the seed design's aliases and ``--json``."""
    parser = dataclass_parser(TrainArgs, "python -m lisalib.lisa.train", __doc__)
    alias = dict(dest="vision_source", action="store_const", default=argparse.SUPPRESS)
    parser.add_argument("--use_vlm_vision", const="vlm", help="Modified LISA: SAM's decoder reads the VLM's "
                        "vision features (one pass)", **alias)
    parser.add_argument("--use_sam_vision", const="sam", help="the LLM reads SAM's vision features (one pass)", **alias)
    parser.add_argument("--dual_vision", const="dual", help="original LISA: CLIP for the LLM, SAM's ViT for the "
                        "mask (two passes)", **alias)
    parser.add_argument("--no_quantization", dest="load_in_4bit", action="store_false", default=argparse.SUPPRESS,
                        help="keep the LLM unquantized")
    # 002's flag names, each another spelling of one existing setting (one field, one name in run.json)
    parser.add_argument("--vlm_model_name", dest="vlm_name", default=argparse.SUPPRESS,
                        help="002's name for --vlm_name (any VLM family: llava, smolvlm, qwen2_vl, paligemma)")
    parser.add_argument("--use_vlm", const="vlm", help="002's VLM mode = --use_vlm_vision (SAM's decoder reads the "
                        "VLM's vision features)", **alias)
    parser.add_argument("--vlm_use_lora", dest="use_lora", action="store_true", default=argparse.SUPPRESS,
                        help="002's name for --use_lora")
    for name in ("r", "alpha"):
        parser.add_argument(f"--vlm_lora_{name}", dest=f"lora_{name}", type=int, default=argparse.SUPPRESS,
                            help=f"002's name for --lora_{name}")
    parser.add_argument("--vlm_lora_dropout", dest="lora_dropout", type=float, default=argparse.SUPPRESS,
                        help="002's name for --lora_dropout")
    parser.add_argument("--vlm_quantization", choices=("4bit", "8bit"), default=argparse.SUPPRESS,
                        help="002's quantization flag: 4bit = --load_in_4bit, 8bit = --load_in_8bit")
    parser.add_argument("--vlm_freeze", action="store_true", default=argparse.SUPPRESS,
                        help="002's frozen VLM: no LoRA and no 'llm' group (the default recipe already is)")
    parser.add_argument("--json", action="store_true", help="print the benchmark summary as JSON")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser().parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    args.json = extra.json  # type: ignore[attr-defined]
    quantization = getattr(extra, "vlm_quantization", None)
    if quantization is not None:
        args.load_in_4bit, args.load_in_8bit = quantization == "4bit", quantization == "8bit"
    if getattr(extra, "vlm_freeze", False) and (args.use_lora or "llm" in args.trainable):
        raise SystemExit("error: --vlm_freeze contradicts --use_lora / the 'llm' group")
    threads = os.environ.get("OMP_NUM_THREADS")  # part of the recipe on a CPU: it changes the digits
    args.command = (f"OMP_NUM_THREADS={threads} " if threads else "") + "python -m lisalib.lisa.train " + " ".join(argv)  # type: ignore[attr-defined]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        summary = train(args)
    except TrainingStopped as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under torchrun / accelerate launch: one report
        return 0
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['step']} steps, {summary['seconds_per_step']} s/step, {summary['samples_per_second']} samples/s, "
              f"peak memory {summary['peak_memory_bytes'] / 2**20:.0f} MiB, "
              f"{summary['trainable_total']:,} trainable parameters -> {Path(args.output_dir) / 'final'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
