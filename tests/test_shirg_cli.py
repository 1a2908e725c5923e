"""``python -m lisalib.shirg``: the keys checks read, and clear errors."""
import json

import pytest

from lisalib.shirg.__main__ import main


def test_tokens_json_keys(capsys):
    assert main(["tokens", "--width", "1000", "--height", "500", "--pinpoints", "stage2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["views"], out["raw"], out["pooled"], out["llm"]) == (3, 2187, 588, 602)
    assert main(["tokens", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["views"], out["raw"], out["pooled"], out["llm"]) == (5, 3645, 980, 1008)


def test_cost_json(capsys):
    assert main(["cost", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["projector_lora_params"] == 860_160 and out["projector_params"] == 21_504_000
    assert [round(r["prefill_tflop"], 2) for r in out["table"]] == [3.45, 6.97, 14.18, 29.37, 57.84]


def test_select_json(capsys):
    assert main(["select", "--scene", "2", "--selector", "text", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget"] == 80 and out["questions"]
    for q in out["questions"]:
        assert len(q["kept"]) == 80 and all(0 <= v < 5 and 0 <= r < 8 and 0 <= c < 8 for v, r, c in q["kept"])
        assert q["kept"] == sorted(q["kept"])  # (view, row, col) order


@pytest.mark.parametrize("command", ["tokens", "select", "evaluate", "train", "cost"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "--json" in capsys.readouterr().out


def test_bad_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="budget K=400"):
        main(["select", "--budget", "400", "--json"])
