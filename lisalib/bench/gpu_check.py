"""One GPU check, prepared for the day an accelerator is lent: three measurements the CPU chapters predict.

1. ``nf4_footprint``: LLaVA-1.5-7B with random weights in NF4 + double quant against chapter 1's prediction
   from the same config (:mod:`lisalib.accounting.storage`);
2. ``train_step``: peak memory and time of one Modified LISA training step (4-bit VLM, LoRA r 8 on q/v, the
   ``<SEG>`` row, bridges, SAM ViT-B's mask decoder; ``vision_source="vlm"``) in fp16 and bf16;
3. ``vision_ratio``: wall time of the dual (CLIP ViT-L/14-336 + SAM ViT-B) vs the single-pass vision path in
   fp16, next to their FLOP ratio (:mod:`lisalib.bench.vision`).

No hub, no checkpoint: real-size random-weight models are built from ``lisalib/configs`` straight on the
device, one quantized layer at a time (no 14 GB fp16 copy anywhere). ``--reduced`` (automatic without CUDA)
runs the same code on the CPU with narrow, shallow copies of the same configs: what the test runs.

``python -m lisalib.bench.gpu_check [--reduced] [--out FILE.json] [--json]``
"""
from __future__ import annotations

import copy
import datetime
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lisalib.cli import arg, dataclass_parser, quiet_bitsandbytes

FROM_PARTS_SKIP = ["vision_tower", "multi_modal_projector", "lm_head"]  # what from_parts keeps out of 4-bit
BUDGET_BYTES = 8 * 1024**3  # "fits an 8 GB GPU", the budget of lisalib.accounting.memory.TrainingMemory.fits
QUERY = "What is the red circle in this image ?"


@dataclass
class GpuCheckArgs:
    """The command line of ``python -m lisalib.bench.gpu_check``."""

    reduced: bool = field(default=False, **arg("CPU-sized copies of the configs (automatic without a CUDA GPU)"))
    out: str | None = field(default=None, **arg("write the JSON result to this file"))
    json: bool = field(default=False, **arg("print the JSON result (otherwise a short summary)"))
    steps: int = field(default=3, **arg("timed training steps per dtype, after one warm-up (median reported)"))
    repeats: int = field(default=5, **arg("timed repeats per vision encoder and batch size (median reported)"))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8], **arg("vision batch sizes to time"))


# ----- configs -------------------------------------------------------------------------------------
def configs(reduced: bool):
    """(LLaVA-1.5-7B config, SAM ViT-B config) as shipped, or narrow and shallow copies of them."""
    from lisalib.accounting import load_config

    vlm, sam = load_config("llava-1.5-7b"), load_config("sam-vit-base")
    sam.vision_config.initializer_range = 0.02  # SAM's ViT defaults to std 1e-10 (see bench.vision)
    if not reduced:
        return vlm, sam
    vlm.vision_config.update(dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                                  num_attention_heads=4, image_size=112))  # patch 14: an 8 x 8 grid
    vlm.image_seq_length = 64
    vlm.text_config.update(dict(hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4))  # the real 32,064-row vocabulary
    sam.vision_config.update(dict(hidden_size=96, mlp_dim=384, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=256, window_size=4, global_attn_indexes=[1]))
    sam.prompt_encoder_config.image_size = 256  # the mask decoder keeps its real width
    return vlm, sam


def nf4_available(device: torch.device) -> bool:
    """Whether bitsandbytes can quantize to NF4 on ``device`` (its CPU backend can, where installed)."""
    try:
        import bitsandbytes.functional as F

        F.quantize_4bit(torch.zeros(256, dtype=torch.float16, device=device), quant_type="nf4")
        return True
    except Exception:  # no bitsandbytes, or no kernel for this device
        return False


# ----- random-weight models, built in place ----------------------------------------------------------
def random_model(config, dtype: torch.dtype, device: torch.device, quantize: bool, skip: list[str] | None = None,
                 seed: int = 0) -> nn.Module:
    """The model ``from_pretrained(..., quantization_config=lisalib.zoo.quantization_config(...))`` would give,
    with random weights and without any checkpoint.

    The class is built on meta and transformers' own replacement rule swaps in ``Linear4bit`` (chapter 1's
    :func:`~lisalib.accounting.storage.quantize_meta_model`); each 4-bit weight is then drawn in ``dtype``
    on the device and quantized there at once, as transformers' loader does per tensor, so at most one
    layer's dense weight exists at a time. Everything else gets storage on the device and transformers'
    usual initialisation (norms at 1, rotary tables, position ids).
    """
    import bitsandbytes as bnb

    from lisalib.accounting.registry import build_meta_model
    from lisalib.accounting.storage import quantize_meta_model

    torch.manual_seed(seed)
    config = copy.deepcopy(config)
    model = build_meta_model(config, dtype)
    quantizer = quantize_meta_model(model, "4bit" if quantize else "none", dtype, skip)
    std = config.get_text_config().initializer_range
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and module.weight.is_meta:
            old = module.weight
            dense = torch.empty(old.shape, dtype=dtype, device=device).normal_(0.0, std)
            module.weight = bnb.nn.Params4bit(dense, requires_grad=False, **old.__dict__).to(device)
            module.weight._is_hf_initialized = True  # initialize_weights must not touch the packed bytes
            del dense
        for name, param in module._parameters.items():  # in ``dtype``, as a load casts them (Linear4bit biases too)
            if param is not None and param.is_meta:
                value = torch.empty_like(param, device=device, dtype=dtype if param.is_floating_point() else None)
                module._parameters[name] = nn.Parameter(value, param.requires_grad)
        for name, buffer in module._buffers.items():  # non-persistent tables keep their dtype (rotary: fp32)
            if buffer is not None and buffer.is_meta:
                module._buffers[name] = torch.empty_like(buffer, device=device)
    model.initialize_weights()
    if quantizer is not None:
        quantizer.postprocess_model(model)
    return model.eval()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _allocated(device: torch.device) -> int | None:
    return int(torch.cuda.memory_allocated(device)) if device.type == "cuda" else None


# ----- 1. NF4 footprint ------------------------------------------------------------------------------
def nf4_footprint(vlm_config, device: torch.device, quantize: bool, dtype: torch.dtype = torch.float16) -> dict:
    """Measured bytes of the random-weight NF4 VLM (transformers' default skips, as chapter 1 counts it) against
    chapter 1's prediction from the config: ``plan_model`` + ``predict_footprint`` on a meta build."""
    from lisalib.accounting.registry import build_meta_model
    from lisalib.accounting.storage import plan_model, predict_footprint, quantize_meta_model
    from lisalib.accounting.verify import measured_storage

    quant = "4bit" if quantize else "none"
    meta = build_meta_model(copy.deepcopy(vlm_config), dtype)
    predicted = predict_footprint(plan_model(meta, quantize_meta_model(meta, quant, dtype), dtype))
    del meta
    _free()
    before = _allocated(device)
    start = time.perf_counter()
    model = random_model(vlm_config, dtype, device, quantize)
    _sync(device)
    seconds = time.perf_counter() - start
    measured = model.get_memory_footprint()
    storage, params = measured_storage(model)
    allocated = _allocated(device)
    result = {
        "measured_bytes": int(measured), "allocated_bytes": None if allocated is None else allocated - before,
        "predicted_bytes": predicted.footprint, "ratio": measured / predicted.footprint,
        "measured_state_bytes": storage.state, "predicted_state_bytes": predicted.state,
        "parameters_reported": params, "quantized": quantize, "dtype": str(dtype).removeprefix("torch."),
        "build_seconds": round(seconds, 2),
        "what": "get_memory_footprint() (parameters + buffers; bitsandbytes statistics are the *_state_bytes) "
                "vs lisalib.accounting.storage.predict_footprint of the same config and settings",
    }
    del model
    _free()
    return result


# ----- 2. one training step ----------------------------------------------------------------------------
def processor_for(vlm_config, sam_config):
    """A LisaProcessor with the real image geometry (CLIP's view, SAM's longest edge and pad) and a word-level
    tokenizer: LLaVA's SentencePiece tokenizer is a hub download. The text is a few tokens either way; the
    576 image tokens are the real count."""
    from transformers import CLIPImageProcessor, LlavaProcessor, SamImageProcessor, SamProcessor

    from lisalib.constants import SEG_TOKEN, chat_prompt
    from lisalib.lisa.processing import LisaProcessor
    from lisalib.reasonseg.dataset import answer_templates
    from lisalib.zoo.tokenizer import build_word_tokenizer

    text = f"{chat_prompt(QUERY)} {answer_templates(SEG_TOKEN)[0]}".lower()
    words = sorted({w for w in "".join(c if c.isalnum() else " " for c in text).split()})
    side, patch = vlm_config.vision_config.image_size, vlm_config.vision_config.patch_size
    clip = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    vlm = LlavaProcessor(image_processor=clip, tokenizer=build_word_tokenizer(words), patch_size=patch,
                         vision_feature_select_strategy=vlm_config.vision_feature_select_strategy,
                         num_additional_image_tokens=1)
    sam_side = sam_config.vision_config.image_size
    sam = SamProcessor(SamImageProcessor(size={"longest_edge": sam_side}, pad_size={"height": sam_side,
                                                                                    "width": sam_side}))
    return LisaProcessor(vlm, sam)


def training_batch(processor, device: torch.device, seed: int = 0) -> dict:
    """One ReasonSeg-like sample (a 480 x 640 image, a query, an answer with ``<SEG>``, a box mask), batched by
    the LisaProcessor for ``vision_source="vlm"`` and moved to ``device``."""
    from lisalib.constants import SEG_TOKEN
    from lisalib.reasonseg.dataset import answer_templates

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    mask = np.zeros((480, 640), dtype=np.uint8)
    mask[120:300, 200:420] = 1
    batch = processor([image], [QUERY], answers=[answer_templates(SEG_TOKEN)[0]], masks=[mask],
                      vision_source="vlm", require_seg=True)

    def move(value):
        if torch.is_tensor(value):
            return value.to(device)
        return [move(v) for v in value] if isinstance(value, list) else value

    return {key: move(value) for key, value in batch.items()}


def lisa_for_training(vlm_config, sam_config, dtype: torch.dtype, device: torch.device, quantize: bool):
    """The Modified LISA as ``lisalib.lisa.train.build_model`` builds it with ``--use_lora --vision_source vlm``:
    ``from_parts``' second half (:meth:`from_models`) on the random-weight backbones, then the same
    ``prepare_for_training`` (LoRA, trainable groups, fp32 master copies of what trains). Returns (model, TrainArgs, batch)."""
    from transformers import SamModel

    from lisalib.lisa.modeling import LisaForReasoningSegmentation
    from lisalib.lisa.train import TrainArgs, prepare_for_training
    from lisalib.training.recipes import DEFAULT_GROUPS

    processor = processor_for(vlm_config, sam_config)
    vlm_config = copy.deepcopy(vlm_config)
    vlm_config.image_token_id = processor.image_token_id  # the word tokenizer's <image>, not LLaMA's 32000
    vlm = random_model(vlm_config, dtype, device, quantize, skip=FROM_PARTS_SKIP if quantize else None)
    torch.manual_seed(1)
    with torch.device(device):
        sam = SamModel(copy.deepcopy(sam_config)).to(dtype).eval()
    model = LisaForReasoningSegmentation.from_models(vlm, sam, processor, "vlm")
    del vlm, sam
    args = TrainArgs(vision_source="vlm", use_lora=True, load_in_4bit=quantize, trainable=[*DEFAULT_GROUPS, "lora"])
    prepare_for_training(model, args)  # train.build_model's second half: LoRA, groups, fp32 master weights
    _free()
    return model, args, training_batch(processor, device)


def train_step(vlm_config, sam_config, dtype: torch.dtype, device: torch.device, quantize: bool,
               steps: int = 3) -> dict:
    """Peak memory and median seconds of forward + backward + AdamW step at batch 1, as chapter 3's loop runs
    it under accelerate: autocast in ``dtype``, a gradient scaler for fp16, clipping, ``optimizer_for``."""
    from lisalib.lisa.train import optimizer_for

    _free()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    model, args, batch = lisa_for_training(vlm_config, sam_config, dtype, device, quantize)
    _sync(device)
    build_seconds = time.perf_counter() - start
    weights = _allocated(device)
    optimizer = optimizer_for(model, args)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, losses = [], []
    for _ in range(1 + steps):  # the first step (cuBLAS handles, AdamW state) is the warm-up
        _sync(device)
        began = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        seconds.append(time.perf_counter() - began)
        losses.append(float(loss.detach()))
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    result = {
        "peak_bytes": peak, "seconds": statistics.median(seconds[1:]),
        "fits_8gb": None if peak is None else peak <= BUDGET_BYTES,
        "step_seconds": seconds, "warmup_steps": 1,
        "weights_bytes": weights, "reserved_peak_bytes":
            int(torch.cuda.max_memory_reserved(device)) if device.type == "cuda" else None,
        "losses": [round(v, 4) for v in losses], "finite": all(np.isfinite(losses)),
        "sequence_length": int(batch["input_ids"].shape[1]), "trainable": dict(model.trainable_counts),
        "quantized": quantize, "build_seconds": round(build_seconds, 2),
    }
    del model, optimizer, batch, trainable
    _free()
    return result


def chapter1_training_memory(step: dict, vlm_config, quantize: bool) -> dict:
    """Chapter 1's estimate of the same step (``training_memory``, mode ``decoder`` = projections + ``<SEG>`` row +
    LoRA + mask decoder) at the measured sequence length, next to the measured peak. Its ``reserve`` (CUDA
    context, allocator slack) is outside ``max_memory_allocated``, hence ``without_reserve_bytes``."""
    try:
        from lisalib.accounting.memory import training_memory

        vision = vlm_config.vision_config
        image_tokens = (vision.image_size // vision.patch_size) ** 2
        memory = training_memory("modified-lisa-7b", "decoder", "4bit" if quantize else "none",
                                 text_tokens=step["sequence_length"] - image_tokens)
        without_reserve = memory.total - memory.reserve
        return {"total_bytes": memory.total, "without_reserve_bytes": without_reserve, "fits_8gb": memory.fits(),
                "weights": memory.weights, "gradients": memory.gradients, "optimizer": memory.optimizer,
                "activations": memory.activations, "reserve": memory.reserve,
                "measured_over_predicted": None if step["peak_bytes"] is None else step["peak_bytes"] / without_reserve}
    except Exception as error:  # a side figure: never lose the measurements over it
        return {"error": repr(error)}


# ----- 3. dual vs single-pass vision --------------------------------------------------------------------
def _vision_only(vlm_config):
    """The VLM config with a one-layer stub LLM: the real vision path, cheaply (as ``bench.vision`` does)."""
    config = copy.deepcopy(vlm_config)
    config.text_config.update(dict(vocab_size=64, intermediate_size=16, num_hidden_layers=1, pad_token_id=None))
    config.image_token_id = 63
    return config


def vision_ratio(vlm_config, sam_config, device: torch.device, batch_sizes=(1, 8), repeats: int = 5,
                 warmup: int = 2, dtype: torch.dtype = torch.float16) -> dict:
    """Seconds of CLIP (+ projector), SAM's ViT and ``vision_to_sam`` in ``dtype``, interleaved, synchronized,
    median of ``repeats``; dual = CLIP + SAM ViT, vlm = CLIP + vision_to_sam. The FLOP ratio is chapter 2's
    count of ``encode_images`` on meta for the same configs."""
    from lisalib.bench.timing import interleaved_samples, medians
    from lisalib.bench.vision import lisa_config, meta_model, vision_flops
    from lisalib.lisa.bridges import VisionToSam
    from lisalib.lisa.modeling import LisaForReasoningSegmentation

    flops = {source: vision_flops(meta_model(source, copy.deepcopy(vlm_config), copy.deepcopy(sam_config)))
             for source in ("dual", "vlm")}
    config = lisa_config("dual", _vision_only(vlm_config), copy.deepcopy(sam_config))
    torch.manual_seed(0)
    with torch.device(device):
        model = LisaForReasoningSegmentation(config).to(dtype).eval()
        bridge = VisionToSam(config.vlm_config.vision_config.hidden_size, config.sam_channels,
                             config.sam_grid).to(dtype).eval()
    clip_side, sam_side = config.vlm_config.vision_config.image_size, config.sam_config.vision_config.image_size
    patches = config.vlm_grid ** 2
    per_batch, ratios, skipped = {}, {}, {}
    for batch in batch_sizes:
        clip_pixels = torch.randn(batch, 3, clip_side, clip_side, device=device, dtype=dtype)
        sam_pixels = torch.randn(batch, 3, sam_side, sam_side, device=device, dtype=dtype)
        features = torch.randn(batch, patches, config.vlm_config.vision_config.hidden_size, device=device,
                               dtype=dtype)

        def timed(fn):
            return lambda: (fn(), _sync(device))

        try:
            samples = interleaved_samples({
                "clip_and_projector": timed(lambda: model.clip_encode(clip_pixels)),
                "sam_vit": timed(lambda: model.sam_encode(sam_pixels)),
                "vision_to_sam": timed(lambda: bridge(features)),
            }, repeats=repeats, warmup=warmup)
        except torch.OutOfMemoryError as error:  # SAM's global attention at batch 8 is GBs on a 16 GB card
            skipped[str(batch)] = f"out of memory: {str(error).splitlines()[0]}"
            del clip_pixels, sam_pixels, features
            _free()
            continue
        samples["dual"] = [c + s for c, s in zip(samples["clip_and_projector"], samples["sam_vit"])]
        samples["vlm"] = [c + b for c, b in zip(samples["clip_and_projector"], samples["vision_to_sam"])]
        per_batch[str(batch)] = medians(samples)
        ratios[str(batch)] = per_batch[str(batch)]["dual"] / per_batch[str(batch)]["vlm"]
        del clip_pixels, sam_pixels, features
    del model, bridge
    _free()
    first = next(iter(ratios))
    return {"wall_ratio": ratios[first], "wall_ratio_batch": int(first), "wall_ratio_by_batch": ratios,
            "skipped_batches": skipped,
            "flop_ratio": flops["dual"] / flops["vlm"], "flops_per_image": flops,
            "per_encoder_seconds": per_batch, "repeats": repeats, "warmup": warmup,
            "dtype": str(dtype).removeprefix("torch.")}


# ----- the whole check --------------------------------------------------------------------------------
def run_check(args: GpuCheckArgs) -> dict:
    """All three measurements; the JSON this module writes."""
    import bitsandbytes
    import transformers

    quiet_bitsandbytes()
    began = time.perf_counter()
    cuda = torch.cuda.is_available()
    reduced = args.reduced or not cuda
    device = torch.device("cuda", torch.cuda.current_device()) if cuda and not args.reduced else torch.device("cpu")
    quantize = nf4_available(device)
    vlm_config, sam_config = configs(reduced)
    notes = []
    if not cuda:
        notes.append("no CUDA GPU: reduced configs on the CPU")
    if not quantize:
        notes.append(f"bitsandbytes cannot quantize on {device.type}: the VLM runs unquantized in fp16/bf16")
    if device.type == "cpu":
        notes.append("CPU: no CUDA allocator, so allocated and peak bytes are null; times are CPU times")
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "reduced": reduced, "device": str(device),
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "bitsandbytes": bitsandbytes.__version__, "cuda": torch.version.cuda},
        "quantized": quantize, "threads": torch.get_num_threads(), "notes": notes, "part_seconds": {},
    }

    def part(name, fn):
        start = time.perf_counter()
        result[name] = fn()
        result["part_seconds"][name] = round(time.perf_counter() - start, 2)

    part("nf4_footprint", lambda: nf4_footprint(vlm_config, device, quantize))

    def steps():
        out = {"fp16": train_step(vlm_config, sam_config, torch.float16, device, quantize, args.steps)}
        # native bf16 only: before compute capability 8.0 (a T4 is 7.5) torch's default check says True
        # through emulation, which is not what a bf16 run on such a card should be judged by
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            out["bf16"] = {"skipped": f"no native bf16 on {result['gpu_name']}: torch.cuda.is_bf16_supported("
                                      f"including_emulation=False) is False (with emulation: "
                                      f"{torch.cuda.is_bf16_supported()})"}
        else:
            out["bf16"] = train_step(vlm_config, sam_config, torch.bfloat16, device, quantize, args.steps)
        if not reduced:
            for step in out.values():
                if "skipped" not in step:
                    step["chapter1_prediction"] = chapter1_training_memory(step, vlm_config, quantize)
        return out

    part("train_step", steps)
    part("vision_ratio", lambda: vision_ratio(vlm_config, sam_config, device, args.batch_sizes, args.repeats))
    result["total_seconds"] = round(time.perf_counter() - began, 2)
    return result


def summary(result: dict) -> str:
    """A few lines of the result for people."""
    gib = 1024**3
    foot = result["nf4_footprint"]
    lines = [f"{result['date']}  {result['gpu_name'] or result['device']}  reduced={result['reduced']}  "
             f"quantized={result['quantized']}",
             f"NF4 footprint: measured {foot['measured_bytes'] / gib:.3f} GiB, predicted "
             f"{foot['predicted_bytes'] / gib:.3f} GiB (ratio {foot['ratio']:.4f})"]
    for name, step in result["train_step"].items():
        if "skipped" in step:
            lines.append(f"train step {name}: skipped ({step['skipped']})")
        else:
            peak = "-" if step["peak_bytes"] is None else f"{step['peak_bytes'] / gib:.2f} GiB"
            lines.append(f"train step {name}: {step['seconds']:.3f} s, peak {peak}, fits 8 GB: {step['fits_8gb']}")
    vision = result["vision_ratio"]
    lines.append(f"vision dual/vlm: wall {vision['wall_ratio']:.3f} (batch {vision['wall_ratio_batch']}), "
                 f"FLOPs {vision['flop_ratio']:.3f}")
    lines.append(f"total {result['total_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(GpuCheckArgs, "python -m lisalib.bench.gpu_check", __doc__)
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    result = run_check(args)
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print(text if args.json else summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
