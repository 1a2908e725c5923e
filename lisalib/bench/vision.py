"""Chapter 2's benchmark: what does single-pass vision encoding save? FLOPs counted, CPU time measured.

The seed design claims "2x faster vision encoding" because it runs one encoder instead of two. That
counts passes, not work: CLIP ViT-L/14-336 and SAM's ViT at 1024 px cost very different amounts. So the
real-size models are measured without downloading them: FLOPs on the meta device (:mod:`.flops`) through
the model's own ``encode_images`` for each ``vision_source``; CPU wall time of the same encoders with
random weights (:mod:`.timing`); and FLOPs of a whole teacher-forced forward, because the 7B LLM, not the
vision path, dominates. Run ``python -m lisalib.bench vision --help``.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LlamaConfig, LlavaConfig

from lisalib.accounting import load_config
from lisalib.bench.flops import count_flops, flops_and_result
from lisalib.bench.timing import interleaved_samples, medians
from lisalib.cli import add_dataclass_subparsers, dataclass_parser, from_namespace
from lisalib.lisa.bridges import VisionToSam, VisionToVlm
from lisalib.lisa.configuration import LisaConfig
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.lisa.processing import VISION_SOURCES

DEFAULT_TEXT_TOKENS = 32  # "USER: <image>\n{query} ASSISTANT: {answer}" around the image tokens
REAL_VLM = "llava-1.5-7b"  # shipped hub configs in lisalib/configs: no download needed
SAM_NAMES = {"base": "SAM ViT-B", "large": "SAM ViT-L", "huge": "SAM ViT-H"}


def real_vlm_config() -> LlavaConfig:
    """``llava-hf/llava-1.5-7b-hf``'s architecture: CLIP ViT-L/14-336 + projector + Vicuna-7B."""
    return load_config(REAL_VLM)


def sam_config(variant: str = "base"):
    """``facebook/sam-vit-{variant}``'s architecture (``base``, ``large`` or ``huge``)."""
    if variant not in SAM_NAMES:
        raise ValueError(f"unknown SAM variant {variant!r}; choose one of {', '.join(SAM_NAMES)}")
    return load_config(f"sam-vit-{variant}")


def lisa_config(vision_source: str, vlm_config: LlavaConfig, sam: str | object = "base",
                attn_implementation: str = "sdpa") -> LisaConfig:
    """A real-size Lisa config (copies of the backbone configs, so models never share config objects)."""
    sam_cfg = sam_config(sam) if isinstance(sam, str) else sam
    return LisaConfig(vlm_config=copy.deepcopy(vlm_config), sam_config=copy.deepcopy(sam_cfg),
                      vision_source=vision_source, seg_token_id=vlm_config.text_config.vocab_size - 1,
                      attn_implementation=attn_implementation)


def meta_model(vision_source: str, vlm_config: LlavaConfig | None = None,
               sam: str | object = "base") -> LisaForReasoningSegmentation:
    """The real-size model on the meta device: every shape, no weights (a 7B LLM costs nothing here).

    Attention is "eager" (explicit matmuls), so every attention product is counted whatever kernel a
    device would pick: torch's counter has no formula for the CPU flash-attention kernel. Like torch's
    SDPA formula, the count covers the full score matrix, causal or not.
    """
    config = lisa_config(vision_source, vlm_config or real_vlm_config(), sam, attn_implementation="eager")
    with torch.device("meta"):
        model = LisaForReasoningSegmentation(config).eval()
    return model.requires_grad_(False)  # inference counts; also keeps torch's module tracker off autograd


def _pixels(model: LisaForReasoningSegmentation, batch: int = 1, device: str = "meta") -> dict:
    clip_side = model.config.vlm_config.vision_config.image_size
    sam_side = model.config.sam_config.vision_config.image_size
    return {"vlm_pixel_values": torch.zeros(batch, 3, clip_side, clip_side, device=device),
            "sam_pixel_values": torch.zeros(batch, 3, sam_side, sam_side, device=device)}


def vision_flops(model: LisaForReasoningSegmentation) -> int:
    """FLOPs of ``model.encode_images`` for one image: the whole vision path of its ``vision_source``."""
    return count_flops(model.encode_images, **_pixels(model))


def end_to_end_flops(model: LisaForReasoningSegmentation, text_tokens: int = DEFAULT_TEXT_TOKENS) -> dict[str, int]:
    """FLOPs of one teacher-forced forward on one image with one ``<SEG>``, split by stage.

    ``llm`` is the prefill of image tokens + ``text_tokens`` through the LLM and ``lm_head`` (all
    positions, as in training and LISA's validation); ``mask_decoder`` includes the ``<SEG>`` projection.
    """
    config = model.config
    image_tokens = config.vlm_grid ** 2
    width = config.vlm_config.text_config.hidden_size
    vision, features = flops_and_result(model.encode_images, **_pixels(model))
    embeds = torch.zeros(1, image_tokens + text_tokens, width, device="meta")
    mask = torch.ones(1, image_tokens + text_tokens, dtype=torch.long, device="meta")  # None would need .item()
    llm = count_flops(model.language_forward, embeds, mask)
    seg_state = torch.zeros(1, width, device="meta")
    decoder = count_flops(model.decode_masks, features.sam, seg_state, torch.zeros(1, dtype=torch.long, device="meta"))
    return {"vision": vision, "llm": llm, "mask_decoder": decoder, "total": vision + llm + decoder,
            "sequence_length": image_tokens + text_tokens}


def component_flops(models: dict[str, LisaForReasoningSegmentation]) -> dict[str, int]:
    """FLOPs of each piece of the vision path: CLIP (+ LLaVA projector), SAM's ViT, the two bridges.

    ``models`` maps each vision source to a (meta) model of the same setup, as :func:`meta_model` builds.
    """
    dual, vlm, sam_model = (models[source] for source in VISION_SOURCES)
    pixels = _pixels(dual)
    clip = count_flops(dual.clip_encode, pixels["vlm_pixel_values"])
    sam_vit = count_flops(dual.sam_encode, pixels["sam_pixel_values"])
    grid = dual.config.vlm_grid
    patches = torch.zeros(1, grid * grid, dual.config.vlm_config.vision_config.hidden_size, device="meta")
    side = dual.config.sam_grid
    embedding = torch.zeros(1, dual.config.sam_channels, side, side, device="meta")
    to_sam = count_flops(vlm.vision_to_sam, patches)
    to_vlm = count_flops(lambda x: sam_model.vlm.model.multi_modal_projector(sam_model.vision_to_vlm(x)), embedding)
    return {"clip_and_projector": clip, "sam_vit": sam_vit, "vision_to_sam": to_sam,
            "vision_to_vlm_and_projector": to_vlm}


# ----- wall time ---------------------------------------------------------------------------------------
def _vision_only_vlm_config() -> LlavaConfig:
    """LLaVA-1.5's real CLIP tower and projector with a stub LLM: the vision path at full size, cheaply."""
    real = real_vlm_config()
    stub = LlamaConfig(vocab_size=64, hidden_size=real.text_config.hidden_size, intermediate_size=16,
                       num_hidden_layers=1, num_attention_heads=32, num_key_value_heads=32)
    return LlavaConfig(vision_config=real.vision_config, text_config=stub, image_token_index=63,
                       image_seq_length=real.image_seq_length, vision_feature_layer=real.vision_feature_layer,
                       vision_feature_select_strategy=real.vision_feature_select_strategy)


def measure_wall_times(sam: str | object = "base", repeats: int = 3, warmup: int = 1, seed: int = 0,
                       vlm_config: LlavaConfig | None = None, device: str = "cpu",
                       dtype: torch.dtype = torch.float32) -> dict:
    """Seconds of each vision component at real size (random weights), median of interleaved repeats.

    Components are timed in turn inside every repeat (so background load hits them alike) and summed per
    repeat into the path each ``vision_source`` runs: ``dual`` = CLIP + SAM ViT, ``vlm`` = CLIP +
    vision_to_sam, ``sam`` = SAM ViT + vision_to_vlm + projector. ``sam`` is a variant name or a
    ``SamConfig``; ``vlm_config`` defaults to LLaVA-1.5's vision path with a stub LLM. ``device`` and
    ``dtype`` say where it runs (a notebook on a GPU runtime times the GPU, in its half precision).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    torch.manual_seed(seed)
    config = lisa_config("dual", vlm_config or _vision_only_vlm_config(), sam)
    # SAM's ViT initialises with std 1e-10 (meant to be overwritten by a checkpoint): use typical magnitudes
    config.sam_config.vision_config.initializer_range = 0.02
    model = LisaForReasoningSegmentation(config).eval().to(device, dtype)
    to_sam = VisionToSam(config.vlm_config.vision_config.hidden_size, config.sam_channels, config.sam_grid)
    to_vlm = VisionToVlm(config.sam_channels, config.vlm_config.vision_config.hidden_size, config.vlm_grid)
    to_sam, to_vlm = to_sam.eval().to(device, dtype), to_vlm.eval().to(device, dtype)
    pixels = _pixels(model, device=device)
    pixels = {k: torch.randn_like(v).to(dtype) for k, v in pixels.items()}
    grid = config.vlm_grid
    patches = torch.randn(1, grid * grid, config.vlm_config.vision_config.hidden_size, device=device, dtype=dtype)
    embedding = torch.randn(1, config.sam_channels, config.sam_grid, config.sam_grid, device=device, dtype=dtype)
    components = {
        "clip_and_projector": lambda: model.clip_encode(pixels["vlm_pixel_values"]),
        "sam_vit": lambda: model.sam_encode(pixels["sam_pixel_values"]),
        "vision_to_sam": lambda: to_sam(patches),
        "vision_to_vlm_and_projector": lambda: model.vlm.model.multi_modal_projector(to_vlm(embedding)),
    }
    samples = interleaved_samples(components, repeats=repeats, warmup=warmup)
    paths = {
        "dual": [c + s for c, s in zip(samples["clip_and_projector"], samples["sam_vit"])],
        "vlm": [c + b for c, b in zip(samples["clip_and_projector"], samples["vision_to_sam"])],
        "sam": [s + b for s, b in zip(samples["sam_vit"], samples["vision_to_vlm_and_projector"])],
    }
    median = medians({**samples, **paths})
    return {"seconds": median, "samples": {**samples, **paths}, "repeats": repeats, "warmup": warmup,
            "threads": torch.get_num_threads(), "device": str(device), "dtype": str(dtype).replace("torch.", ""),
            "wall_ratio": median["dual"] / median["vlm"], "wall_ratio_sam": median["dual"] / median["sam"]}


# ----- the whole benchmark -----------------------------------------------------------------------------
def vision_benchmark(sam_variants: Sequence[str] = ("base", "huge"), wall_variants: Sequence[str] = ("base", "huge"),
                     repeats: int = 3, warmup: int = 1, text_tokens: int = DEFAULT_TEXT_TOKENS) -> dict:
    """FLOPs (vision and end to end) for each SAM variant with LLaVA-1.5-7B, wall time where asked.

    Top-level keys describe the first variant (the seed's CLIP ViT-L/14-336 + SAM ViT-B); ``setups`` has
    every variant. Ratios are dual / single, single being ``vlm`` (the CLIP-only path) unless named ``_sam``.
    """
    setups = {}
    for variant in sam_variants:
        models = {source: meta_model(source, sam=variant) for source in VISION_SOURCES}
        e2e = {source: end_to_end_flops(model, text_tokens) for source, model in models.items()}
        vision = {source: counts["vision"] for source, counts in e2e.items()}
        setup = {
            "sam": SAM_NAMES.get(variant, variant),
            "components": component_flops(models),
            "flops": vision,
            "flop_ratio": vision["dual"] / vision["vlm"],
            "flop_ratio_sam": vision["dual"] / vision["sam"],
            "e2e_flops": e2e,
            "e2e_flop_ratio": e2e["dual"]["total"] / e2e["vlm"]["total"],
            "e2e_flop_ratio_sam": e2e["dual"]["total"] / e2e["sam"]["total"],
        }
        if variant in wall_variants:
            setup["wall"] = measure_wall_times(variant, repeats=repeats, warmup=warmup)
            setup["wall_ratio"] = setup["wall"]["wall_ratio"]
        setups[variant] = setup
        del models
    first = setups[sam_variants[0]]
    return {
        "vlm": "llava-1.5-7b (CLIP ViT-L/14-336)",
        "sam": first["sam"],
        "flops_dual": first["flops"]["dual"],
        "flops_single": first["flops"]["vlm"],
        "flops_single_sam": first["flops"]["sam"],
        "flop_ratio": first["flop_ratio"],
        "wall_ratio": first.get("wall_ratio"),
        "e2e_flops_dual": first["e2e_flops"]["dual"]["total"],
        "e2e_flops_single": first["e2e_flops"]["vlm"]["total"],
        "e2e_flop_ratio": first["e2e_flop_ratio"],
        "text_tokens": text_tokens,
        "setups": setups,
    }


def format_report(result: dict) -> str:
    """Plain-text tables of :func:`vision_benchmark`'s result."""
    lines = [f"Vision path per image, {result['vlm']} (FLOPs counted on the meta device; 1 multiply-add = 2)", ""]
    header = f"{'SAM encoder':<11} {'dual GFLOP':>11} {'vlm GFLOP':>10} {'sam GFLOP':>10} {'dual/vlm':>9} " \
             f"{'dual/sam':>9} {'wall dual/vlm':>14} {'e2e dual/vlm':>13} {'e2e dual/sam':>13}"
    lines += [header, "-" * len(header)]
    for setup in result["setups"].values():
        wall = f"{setup['wall_ratio']:.3f}" if "wall_ratio" in setup else "-"
        flops = setup["flops"]
        lines.append(f"{setup['sam']:<11} {flops['dual'] / 1e9:>11.1f} {flops['vlm'] / 1e9:>10.1f} "
                     f"{flops['sam'] / 1e9:>10.1f} {setup['flop_ratio']:>9.3f} {setup['flop_ratio_sam']:>9.3f} "
                     f"{wall:>14} {setup['e2e_flop_ratio']:>13.3f} {setup['e2e_flop_ratio_sam']:>13.3f}")
    for setup in result["setups"].values():
        if "wall" not in setup:
            continue
        wall, comps = setup["wall"], setup["components"]
        lines += ["", f"CPU wall time with {setup['sam']} (random weights, median of {wall['repeats']} after "
                      f"{wall['warmup']} warm-up, {wall['threads']} threads)"]
        for name in comps:
            seconds = wall["seconds"][name]
            lines.append(f"  {name:<28} {seconds:8.3f} s  {comps[name] / 1e9:9.1f} GFLOP  "
                         f"{comps[name] / 1e9 / seconds:7.1f} GFLOP/s")
        for source in VISION_SOURCES:
            lines.append(f"  path {source:<23} {wall['seconds'][source]:8.3f} s")
    first = next(iter(result["setups"].values()))
    e2e = first["e2e_flops"]["dual"]
    lines += ["", f"End to end (teacher-forced forward, {e2e['sequence_length']} tokens, {first['sam']}): "
                  f"vision {e2e['vision'] / 1e12:.3f} + LLM {e2e['llm'] / 1e12:.3f} + mask decoder "
                  f"{e2e['mask_decoder'] / 1e12:.4f} TFLOP in dual; dual/vlm = {first['e2e_flop_ratio']:.3f}"]
    return "\n".join(lines)


@dataclass
class VisionArgs:
    """The command line of ``python -m lisalib.bench vision``."""

    json: bool = field(default=False, metadata={"help": "print one JSON object instead of tables"})
    repeats: int = field(default=3, metadata={"help": "timed repeats per component (the median is reported)"})
    warmup: int = field(default=1, metadata={"help": "untimed warm-up runs"})
    no_wall: bool = field(default=False, metadata={"help": "FLOPs only: skip all wall-time measurements"})
    skip_vit_h_wall: bool = field(default=False, metadata={
        "help": "skip the SAM ViT-H wall time (about 6 TFLOP per pass: minutes on a laptop CPU)"})
    sam: list[str] = field(default_factory=lambda: ["base", "huge"], metadata={
        "help": "SAM encoders to compare (the first gives the top-level JSON keys)", "choices": sorted(SAM_NAMES)})
    text_tokens: int = field(default=DEFAULT_TEXT_TOKENS, metadata={
        "help": "text tokens around the image tokens in the end-to-end count"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (unset: torch's choice)"})


def run_vision(args: VisionArgs) -> dict:
    """:func:`vision_benchmark` as :class:`VisionArgs` asks for it."""
    if args.threads:
        torch.set_num_threads(args.threads)
    wall_variants = [] if args.no_wall else [v for v in args.sam if not (v == "huge" and args.skip_vit_h_wall)]
    return vision_benchmark(args.sam, wall_variants, repeats=args.repeats, warmup=args.warmup,
                            text_tokens=args.text_tokens)


def main(argv: Sequence[str] | None = None) -> int:
    parser = dataclass_parser([], "python -m lisalib.bench", "Benchmarks of the tutorial's design choices.")
    commands = add_dataclass_subparsers(parser)
    commands.add_parser("vision", dataclass_types=VisionArgs, help="FLOPs and CPU time of dual vs single-pass "
                        "vision encoding", description="Count FLOPs of the real-size vision paths (meta device) "
                        "and time the real-size encoders on this CPU with random weights.")
    namespace = parser.parse_args(argv)
    args = from_namespace(VisionArgs, namespace)
    result = run_vision(args)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
