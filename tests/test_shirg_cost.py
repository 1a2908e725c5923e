"""lisalib.shirg.cost: prefill FLOPs, KV bytes, projector FLOPs/parameters, SigLIP encoder FLOPs."""
import pytest
import torch
from torch import nn

from lisalib.shirg import (LLADA_8B, cost_table, encoder_flops_per_view, kv_cache_bytes, lora_scale, prefill_flops,
                           projector_flops, projector_lora_params, projector_params, so400m_vision_config)

REFERENCE = {  # N: prefill TFLOP, attention TFLOP, projector GFLOP, KV GiB
    245: (3.45, 0.03, 10.5, 0.12),
    490: (6.97, 0.13, 21.1, 0.24),
    980: (14.18, 0.50, 42.1, 0.48),
    1960: (29.37, 2.01, 84.3, 0.96),
    3645: (57.84, 6.97, 156.7, 1.78),
}


def test_cost_table_matches_reference():
    rows = cost_table()
    assert [r["tokens"] for r in rows] == list(REFERENCE)
    for row in rows:
        got = (round(row["prefill_tflop"], 2), round(row["attention_tflop"], 2), round(row["projector_gflop"], 1),
               round(row["kv_gib"], 2))
        assert got == REFERENCE[row["tokens"]]
        assert 0.002 < row["projector_share"] < 0.004  # projector ~0.3% of prefill
    first, last = rows[2], rows[4]
    assert last["prefill_tflop"] / first["prefill_tflop"] == pytest.approx(4.08, abs=0.01)
    assert last["kv_gib"] / first["kv_gib"] == pytest.approx(3645 / 980)


def test_formulas():
    assert LLADA_8B == dict(d_model=4096, mlp=12288, layers=32, heads=32, max_seq=4096)
    p = prefill_flops(980)
    assert p["dense"] == 2 * 980 * (4 * 4096**2 + 3 * 4096 * 12288) * 32 and p["attention"] == 4 * 980**2 * 4096 * 32
    assert p["total"] == p["dense"] + p["attention"]
    assert kv_cache_bytes(1) == 32 * 2 * 4096 * 2 and kv_cache_bytes(10, d=8, layers=2, bytes=4) == 10 * 2 * 2 * 8 * 4
    assert projector_flops(1) == 2 * (1152 * 4096 + 4096 * 4096)
    with pytest.raises(ValueError, match=">= 0"):
        prefill_flops(-1)


def _projector():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(1152, 4096), nn.GELU(), nn.Linear(4096, 4096))


def test_projector_and_lora_counts():
    assert projector_params() == sum(p.numel() for p in _projector().parameters()) == 21_504_000
    assert projector_lora_params() == 860_160 and projector_lora_params(r=16) == 215_040
    assert lora_scale() == 0.25 and lora_scale(128, 64) == 2.0


def test_projector_lora_through_peft():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_projector(), LoraConfig(r=64, lora_alpha=16, target_modules=["0", "2"]))
    trainable, total = model.get_nb_trainable_parameters()
    assert trainable == 860_160 and total == 21_504_000 + 860_160
    assert model.base_model.model[0].scaling == {"default": 0.25}
    assert sorted({n.split(".lora")[0] for n, _ in model.named_parameters() if "lora_" in n}) == [
        "base_model.model.0", "base_model.model.2"]


def test_encoder_flops_per_view():
    lavida = encoder_flops_per_view()  # 26 layers: LaViDa's truncated tower
    full = encoder_flops_per_view(truncated=False, include_head=True)
    assert (lavida["tokens"], lavida["layers"], full["layers"]) == (729, 26, 27)
    assert lavida["tflop"] == pytest.approx(0.642, abs=0.001)  # the reference's ~0.64 TFLOP/view
    assert full["tflop"] == pytest.approx(0.670, abs=0.001) and full["head"] > 0
    assert lavida["attention"] / lavida["total"] == pytest.approx(0.099, abs=0.001)
    # the per-token weight count the formula uses = a real layer's weight matrices (biases and norms aside)
    config = so400m_vision_config()
    with torch.device("meta"):
        from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

        layer = SiglipEncoderLayer(config)
    weights = sum(p.numel() for n, p in layer.named_parameters() if n.endswith("weight") and p.dim() == 2)
    assert lavida["dense"] == 2 * 729 * weights * 26


def test_selection_flops_are_a_small_share_of_the_encoder():
    from lisalib.shirg.cost import encoder_flops_per_view, selection_flops

    r = selection_flops()
    assert r["encoder"] == 5 * encoder_flops_per_view()["total"]
    # per-token head map: 3645 tokens x 2 x (2 d^2 + 2 d f) + the dot products
    assert r["text_cached_phrases"] == 2 * 3645 * (2 * 1152 ** 2 + 2 * 1152 * 4304) + 2 * 3645 * 1152
    assert r["text"] > r["text_cached_phrases"]
    assert 0.02 < r["text_vs_encoder"] < 0.05 and 0.02 < r["saliency_vs_encoder"] < 0.05
