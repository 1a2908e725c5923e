"""Chapter 1: exact parameter counts, trainable counts per training mode, 4-bit storage and memory.

Every count comes from the real transformers class built on the ``meta`` device, never from a formula:
``registry`` (shipped configs, meta builds), ``presets`` (what can be counted, in which modes), ``storage``
(what bitsandbytes stores), ``counts`` (``sum(p.numel())`` and trainable counts through peft), ``memory``
(bytes per format, one training step), ``verify`` (predictions against real loads), ``cli``.
"""
from lisalib.accounting.cli import AccountingArgs, main, summarize
from lisalib.accounting.counts import Breakdown, Trainable, count_parameters, trainable_parameters
from lisalib.accounting.memory import (ACTIVATION_FLOWS, BYTES_PER_TRAINABLE, FORMAT_SETTINGS, MEMORY_FORMATS,
                                       TrainingMemory, activation_flow, llm_activation_profile,
                                       mask_decoder_activation_bytes, memory_table, saved_activation_bytes,
                                       sequence_tokens, training_memory)
from lisalib.accounting.presets import (LISA_MODES, MODES, QUANTS, Preset, check_mode, check_quant, describe_mode,
                                        get_preset, presets, trained_groups)
from lisalib.accounting.registry import (COMPONENTS, CONFIG_DIR, AccountingError, GiB, ModelSpec, available_models,
                                         build_meta_model, component_labels, component_of, load_config, model_class,
                                         model_spec, projection_layers)
from lisalib.accounting.storage import (Footprint, MetaBuild, PresetPlan, TensorPlan, bnb_storage, build_preset,
                                        make_quantizer, plan_model, plan_preset, predict_footprint,
                                        quant_state_tensors, quantize_meta_model, storage_plan)
from lisalib.accounting.verify import (FOOTPRINT_TARGETS, FootprintCheck, LoadCheck, compare_loaded,
                                       explain_design_doc_4bit, measure_footprint, measured_storage,
                                       verify_quantized_load)
from lisalib.cli import format_table
from lisalib.training.recipes import LORA_DEFAULTS, TRAINABLE_GROUPS, LoraDefaults

__all__ = [
    # registry
    "AccountingError", "CONFIG_DIR", "COMPONENTS", "GiB", "ModelSpec", "available_models", "build_meta_model",
    "component_labels", "component_of", "load_config", "model_class", "model_spec", "projection_layers",
    # presets and modes (the vocabulary of lisalib.training.recipes)
    "LISA_MODES", "LORA_DEFAULTS", "LoraDefaults", "MODES", "Preset", "QUANTS", "TRAINABLE_GROUPS", "check_mode",
    "check_quant", "describe_mode", "get_preset", "presets", "trained_groups",
    # storage
    "Footprint", "MetaBuild", "PresetPlan", "TensorPlan", "bnb_storage", "build_preset", "make_quantizer",
    "plan_model", "plan_preset", "predict_footprint", "quant_state_tensors", "quantize_meta_model", "storage_plan",
    # counts
    "Breakdown", "Trainable", "count_parameters", "trainable_parameters",
    # memory
    "ACTIVATION_FLOWS", "BYTES_PER_TRAINABLE", "FORMAT_SETTINGS", "MEMORY_FORMATS", "TrainingMemory",
    "activation_flow", "llm_activation_profile", "mask_decoder_activation_bytes", "memory_table",
    "saved_activation_bytes", "sequence_tokens", "training_memory",
    # verification against real loads
    "FOOTPRINT_TARGETS", "FootprintCheck", "LoadCheck", "compare_loaded", "explain_design_doc_4bit",
    "measure_footprint", "measured_storage", "verify_quantized_load",
    # command line and tables
    "AccountingArgs", "format_table", "main", "summarize",
]
