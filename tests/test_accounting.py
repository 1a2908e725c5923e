"""Parameter accounting: exact counts from meta models, and the 4-bit prediction against real bitsandbytes loads."""
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig

from lisalib import accounting as acc
from lisalib.zoo import ZOO_MODELS, ZooError, zoo_path

LLAVA_7B = 7_063_427_072  # design doc 001 and the llava-hf/llava-1.5-7b-hf checkpoint
SAM_VIT_B_DOC = 93_735_472  # design doc 001, counted with transformers 4.x
PROJECTIONS = 1_312_256  # Linear(1024,256)+LN(256) + Linear(4096,256)+LN(256)


def sam_positional_params(name: str = "sam-vit-base") -> int:
    """The 2x128 random-Fourier matrix: an nn.Parameter in transformers 5 (tied), a buffer in 4.x."""
    sam = acc.build_meta_model(acc.load_config(name))
    return sum(p.numel() for n, p in sam.named_parameters() if n.endswith("positional_embedding"))


def test_llava_1_5_7b_is_exact():
    counts = acc.count_parameters("llava-1.5-7b")
    assert counts.total == LLAVA_7B == acc.model_spec("llava-1.5-7b").published_params
    assert counts.components == {"vision_tower": 303_507_456, "projector": 20_979_712,
                                 "language_model": 6_607_605_760, "lm_head": 131_334_144}


def test_projection_layers_and_modified_lisa_total():
    assert sum(p.numel() for p in acc.projection_layers(1024, 4096, 256).parameters()) == PROJECTIONS
    lisa = acc.count_parameters("modified-lisa-7b")
    sam = acc.count_parameters("sam-vit-base").total
    assert lisa.components["projections"] == PROJECTIONS
    assert sam == SAM_VIT_B_DOC + sam_positional_params() == SAM_VIT_B_DOC + 256
    assert lisa.total == LLAVA_7B + sam + PROJECTIONS == 7_158_474_800 + 256


def test_shipped_configs_match_published_counts():
    for name in acc.available_models():
        spec = acc.model_spec(name)
        total = acc.count_parameters(name).total
        expected = spec.published_params
        if spec.architecture == "SamModel" and expected is not None:
            expected += sam_positional_params(name)
        if expected is not None:
            assert total == expected, name
        else:
            assert abs(total - spec.published_approx) / spec.published_approx < 0.01, name


def test_design_doc_embedding_gap_is_61_rows():
    hub = acc.count_parameters("modified-lisa-7b")
    resized = acc.count_parameters("modified-lisa-7b", input_embedding_rows=32003)
    assert hub.total - resized.total == 249_856 == 61 * 4096
    assert hub.components["vlm.lm_head"] == resized.components["vlm.lm_head"]  # only the input side shrank


def _tiny_source(name: str, tmp_path) -> str:
    """The zoo model once it is built; until then the same architecture with random weights."""
    try:
        zoo_path(name)
        return name
    except ZooError:
        if name == "tiny-llava":
            from lisalib.zoo.pretrain.vlm import build_tiny_llava as build
        else:
            from lisalib.zoo.pretrain.sam import build_tiny_sam as build
        model, processor = build(seed=0)
        model.save_pretrained(tmp_path)
        processor.save_pretrained(tmp_path)
        return str(tmp_path)


@pytest.mark.parametrize("name", list(ZOO_MODELS))
@pytest.mark.parametrize("quant", ["4bit", "8bit"])
def test_quantized_prediction_equals_real_bitsandbytes_load(name, quant, tmp_path):
    check = acc.verify_quantized_load(_tiny_source(name, tmp_path), quant)
    assert check.reported_params == check.predicted_params
    assert check.measured == check.predicted  # get_memory_footprint() and bnb statistics, to the byte
    if quant == "4bit":
        assert check.reported_params < check.architecture_params


def test_meta_predictions_leave_bitsandbytes_usable():
    """Predicting on meta first must not break a real quantization afterwards (bnb caches a code map)."""
    import bitsandbytes.functional as F

    saved = dict(F.name2qmap)
    F.name2qmap.clear()
    try:
        acc.bnb_storage((128, 64), torch.float32, "4bit", compress_statistics=True)
        packed, state = F.quantize_4bit(torch.randn(128, 64), compress_statistics=True, quant_type="nf4")
        assert packed.device.type == "cpu" and not state.state2.code.is_meta
    finally:
        F.name2qmap.clear()
        F.name2qmap.update(saved)


def test_memory_prediction_matches_get_memory_footprint_of_a_quantized_layer():
    config = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=1, num_attention_heads=4,
                         vocab_size=64)
    check = acc.measure_footprint((config, "layers.0."), quant="4bit", dtype=torch.bfloat16)
    assert check.measured == check.predicted
    assert check.reported_params == check.predicted_params
    # 4 bits per weight + 8-bit absmax per 64 weights (+ fp32 per 256 blocks): a bit over 0.5 byte per weight
    weights = 4 * 256 * 256 + 3 * 256 * 688
    assert 0.5 < (check.predicted.total - 2 * 2 * 256) / weights < 0.53


def test_trainable_modes_of_modified_lisa():
    counts = {mode: acc.trainable_parameters("modified-lisa-7b", mode) for mode in acc.LISA_MODES}
    assert counts["frozen"].trainable == 0
    assert counts["projections"].trainable == PROJECTIONS
    assert counts["seg"].trainable == PROJECTIONS + 4096
    lora = counts["lora"].components["vlm.language_model (LoRA)"]
    assert lora == 32 * 2 * 16 * (4096 + 4096) == 8_388_608  # r=16 on q_proj, v_proj of the 32 LLaMA layers
    assert counts["decoder"].trainable == PROJECTIONS + 4096 + lora + 4_058_340
    assert counts["full"].trainable == counts["full"].total == acc.count_parameters("modified-lisa-7b").total


def test_cli_json(capsys):
    assert acc.main(["modified-lisa-7b", "--quant", "4bit", "--mode", "lora", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"total", "trainable", "bytes", "components"} <= result.keys()
    assert result["total"] == sum(result["components"].values()) == acc.count_parameters("modified-lisa-7b", "4bit").total
    assert result["trainable"] == acc.trainable_parameters("modified-lisa-7b", "lora").trainable
    assert result["bytes"] > 0


def test_cli_runs_as_a_module():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "lisalib.accounting", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and "modified-lisa-7b" in done.stdout and "--quant" in done.stdout


@pytest.mark.parametrize("argv,message", [
    (["llava-7b"], "unknown preset 'llava-7b'"),
    (["modified-lisa-7b", "--mode", "everything"], "unknown mode 'everything'"),
    (["sam-vit-base", "--mode", "projections"], "not defined for preset 'sam-vit-base'"),
    (["modified-lisa-7b", "--mode", "full", "--quant", "4bit"], "cannot be trained"),
    (["modified-lisa-7b", "--mode", "lora", "--lora-targets", "q_proj;drop"], "LoRA targets"),
])
def test_bad_input_gives_a_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        acc.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_input_in_the_python_api():
    with pytest.raises(acc.AccountingError, match="unknown quantization"):
        acc.count_parameters("llava-1.5-7b", quant="3bit")
    with pytest.raises(acc.AccountingError, match="unknown memory format"):
        acc.memory_table("sam-vit-base", formats=("fp8",))
    with pytest.raises(acc.AccountingError, match="no shipped config"):
        acc.model_spec("gpt5")
