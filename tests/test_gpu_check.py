"""The GPU check's reduced run (CPU, narrow copies of the real configs): every key the GPU run reports, with
measured numbers positive and each ratio equal to the figures it is computed from."""
from __future__ import annotations

import json
import math
import statistics

import pytest

from lisalib.bench import gpu_check


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "x.json"
    assert gpu_check.main(["--reduced", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)


def test_header(result):
    assert result["reduced"] is True
    assert result["device"] == "cpu" and result["gpu_name"] is None
    assert result["date"] and set(result["versions"]) >= {"torch", "transformers", "bitsandbytes"}
    assert isinstance(result["quantized"], bool)
    if not result["quantized"]:
        assert any("unquantized" in note for note in result["notes"])


def test_nf4_footprint(result):
    foot = result["nf4_footprint"]
    assert positive(foot["measured_bytes"]) and positive(foot["predicted_bytes"])
    assert foot["ratio"] == pytest.approx(foot["measured_bytes"] / foot["predicted_bytes"])
    assert foot["allocated_bytes"] is None  # no CUDA allocator on the CPU
    if result["quantized"]:  # chapter 1's plan is exact for a build with the same settings
        assert foot["measured_bytes"] == foot["predicted_bytes"]
        assert foot["measured_state_bytes"] == foot["predicted_state_bytes"] > 0


def test_train_step(result):
    steps = result["train_step"]
    assert set(steps) == {"fp16", "bf16"}
    for step in steps.values():  # bf16 runs on a CPU; only a CUDA card without it is skipped
        assert positive(step["seconds"]) and step["finite"]
        assert step["seconds"] == pytest.approx(statistics.median(step["step_seconds"][1:]))  # after 1 warm-up
        assert step["peak_bytes"] is None and step["fits_8gb"] is None
        assert step["trainable"]["lora"] > 0 and step["trainable"]["seg_row"] > 0
        assert step["trainable"]["mask_decoder"] > 0 and step["trainable"]["projections"] > 0
        assert step["sequence_length"] > 64  # the 8 x 8 image tokens and the text


def test_vision_ratio(result):
    vision = result["vision_ratio"]
    assert vision["skipped_batches"] == {} and set(vision["per_encoder_seconds"]) == {"1", "8"}
    for batch, seconds in vision["per_encoder_seconds"].items():
        assert all(positive(v) for v in seconds.values())
        assert vision["wall_ratio_by_batch"][batch] == pytest.approx(seconds["dual"] / seconds["vlm"])
    assert vision["wall_ratio"] == vision["wall_ratio_by_batch"][str(vision["wall_ratio_batch"])]
    flops = vision["flops_per_image"]
    assert flops["dual"] > flops["vlm"] > 0
    assert vision["flop_ratio"] == pytest.approx(flops["dual"] / flops["vlm"])


def test_random_model_matches_a_normal_build():
    """The in-place build gives transformers' non-persistent tables and init (what a load would give), and
    casts the parameters it materialises to the model dtype, as a load does."""
    import torch
    from transformers import LlavaForConditionalGeneration

    config, _ = gpu_check.configs(reduced=True)
    built = gpu_check.random_model(config, torch.float16, torch.device("cpu"), quantize=False)
    reference = dict(LlavaForConditionalGeneration(config).named_buffers())
    for name, buffer in built.named_buffers():
        assert torch.equal(buffer, reference[name].to(buffer.dtype)), name
    assert {p.dtype for p in built.parameters()} == {torch.float16}
    assert not any(p.is_meta for p in built.parameters())
    norms = [p for n, p in built.named_parameters() if n.endswith("layernorm.weight")]
    assert norms and all(bool((p == 1).all()) for p in norms)


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--reduced" in text and "--out" in text and "--batch_sizes" in text
