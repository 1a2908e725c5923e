"""Chapter 6's CLI and protocol on tiny budgets: train, save/load, evaluate (the JSON keys checks read), compare."""
import json

import pytest
import torch

from lisalib.captioning.__main__ import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("caption-runs")
    assert main(["train", "--steps", "3", "--train_images", "40", "--n_val", "8", "--out_dir", str(out),
                 "--no_progress", "--json"]) == 0
    return out


def test_train_writes_every_variant_and_a_resumable_sweep(runs, capsys):
    from lisalib.captioning.train import VARIANTS

    sweep = json.loads((runs / "sweep.json").read_text())
    assert [r["variant"] for r in sweep["runs"]] == list(VARIANTS)
    for r in sweep["runs"]:
        assert r["steps"] == 3 and r["recipe"]["batch_size"] == 32 and r["val"]["n_images"] == 8
        assert (runs / f"tiny-caption-{r['variant'].replace('_', '-')}-s0" / "trainable.safetensors").is_file()
    before = (runs / "tiny-caption-prefix-s0" / "run.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["train", "--variants", "prefix", "--steps", "3", "--train_images", "40", "--n_val", "8",
                 "--out_dir", str(runs), "--no_progress", "--json"]) == 0
    assert (runs / "tiny-caption-prefix-s0" / "run.json").stat().st_mtime_ns == before  # finished: not retrained


def test_every_variant_sees_the_same_batches():
    from lisalib.captioning.train import batch_plan

    a, b = batch_plan(100, 5, 8, seed=0), batch_plan(100, 5, 8, seed=0)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert not (batch_plan(100, 5, 8, seed=1)[0] == a[0]).all()


def test_saved_variant_reloads_to_the_same_outputs(runs):
    from lisalib.captioning.data import pixel_values, shapes_split
    from lisalib.captioning.evaluate import caption_images
    from lisalib.captioning.train import load_variant

    model, tokenizer, processor, record = load_variant(runs / "tiny-caption-prefix-pooled-s0")
    again, *_ = load_variant(runs / "tiny-caption-prefix-pooled-s0")
    val = shapes_split(4, "val")
    assert caption_images(model, tokenizer, processor, val.images) == caption_images(again, tokenizer, processor, val.images)
    assert record["variant"] == "prefix_pooled" and model.config.prefix_tokens == 16
    fresh_lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in fresh_lora)  # the trained LoRA came back (lora_B starts at zero)
    with pytest.raises(FileNotFoundError):
        load_variant(runs / "nothing-here")


def test_evaluate_json_has_the_keys_checks_read(runs, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--runs", str(runs), "--n_val", "8", "--seed", "1", "--no_timing", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["variants"]) >= {"prefix", "prefix_pooled", "ved", "ved_frozen"}
    for row in out["variants"].values():
        assert {"cider", "bleu4", "rouge_l", "step_seconds"} <= set(row)
    assert set(out["baselines"]) == {"most_frequent", "nearest_neighbour", "nearest_neighbour_patches"}
    assert all("cider" in b for b in out["baselines"].values()) and out["seed"] == 1 and out["n_val"] == 8


def test_benchmark_measures_every_variant(runs):
    from lisalib.captioning.data import shapes_split
    from lisalib.captioning.runs import load_shipped
    from lisalib.captioning.timing import benchmark

    bundles = {k: v[:3] for k, v in load_shipped(runs).items()}
    data = shapes_split(4, "train")
    before = {n: p.clone() for n, p in bundles["prefix"][0].named_parameters() if p.requires_grad}
    costs = benchmark(bundles, data.images, [r[0] for r in data.refs], batch_size=4, repeats=1, per_token_tokens=3)
    for row in costs.values():
        assert row["step_seconds"] > 0 and row["first_token_seconds"] > 0 and row["captions_per_second"] > 0
    after = dict(bundles["prefix"][0].named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # lr 0: timing never changes a model


def test_compare_reports_004s_claims_and_counts(capsys):
    assert main(["compare", "--sweep", "", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"][0]["total"] == 245_690_880 and out["counts"][2]["trainable"] == 2_286_144
    assert "5.7x" in out["claims_004"]["speedup"]


def test_real_size_timing_times_every_pool_factor_without_training():
    from lisalib.captioning.runs import real_size_timing

    out = real_size_timing(batch_size=1, factors=(1, 2), repeats=1)
    assert set(out["step_seconds"]) == {"s1", "s2"} and all(t > 0 for t in out["step_seconds"].values())
    assert out["speedup_vs_prefix"]["s1"] == 1.0 and out["batch_size"] == 1


def test_unknown_variant_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        main(["train", "--variants", "clipcap", "--steps", "1", "--out_dir", str(tmp_path), "--no_progress"])
