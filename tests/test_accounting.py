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


@pytest.mark.parametrize("name", [name for name, family in ZOO_MODELS.items() if family in ("vlm", "sam")])
@pytest.mark.parametrize("quant", ["4bit", "8bit"])
def test_quantized_prediction_equals_real_bitsandbytes_load(name, quant, tmp_path):
    check = acc.verify_quantized_load(_tiny_source(name, tmp_path), quant)
    assert check.reported_params == check.predicted_params
    assert check.measured == check.predicted  # get_memory_footprint() and bnb statistics, to the byte
    if quant == "4bit":
        assert check.reported_params < check.architecture_params


def test_quantized_load_check_refuses_models_outside_a_modified_lisa():
    with pytest.raises(acc.AccountingError, match="not a LLaVA or SAM model"):
        acc.verify_quantized_load("tiny-lm", "4bit")


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
    # the <SEG> row trains in embed_tokens and in lm_head, as chapter 3 trains it (recipes.SEG_ROW_MODULES)
    assert counts["seg"].components == {"vlm.language_model (<SEG> row)": 4096, "vlm.lm_head (<SEG> row)": 4096,
                                        "projections": PROJECTIONS}
    lora = counts["lora"].components["vlm.language_model (LoRA)"]
    assert lora == 32 * 2 * 8 * (4096 + 4096) == 4_194_304  # LISA's r=8 on q_proj, v_proj of the 32 LLaMA layers
    assert counts["decoder"].trainable == PROJECTIONS + 2 * 4096 + lora + 4_058_340
    assert counts["full"].trainable == counts["full"].total == acc.count_parameters("modified-lisa-7b").total
    assert [counts[mode].trainable for mode in acc.LISA_MODES] == sorted(c.trainable for c in counts.values())
    r16 = acc.trainable_parameters("modified-lisa-7b", "lora", acc.LoraDefaults(r=16, alpha=32))
    assert r16.components["vlm.language_model (LoRA)"] == 2 * lora  # the seed design's r=16 doubles the adapters


def test_accounting_speaks_the_training_vocabulary():
    """Chapter 1 counts what chapter 3 trains: the same modes, groups, LoRA default and <SEG> modules."""
    from lisalib.training import recipes

    assert acc.MODES is recipes.MODES and acc.LoraDefaults is recipes.LoraDefaults
    assert acc.get_preset("modified-lisa-7b").lora == recipes.LORA_DEFAULTS
    assert acc.get_preset("modified-lisa-7b").groups == tuple(recipes.TRAINABLE_GROUPS)
    assert acc.trained_groups(acc.get_preset("sam-vit-base"), "decoder") == ("mask_decoder",)
    assert acc.trained_groups(acc.get_preset("llava-1.5-7b"), "lora") == ("lora",)
    assert acc.describe_mode("lora") == "projections + seg_row + lora"
    assert acc.describe_mode("lora", "llava-1.5-7b") == "lora"
    seg = acc.trainable_parameters("modified-lisa-tiny", "seg")
    rows = {label.split(" ")[0].removeprefix("vlm.") for label in seg.components if "<SEG>" in label}
    hidden = acc.load_config("tiny-llava").text_config.hidden_size
    assert rows == {"language_model", "lm_head"} and len(recipes.SEG_ROW_MODULES) == 2
    assert seg.trainable - seg.components["projections"] == len(recipes.SEG_ROW_MODULES) * hidden


def test_mode_groups_decide_activations_and_skips():
    lisa = acc.get_preset("modified-lisa-7b")
    assert [acc.activation_flow(lisa, mode) for mode in acc.LISA_MODES] == [None, None, "input", "lora", "lora",
                                                                            "full"]
    # the decoder trains in 'decoder' mode, so 4-bit loading must leave it unquantized
    frozen = acc.count_parameters(lisa, "4bit").components["sam.mask_decoder"]
    decoder = acc.count_parameters(lisa, "4bit", mode="decoder").components["sam.mask_decoder"]
    assert decoder == 4_058_340 > frozen


def test_cli_json(capsys):
    assert acc.main(["modified-lisa-7b", "--quant", "4bit", "--mode", "lora", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"total", "trainable", "bytes", "components"} <= result.keys()
    assert result["total"] == sum(result["components"].values()) == acc.count_parameters("modified-lisa-7b", "4bit").total
    assert result["trainable"] == acc.trainable_parameters("modified-lisa-7b", "lora").trainable
    assert result["bytes"] == acc.memory_table("modified-lisa-7b", ("nf4",))["total"]["nf4"]


def test_cli_tables_and_lora_flags(capsys):
    assert acc.main(["--preset", "modified-lisa-7b", "--mode", "lora", "--lora_r", "16", "--lora_alpha", "32"]) == 0
    text = capsys.readouterr().out
    assert "vlm.lm_head (<SEG> row)" in text and "projections + seg_row + lora" in text
    lora = acc.trainable_parameters("modified-lisa-7b", "lora", acc.LoraDefaults(r=16, alpha=32))
    assert f"{lora.trainable:,}" in text and f"{acc.count_parameters('modified-lisa-7b').total:,}" in text
    rows = list(lora.components.items()) + [("total", lora.trainable)]
    assert acc.format_table(rows, ["component", "trainable"]) in text  # lisalib.cli's one table formatter
    assert acc.main(["gpt2", "--mode", "lora", "--json"]) == 0  # GPT-2's default target is c_attn
    assert json.loads(capsys.readouterr().out)["trainable_components"] == {"decoder_layers (LoRA)": 12 * 8 * (768 + 2304)}


def test_cli_runs_as_a_module():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "lisalib.accounting", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and "modified-lisa-7b" in done.stdout
    assert "--quant" in done.stdout and "--lora_targets" in done.stdout and "--lora-targets" not in done.stdout


@pytest.mark.parametrize("argv,message", [
    (["llava-7b"], "unknown preset 'llava-7b'"),
    (["modified-lisa-7b", "--mode", "everything"], "unknown mode 'everything'"),
    (["sam-vit-base", "--mode", "projections"], "not defined for preset 'sam-vit-base'"),
    (["modified-lisa-7b", "--mode", "full", "--quant", "4bit"], "cannot be trained"),
    (["modified-lisa-7b", "--mode", "lora", "--lora_targets", "q_proj;drop"], "LoRA targets"),
    (["gpt2", "--mode", "lora", "--lora_targets", "q_proj"], "not found in the base model"),
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
    with pytest.raises(acc.AccountingError, match="rank and alpha must be positive"):
        acc.trainable_parameters("modified-lisa-7b", "lora", acc.LoraDefaults(r=0))
    with pytest.raises(acc.AccountingError, match="use a modified-lisa"):
        acc.training_memory("llava-1.5-7b", "lora")


def test_public_api_is_explicit():
    import lisalib.accounting as package

    assert len(set(package.__all__)) == len(package.__all__)
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing
