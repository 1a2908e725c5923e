"""lisalib.lisa.evaluate: loading a trained run, both protocols, hand-checked scores, CLI, bad checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lisalib.lisa import evaluate as evaluate_module
from lisalib.reasonseg.dataset import eval_answer, question
from lisalib.lisa.evaluate import (CheckpointError, breakdown, evaluate, find_weights, load_trained, open_split,
                              results_table)
from lisalib.reasonseg.metrics import sample_iou
from lisalib.lisa.modeling import SegmentationResult
from lisalib.lisa.train import TrainArgs, train, trainable_state


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, synth_data):
    out = tmp_path_factory.mktemp("eval_run") / "run"
    train(TrainArgs(output_dir=str(out), data=str(synth_data), profile="tiny", vision_source="vlm", batch_size=2,
                    max_steps=3, warmup_steps=1, lr=1e-3, progress=False))
    return out


def test_load_trained_restores_the_saved_weights(trained_run):
    model = load_trained(trained_run)  # the run folder resolves to final/
    saved = load_trained(trained_run / "final")
    assert model.config.vision_source == "vlm"
    from safetensors.torch import load_file

    on_disk = load_file(trained_run / "final" / "trainable.safetensors")
    model.set_trainable(TrainArgs().trainable)
    restored = trainable_state(model)
    assert restored.keys() == on_disk.keys()
    assert all(torch.equal(restored[k], on_disk[k]) for k in on_disk)
    assert not any(p.requires_grad for p in saved.parameters())


def test_both_protocols_and_hand_checked_teacher_forced_iou(trained_run, synth_data):
    model = load_trained(trained_run)
    dataset = open_split(synth_data, "val")
    result = evaluate(model, dataset, max_samples=4, batch_size=3, keep_predictions=True, progress=False)
    assert result["n"] == 4 and set(result["protocols"]) == {"teacher_forced", "generate"}
    for protocol, figures in result["protocols"].items():  # gIoU is the mean of the per-sample IoUs
        ious = [r[f"iou_{protocol}"] for r in result["samples"]]
        assert figures["giou"] == pytest.approx(np.mean(ious)) and 0.0 <= figures["ciou"] <= 1.0
        assert figures["short"]["n"] + figures["long"]["n"] == 4
    has_seg = [r["has_seg"] for r in result["samples"]]
    assert result["protocols"]["generate"]["seg_rate"] == pytest.approx(np.mean(has_seg))
    assert all(r["iou_generate"] == 0.0 for r in result["samples"] if not r["has_seg"])  # no <SEG>, empty mask
    assert result["giou"] == result["protocols"]["teacher_forced"]["giou"]

    item = dataset[2]
    query = question(item["texts"][0], item["is_sentence"], image_token="").strip()
    mask = model.segment([item["image"]], [query], answers=[eval_answer()])[0].masks[0]
    record = result["samples"][2]
    assert record["iou_teacher_forced"] == pytest.approx(sample_iou(mask, item["mask"]))
    assert record["logits"].shape == item["mask"].shape
    assert np.array_equal(record["logits"].astype(np.float32) > 0, mask)


def test_generation_without_seg_scores_an_empty_mask(trained_run, synth_data, monkeypatch):
    model = load_trained(trained_run)
    dataset = open_split(synth_data, "val")
    real_segment = model.segment

    def no_seg(images, queries, answers=None, **kwargs):
        if answers is not None:
            return real_segment(images, queries, answers=answers, **kwargs)
        return [SegmentationResult("a circle .", np.zeros((0, *np.asarray(im).shape[:2]), bool),
                                   torch.zeros(0, *np.asarray(im).shape[:2])) for im in images]

    monkeypatch.setattr(model, "segment", no_seg)
    result = evaluate(model, dataset, protocols=("generate",), max_samples=3, progress=False)
    generate = result["protocols"]["generate"]
    assert generate["seg_rate"] == 0.0
    assert generate["giou"] == pytest.approx(0.0, abs=1e-9)  # every target is non-empty
    assert all(r["has_seg"] is False and r["answer"] == "a circle ." for r in result["samples"])


def test_results_table_lists_each_protocol(trained_run, synth_data):
    model = load_trained(trained_run)
    result = evaluate(model, open_split(synth_data, "val"), protocols=("teacher_forced",), max_samples=2,
                      progress=False)
    table = results_table({"vlm": result})
    assert "| vlm | teacher_forced |" in table and "generate" not in table


def test_cli_json_has_the_required_keys(trained_run, synth_data, capsys):
    code = evaluate_module.main(["--checkpoint", str(trained_run), "--data", str(synth_data), "--max_samples", "2",
                                 "--json", "--no_progress"])
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("giou", "ciou", "n"):
        assert key in figures
        for protocol in ("teacher_forced", "generate"):
            assert key in figures["protocols"][protocol]
    assert figures["n"] == 2


def test_bad_checkpoints_are_named(tmp_path, trained_run):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        find_weights(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no trainable.safetensors"):
        find_weights(tmp_path / "empty")
    folder, record = find_weights(trained_run)
    assert folder.name == "final" and record["args"]["vision_source"] == "vlm"
    assert evaluate_module.main(["--checkpoint", str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2


def test_bad_protocol_and_empty_evaluation(trained_run, synth_data):
    model = load_trained(trained_run)
    dataset = open_split(synth_data, "val")
    with pytest.raises(ValueError, match="protocols"):
        evaluate(model, dataset, protocols=("beam",))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(model, dataset, max_samples=0)


def test_breakdown_by_query_type(trained_run, synth_data):
    model = load_trained(trained_run)
    result = evaluate(model, open_split(synth_data, "val"), protocols=("teacher_forced",), max_samples=6,
                      progress=False)
    types = [r["query_type"] for r in result["samples"]]
    assert all(isinstance(t, str) for t in types)
    table = breakdown(result["samples"])
    assert sum(v["n"] for v in table.values()) == 6
    for name, figures in table.items():
        ious = [r["iou_teacher_forced"] for r in result["samples"] if r["query_type"] == name]
        assert figures["giou"] == pytest.approx(sum(ious) / len(ious))
        if figures["n"] > 1:  # the 95% interval of the mean: z * sd / sqrt(n) either side
            half = 1.96 * np.std(ious, ddof=1) / np.sqrt(len(ious))
            expected = (max(figures["giou"] - half, 0.0), min(figures["giou"] + half, 1.0))  # an IoU lies in [0, 1]
            assert (figures["low"], figures["high"]) == pytest.approx(expected)
    one = breakdown([{"iou_generate": 0.5, "is_sentence": True}], "is_sentence", "generate")
    assert one["True"]["giou"] == 0.5 and one["True"]["n"] == 1 and np.isnan(one["True"]["low"])
    by_shapes = breakdown(result["samples"], key="n_shapes")
    assert all(1 <= int(k) <= 6 for k in by_shapes)


def test_point_records_measure_the_click_against_the_mask():
    from lisalib.lisa.evaluate import point_record

    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[2:5, 4:9] = 1  # inside-centre (6, 3)
    assert point_record(np.array([6.0, 3.0]), mask) == {"point": [6.0, 3.0], "point_error": 0.0, "point_inside": True}
    far = point_record(np.array([19.7, 9.9]), mask)
    assert far["point_inside"] is False and far["point_error"] == pytest.approx(np.hypot(13.7, 6.9))
    assert point_record(np.array([1.0, 1.0]), np.zeros((4, 4), np.uint8))["point_error"] is None


@pytest.mark.parametrize("name, source", [("tiny-lisa-vlm", "vlm"), ("tiny-lisa-dual", "dual")])
def test_shipped_checkpoints_fit_the_shipped_zoo(name, source, synth_data):
    from lisalib.lisa.train import fingerprint

    folder, record = find_weights(name)
    # rebuilding tiny-llava or tiny-sam without `make lisa` would leave these bridges on the wrong base
    assert record["base"] == {"vlm": fingerprint("tiny-llava"), "sam": fingerprint("tiny-sam")}
    assert record["command"].startswith("OMP_NUM_THREADS=1 python -m lisalib.lisa.train")
    assert sum(f.stat().st_size for f in folder.iterdir()) < 5_000_000  # weights ~1.1 MB + a 19,000-line log
    model = load_trained(name)
    assert model.config.vision_source == source
    result = evaluate(model, open_split(synth_data, "val"), protocols=("teacher_forced",), progress=False)
    # the shipped runs on these 6 samples, measured when they were trained (one thread); a changed base,
    # raster or loader moves them
    assert result["n"] == 6 and result["giou"] == pytest.approx({"vlm": 0.7005, "dual": 0.7968}[source], abs=2e-3)
    assert model.config.seg_prompt == "point"  # the shipped route; the ladder's companions are named by prompt


def test_a_checkpoint_folder_and_the_cli_table(trained_run, synth_data, capsys):
    from lisalib.training.checkpoints import checkpoints

    [checkpoint] = checkpoints(trained_run)  # accelerate's checkpoints/checkpoint_3
    folder, record = find_weights(checkpoint)
    assert folder == checkpoint and record["step"] == 3 and record["args"]["vision_source"] == "vlm"
    assert evaluate_module.main(["--checkpoint", str(checkpoint), "--data", str(synth_data), "--protocol",
                                 "teacher_forced", "--max_samples", "2", "--no_progress"]) == 0
    lines = capsys.readouterr().out.splitlines()  # lisalib.cli.format_table
    assert lines[0].split() == ["model", "protocol", "gIoU", "cIoU", "short", "gIoU", "long", "gIoU", "n"]
    assert set(lines[1]) == {"-", " "} and lines[2].split()[1:2] == ["teacher_forced"] and len(lines) == 3


def test_results_table_puts_the_baselines_under_the_models():
    from lisalib.lisa.evaluate import results_table

    figures = {"giou": 0.5, "ciou": 0.25, "short": {"giou": 0.75}, "long": {"giou": 0.125}, "n": 4}
    table = results_table({"vlm": {"protocols": {"teacher_forced": figures}}}, baselines={"every shape": figures})
    assert table.splitlines()[2:] == ["| vlm | teacher_forced | 0.500 | 0.250 | 0.750 | 0.125 | 4 |",
                                      "| every shape | query-blind | 0.500 | 0.250 | 0.750 | 0.125 | 4 |"]


def test_ladder_rows_put_every_rung_in_order():
    from lisalib.lisa.ladder import HEADERS, ladder_rows, ladder_table

    m = {"giou": 0.5, "ciou": 0.4, "n": 10, "giou_low": 0.4, "giou_high": 0.6}
    model = {"protocols": {"teacher_forced": {**m, "point": {"median_error_px": 3.0, "inside_rate": 0.9}}}}
    rows = ladder_rows("dual", {"every shape": m, "random shape": m}, {"embedding, 10 steps": model,
                       "point, 10 steps": model, "point, 40 steps": model}, {"lm_state": m, "point": m})
    assert [r[1] for r in rows] == ["query-blind: every shape", "query-blind: random shape",
                                    "frozen LM state (decoder trained)", "trained: embedding, 10 steps",
                                    "trained: point, 10 steps", "trained: point, 40 steps", "centre click (ceiling)"]
    assert all(len(r) == len(HEADERS) for r in rows) and rows[4][5:7] == (3.0, 0.9)
    assert "0.400-0.600" in ladder_table(rows)


def test_shipped_runs_label_each_rung_by_prompt_and_steps():
    from lisalib.lisa.ladder import shipped_runs

    for design in ("vlm", "dual"):
        runs = shipped_runs(design)
        assert list(runs.values()) == [f"tiny-lisa-{design}-{p}" for p in ("embedding", "point", "both")] + [
            f"tiny-lisa-{design}"]
        labels = list(runs)
        assert labels[0] == "LISA's <SEG> embedding, 4,000 steps" and labels[1] == "point route, 4,000 steps"
        assert labels[-1].startswith("point route, ") and labels[-1].endswith(" steps (shipped)")
