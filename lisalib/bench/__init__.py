"""Benchmarks: generic FLOP counting (``flops``) and wall timing (``timing``), shared by chapters 2, 5 and 6,
and chapter 2's vision benchmark (``vision``)."""
from lisalib.bench.flops import count_flops, count_flops_by_operator, flops_and_result
from lisalib.bench.timing import interleaved_samples, median_seconds, medians, wall_seconds
from lisalib.bench.vision import (DEFAULT_TEXT_TOKENS, REAL_VLM, SAM_NAMES, VisionArgs, component_flops,
                                  end_to_end_flops, format_report, lisa_config, main, measure_wall_times, meta_model,
                                  real_vlm_config, run_vision, sam_config, vision_benchmark, vision_flops)

__all__ = [
    # flops
    "count_flops", "count_flops_by_operator", "flops_and_result",
    # timing
    "interleaved_samples", "median_seconds", "medians", "wall_seconds",
    # chapter 2's vision benchmark
    "DEFAULT_TEXT_TOKENS", "REAL_VLM", "SAM_NAMES", "VisionArgs", "component_flops", "end_to_end_flops",
    "format_report", "lisa_config", "main", "measure_wall_times", "meta_model", "real_vlm_config", "run_vision",
    "sam_config", "vision_benchmark", "vision_flops",
]
