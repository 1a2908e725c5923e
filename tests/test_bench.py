"""lisalib.bench: FLOP counting on the meta device, wall-time bookkeeping, the CLI. No timing assertions."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lisalib import bench
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.zoo.configs import tiny_llava_config, tiny_sam_config


@pytest.fixture(scope="module")
def real_base():
    """Real-size LLaVA-1.5-7B + SAM ViT-B in all three vision sources, on the meta device."""
    return {source: bench.meta_model(source, sam="base") for source in ("dual", "vlm", "sam")}


def test_count_flops_counts_a_multiply_add_as_two():
    layer = nn.Linear(16, 8, bias=False)
    assert bench.count_flops(layer, torch.zeros(4, 16)) == 2 * 4 * 16 * 8
    assert bench.count_flops_by_operator(layer, torch.zeros(4, 16)) == {"mm": 2 * 4 * 16 * 8}
    assert bench.count_flops_by_operator(nn.Linear(16, 8), torch.zeros(4, 16)) == {"addmm": 2 * 4 * 16 * 8}
    flops, out = bench.flops_and_result(layer, torch.zeros(4, 16))
    assert flops == 2 * 4 * 16 * 8 and out.shape == (4, 8) and not out.requires_grad  # counted under no_grad


def test_flops_on_meta_equal_flops_on_cpu():
    layer = nn.Linear(32, 16)
    with torch.device("meta"):
        meta_layer = nn.Linear(32, 16)
    assert bench.count_flops(meta_layer, torch.zeros(3, 32, device="meta")) == \
        bench.count_flops(layer, torch.zeros(3, 32))


def test_interleaved_timing_runs_round_robin_after_warmup(monkeypatch):
    calls = []
    clock = iter(range(1000))
    monkeypatch.setattr(bench.timing.time, "perf_counter", lambda: next(clock))  # each timed call takes 1 "second"
    samples = bench.interleaved_samples({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                        repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert samples == {"a": [1, 1, 1], "b": [1, 1, 1]}
    assert bench.medians({"x": [3.0, 1.0, 2.0], "y": [5.0]}) == {"x": 2.0, "y": 5.0}
    assert bench.median_seconds(lambda: None, repeats=5, warmup=0) == 1
    with pytest.raises(ValueError, match="repeats"):
        bench.interleaved_samples({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        bench.interleaved_samples({"a": lambda: None}, warmup=-1)


def test_vision_flops_are_the_sum_of_their_components(real_base):
    parts = bench.component_flops(real_base)
    flops = {source: bench.vision_flops(model) for source, model in real_base.items()}
    assert flops["dual"] == parts["clip_and_projector"] + parts["sam_vit"]
    assert flops["vlm"] == parts["clip_and_projector"] + parts["vision_to_sam"]
    assert flops["sam"] == parts["sam_vit"] + parts["vision_to_vlm_and_projector"]
    # the seed's "2x" counts passes; the work ratio is set by how much bigger SAM's ViT is than CLIP's
    assert flops["dual"] / flops["vlm"] > 3 and 1 < flops["dual"] / flops["sam"] < 2
    # CLIP ViT-L/14-336 alone: linear layers ~349 GFLOP + attention; SAM ViT-B at 1024 px: ~0.97 TFLOP
    assert 370e9 < parts["clip_and_projector"] < 420e9 and 0.9e12 < parts["sam_vit"] < 1.05e12


def test_end_to_end_flops_are_dominated_by_the_llm(real_base):
    e2e = {source: bench.end_to_end_flops(real_base[source]) for source in ("dual", "vlm")}
    dual, vlm = e2e["dual"], e2e["vlm"]
    assert dual["total"] == dual["vision"] + dual["llm"] + dual["mask_decoder"]
    assert dual["sequence_length"] == 576 + bench.DEFAULT_TEXT_TOKENS
    assert dual["llm"] == vlm["llm"] and dual["llm"] > 5 * dual["vision"]
    assert 1.0 < dual["total"] / vlm["total"] < dual["vision"] / vlm["vision"]


def test_wall_time_bookkeeping_with_tiny_configs():
    tiny_vlm = tiny_llava_config(vocab_size=40, image_token_id=4, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    result = bench.measure_wall_times(tiny_sam_config(), repeats=2, warmup=0, vlm_config=tiny_vlm)
    samples = result["samples"]
    assert all(len(values) == 2 for values in samples.values())
    assert samples["dual"][0] == pytest.approx(samples["clip_and_projector"][0] + samples["sam_vit"][0])
    assert result["wall_ratio"] == pytest.approx(result["seconds"]["dual"] / result["seconds"]["vlm"])
    with pytest.raises(ValueError, match="repeats"):
        bench.measure_wall_times(tiny_sam_config(), repeats=0, vlm_config=tiny_vlm)


def test_tiny_vision_path_counts_like_the_real_one():
    tiny = bench.lisa_config("vlm", tiny_llava_config(40, 4, 0, 2, 3), tiny_sam_config())
    model = LisaForReasoningSegmentation(tiny).eval().requires_grad_(False)
    pixels = torch.zeros(1, 3, 128, 128)
    features = model.encode_images(pixels)
    assert features.llm.shape == (1, 64, 192) and features.sam.shape == (1, 64, 16, 16)
    patches = torch.zeros(1, 64, tiny.vlm_config.vision_config.hidden_size)
    parts = bench.count_flops(model.clip_encode, pixels) + bench.count_flops(model.vision_to_sam, patches)
    assert bench.count_flops(model.encode_images, pixels) == parts > 0


def test_cli_json_has_the_documented_keys(capsys):
    assert bench.main(["vision", "--json", "--no_wall", "--sam", "base"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("flops_dual", "flops_single", "flop_ratio", "wall_ratio", "e2e_flop_ratio"):
        assert key in result
    assert result["wall_ratio"] is None  # --no-wall
    assert result["flop_ratio"] == pytest.approx(result["flops_dual"] / result["flops_single"])
    assert result["e2e_flop_ratio"] < result["flop_ratio"]
    report = bench.format_report(result)
    assert "SAM ViT-B" in report and "dual/vlm" in report


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["vision", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flags = {word.strip("[],") for word in text.split() if word.startswith(("--", "[--"))}
    assert {"--no_wall", "--skip_vit_h_wall", "--text_tokens", "--json", "--sam"} <= flags
    assert not [flag for flag in flags if "-" in flag[2:]]


def test_cli_options_reach_the_benchmark(monkeypatch):
    seen = {}

    def fake_benchmark(sam_variants, wall_variants, repeats, warmup, text_tokens):
        seen.update(sam=sam_variants, wall=wall_variants, repeats=repeats, warmup=warmup, text_tokens=text_tokens)
        return {"setups": {}}

    monkeypatch.setattr(bench.vision, "vision_benchmark", fake_benchmark)
    monkeypatch.setattr(bench.vision, "format_report", lambda result: "report")
    assert bench.main(["vision", "--sam", "base", "huge", "--skip_vit_h_wall", "--repeats", "5", "--warmup", "0",
                       "--text_tokens", "7"]) == 0
    assert seen == {"sam": ["base", "huge"], "wall": ["base"], "repeats": 5, "warmup": 0, "text_tokens": 7}


def test_wall_times_run_where_and_in_what_precision_they_are_asked():
    """A GPU runtime times the GPU in half precision; here the same switch on the CPU in bfloat16."""
    tiny_vlm = tiny_llava_config(vocab_size=40, image_token_id=4, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    result = bench.measure_wall_times(tiny_sam_config(), repeats=1, warmup=0, vlm_config=tiny_vlm,
                                      device="cpu", dtype=torch.bfloat16)
    assert (result["device"], result["dtype"]) == ("cpu", "bfloat16") and result["wall_ratio"] > 0
