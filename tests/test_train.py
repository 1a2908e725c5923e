"""lisalib.lisa.train: exact resume, trainable-only checkpoints, NaN stop, interruption, LoRA, 4-bit, CLI,
and two processes reaching what one process reaches."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lisalib.lisa import train as train_module
from lisalib.lisa.modeling import LisaForReasoningSegmentation
from lisalib.lisa.train import TrainArgs, parse_args, read_log, train
from lisalib.training.checkpoints import checkpoints
from lisalib.training.loop import GlobalBatchSampler, SampleKey, TrainingStopped, epoch_order, shard_layout

ROOT = Path(__file__).resolve().parent.parent


def tiny_args(tmp_path, synth_data, name: str, **overrides) -> TrainArgs:
    values = dict(output_dir=str(tmp_path / name), data=str(synth_data), profile="tiny", vision_source="vlm",
                  batch_size=2, grad_accum=2, max_steps=6, epochs=5, warmup_steps=2, lr=1e-3, save_every=2,
                  progress=False)
    values.update(overrides)
    return TrainArgs(**values)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "trainable.safetensors")


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, synth_data):
    # LoRA's dropout draws from the global RNG every step: the restored RNG state matters
    straight = tiny_args(tmp_path, synth_data, "straight", use_lora=True)
    train(straight)
    broken = tiny_args(tmp_path, synth_data, "broken", use_lora=True)
    first = train(broken, stop_after=3)  # 3 is not a save point: the stop itself must save
    assert first["finished"] is False and first["step"] == 3
    assert not (tmp_path / "broken" / "final").exists()
    second = train(TrainArgs(**{**broken.__dict__, "resume": True}))
    assert second["finished"] is True and second["step"] == 6

    a, b = weights(tmp_path / "straight"), weights(tmp_path / "broken")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log_a, log_b = read_log(tmp_path / "straight"), read_log(tmp_path / "broken")
    drop_time = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]  # noqa: E731
    assert drop_time(log_a) == drop_time(log_b)
    assert [r["step"] for r in log_a] == [1, 2, 3, 4, 5, 6]
    # accelerate's total_limit (2) pruned the older ones: saved at 2 and 4, and at 6 when finished
    assert [c.name for c in checkpoints(tmp_path / "straight")] == ["checkpoint_4", "checkpoint_6"]


def test_checkpoint_holds_only_trainable_tensors_and_seg_rows(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "ckpt", max_steps=2, export_to=str(tmp_path / "shipped"))
    summary = train(args)
    shipped = sorted(p.name for p in (tmp_path / "shipped").iterdir())
    assert shipped == ["log.jsonl", "run.json", "summary.json", "trainable.safetensors"]
    state = weights(tmp_path / "ckpt")
    seg_rows = {k: v for k, v in state.items() if k.endswith("@seg_row")}
    assert len(seg_rows) == 2 and all(v.ndim == 1 for v in seg_rows.values())
    assert sum(v.numel() for v in state.values()) == summary["trainable_total"]
    assert summary["trainable_parameters"]["seg_row"] == sum(v.numel() for v in seg_rows.values())
    frozen = [k for k in state if "vision_tower" in k or ("language_model" in k and not k.endswith("@seg_row"))]
    assert frozen == []
    run = json.loads((tmp_path / "ckpt" / "final" / "run.json").read_text())
    assert run["args"]["vision_source"] == "vlm" and run["base"]["vlm"] is not None
    assert summary["seconds_per_step"] > 0 and summary["samples_per_second"] > 0 and summary["peak_memory_bytes"] > 0
    [folder] = checkpoints(tmp_path / "ckpt")
    assert folder.name == "checkpoint_2" and folder.parent.name == "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["optimizer.bin", "random_states_0.pkl", "scheduler.bin",
                                                        "state.json", "trainable.safetensors"]  # no model.safetensors
    assert load_file(folder / "trainable.safetensors").keys() == state.keys()
    # AdamW keeps two moments per trained number -- for seg_row two rows, not two embedding matrices -- except
    # for SAM's IoU-prediction head, which is in the decoder group (as in LISA) but no LISA loss reaches
    moments = torch.load(folder / "optimizer.bin", weights_only=False)["state"].values()
    iou_head = sum(v.numel() for k, v in state.items() if "iou_prediction_head" in k)
    assert iou_head > 0
    assert sum(v.numel() for m in moments for k, v in m.items() if k != "step") == 2 * (summary["trainable_total"] - iou_head)


def test_only_trainable_groups_change(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "groups", max_steps=2, trainable=("projections",)).resolved()
    before = train_module.build_model(args)
    train(args)
    state = weights(tmp_path / "groups")
    assert all(k.startswith(("vision_to_sam.", "seg_projection.")) for k in state)
    assert any(not torch.equal(state[k], dict(before.named_parameters())[k]) for k in state)


def test_nan_loss_stops_and_keeps_last_good_state(tmp_path, synth_data, monkeypatch):
    calls = {"n": 0}
    forward = LisaForReasoningSegmentation.forward

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 7:  # micro-batch 7 = step 4's first (grad_accum 2)
            out.loss, out.ce_loss = out.loss * float("nan"), out.ce_loss * float("nan")
        return out

    monkeypatch.setattr(LisaForReasoningSegmentation, "forward", poisoned)
    with pytest.raises(TrainingStopped, match="loss is nan at step 4"):
        train(tiny_args(tmp_path, synth_data, "nan"))
    saved = checkpoints(tmp_path / "nan")
    assert saved[-1].name == "checkpoint_3"
    assert json.loads((saved[-1] / "state.json").read_text())["step"] == 3
    assert not (tmp_path / "nan" / "final").exists()
    assert all(torch.isfinite(t).all() for t in load_file(saved[-1] / "trainable.safetensors").values())


def test_keyboard_interrupt_mid_step_saves_and_resume_equals_uninterrupted(tmp_path, synth_data, monkeypatch):
    """Ctrl-C in the second micro-batch of step 2, after the first drew LoRA dropout masks: the saved state is
    step 1's end (weights, optimizer, RNG), so the resumed run ends bit for bit where an uninterrupted one does."""
    straight = tiny_args(tmp_path, synth_data, "straight", max_steps=3, use_lora=True)
    train(straight)
    calls = {"n": 0}
    forward = LisaForReasoningSegmentation.forward

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # grad_accum 2: step 2's second micro-batch
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(LisaForReasoningSegmentation, "forward", interrupted)
    args = tiny_args(tmp_path, synth_data, "ctrl_c", max_steps=3, use_lora=True)
    with pytest.raises(KeyboardInterrupt):
        train(args)
    assert checkpoints(tmp_path / "ctrl_c")[-1].name == "checkpoint_1"
    monkeypatch.setattr(LisaForReasoningSegmentation, "forward", forward)
    assert train(TrainArgs(**{**args.__dict__, "resume": True}))["step"] == 3
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "ctrl_c")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_needs_resume(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "twice", max_steps=1)
    train(args)
    with pytest.raises(FileExistsError, match="--resume"):
        train(args)


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_record(tmp_path, synth_data):
    """Re-running a notebook cell with resume=True must not delete or overwrite a finished run."""
    args = tiny_args(tmp_path, synth_data, "done", max_steps=2, resume=True)
    first = train(args)
    before = weights(tmp_path / "done")
    log = (tmp_path / "done" / "log.jsonl").read_text()
    again = train(args)
    assert again == first and again["finished"]
    assert (tmp_path / "done" / "log.jsonl").read_text() == log
    after = weights(tmp_path / "done")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_point_route_trains_and_logs_its_location_loss(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "point", max_steps=2, use_lora=True, seg_prompt="point")
    summary = train(args)
    assert summary["trainable_parameters"]["projections"] > 0
    log = read_log(tmp_path / "point")
    assert all(r["location"] > 0 for r in log)
    assert any(k.startswith("seg_to_point.") for k in weights(tmp_path / "point"))


def test_lora_adds_exact_adapter_count(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "lora", max_steps=1, use_lora=True, lora_r=8)
    summary = train(args)
    # r * (in + out) per adapted Linear: q_proj and v_proj (192 -> 192) in each of 4 layers
    assert summary["trainable_parameters"]["lora"] == 8 * (192 + 192) * 2 * 4
    assert any("lora_A" in k for k in weights(tmp_path / "lora"))


def test_4bit_llm_trains_on_cpu(tmp_path, synth_data):
    pytest.importorskip("bitsandbytes")
    args = tiny_args(tmp_path, synth_data, "nf4", max_steps=1, load_in_4bit=True, use_lora=True).resolved()
    model = train_module.build_model(args)
    assert type(model.vlm.model.language_model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    assert train(args)["finished"]


def test_bf16_mixed_precision_step(tmp_path, synth_data):
    summary = train(tiny_args(tmp_path, synth_data, "bf16", max_steps=1, dtype="bf16"))
    assert summary["finished"]
    assert all(v.dtype == torch.float32 for v in weights(tmp_path / "bf16").values())  # fp32 master weights


def test_data_order_depends_on_seed_and_epoch_only():
    assert epoch_order(10, 0, 0) == epoch_order(10, 0, 0)
    assert epoch_order(10, 0, 0) != epoch_order(10, 0, 1)
    assert sorted(epoch_order(10, 3, 2)) == list(range(10))

    batches = list(GlobalBatchSampler(5, 2, seed=0, num_batches=5))
    assert [{k.epoch for k in b} for b in batches] == [{0}, {0}, {0}, {1}, {1}] and [len(b) for b in batches] == [2, 2, 1, 2, 2]
    assert [k.index for b in batches[:3] for k in b] == epoch_order(5, 0, 0)
    assert list(GlobalBatchSampler(5, 2, seed=0, num_batches=5)) == batches  # (seed, epoch) only


def test_shards_of_a_global_batch_count_every_sample_once():
    keys = [SampleKey(0, i) for i in (4, 1, 3)]
    # two processes, global batch 4: slices of 2 each; the short batch of 3 splits 2 + 1, padded with None
    assert shard_layout(keys, 4, 2) == [keys[0], keys[1], keys[2], None]
    # one sample for two processes: the second gets a stand-in that counts for nothing
    assert shard_layout(keys[:1], 4, 2) == [keys[0], None, SampleKey(0, 4, weight=0), None]
    layouts = list(GlobalBatchSampler(5, 4, seed=0, num_batches=2, num_processes=2))
    assert all(len(b) == 4 for b in layouts)  # what accelerate's split_batches needs
    assert sorted(k.index for b in layouts for k in b if k is not None and k.weight) == list(range(5))
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        GlobalBatchSampler(5, 3, seed=0, num_batches=1, num_processes=2)


@pytest.mark.parametrize("overrides, message", [
    ({"vision_source": "clip"}, "vision_source"),
    ({"dtype": "fp8"}, "dtype"),
    ({"batch_size": 0}, "batch_size"),
    ({"trainable": ("lora",)}, "--use_lora"),
    ({"trainable": ("decoder",)}, "unknown trainable group"),
    ({"trainable": ("llm",), "load_in_4bit": True}, "cannot train 4-bit weights"),
])
def test_bad_arguments_are_clear(tmp_path, synth_data, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_args(tmp_path, synth_data, "bad", **overrides))


def test_cli_names_follow_the_seed_design(capsys):
    args = parse_args(["--vlm_name", "tiny-llava", "--sam_name", "tiny-sam", "--epochs", "2", "--batch_size", "1",
                       "--lr", "3e-4", "--dtype", "bf16", "--use_vlm_vision", "--no_quantization", "--use_lora"])
    assert (args.vision_source, args.epochs, args.batch_size, args.lr, args.dtype) == ("vlm", 2, 1, 3e-4, "bf16")
    assert args.load_in_4bit is False and args.use_lora
    assert parse_args(["--dual_vision"]).vision_source == "dual"
    assert parse_args(["--trainable", "projections,seg_row", "--lora_target_modules", "q_proj", "v_proj"]).trainable == (
        "projections", "seg_row")
    assert parse_args(["--load_in_4bit", "--no_progress"]).load_in_4bit is True
    assert parse_args([]).load_in_4bit is None  # the profile decides
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "--use_vlm_vision" in capsys.readouterr().out


def test_cli_runs_and_prints_json(tmp_path, synth_data, capsys):
    code = train_module.main(["--output_dir", str(tmp_path / "cli"), "--data", str(synth_data), "--profile", "tiny",
                              "--max_steps", "1", "--batch_size", "2", "--no_progress", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 1 and summary["vision_source"] == "vlm"
    assert train_module.main(["--output_dir", str(tmp_path / "cli"), "--data", str(synth_data), "--max_steps", "1",
                              "--no_progress"]) == 2  # exists, no --resume


def test_missing_train_split_is_written_once(tmp_path):
    from lisalib.lisa.train import ensure_train_split

    folder = ensure_train_split(tmp_path / "data", n=3, seed=1, progress=False)
    assert len(list(folder.glob("*.json"))) == 3 and len(list(folder.glob("*.png"))) == 3
    stamp = sorted(p.stat().st_mtime_ns for p in folder.iterdir())
    assert ensure_train_split(tmp_path / "data", n=5, seed=1, progress=False) == folder
    assert sorted(p.stat().st_mtime_ns for p in folder.iterdir()) == stamp  # existing data is never rewritten


def test_two_processes_reach_the_weights_of_one(tmp_path):
    """torchrun, 2 CPU processes (gloo), the same global batch of 4 as one process: the short batch of one
    sample leaves one process a stand-in, gradient accumulation runs under DDP's no_sync."""
    from lisalib.reasonseg.synth import write_split

    data = tmp_path / "data"
    write_split(data, "train", 5, seed=1)
    flags = ["--profile", "tiny", "--data", str(data), "--batch_size", "4", "--grad_accum", "2", "--epochs", "2",
             "--warmup_steps", "1", "--lr", "1e-3", "--no_progress"]
    train(parse_args(flags + ["--output_dir", str(tmp_path / "one")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LISALIB_PROFILE": "tiny", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "lisalib.lisa.train", *flags, "--output_dir", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert one.keys() == two.keys()
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4
    assert [r["step"] for r in read_log(tmp_path / "two")] == [1, 2]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["samples_per_second"] > 0


def test_resume_refuses_other_settings_but_allows_a_longer_budget(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "settings", max_steps=2)
    train(args)
    with pytest.raises(ValueError, match="lr 0.001 -> 0.002"):
        train(TrainArgs(**{**args.__dict__, "resume": True, "lr": 2e-3}))
    assert train(TrainArgs(**{**args.__dict__, "resume": True, "max_steps": 3}))["step"] == 3


def test_a_log_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path, synth_data):
    args = tiny_args(tmp_path, synth_data, "cut", max_steps=2, save_every=1)
    train(args, stop_after=1)
    with (tmp_path / "cut" / "log.jsonl").open("a") as log:
        log.write('{"step": 2, "lo')  # the process died mid-write
    assert train(TrainArgs(**{**args.__dict__, "resume": True}))["step"] == 2
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2]
