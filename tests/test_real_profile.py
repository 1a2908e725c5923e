"""The real profile's CLI branches, run against the random-weight miniatures of its hub models.

``LISALIB_HUB_MAP`` maps ``llava-hf/llava-1.5-7b-hf`` and ``facebook/sam-vit-base`` to the miniatures, so
the real processors (336 px CLIP with 576 image tokens, 1024 px SAM), the Llama tokenizer's special tokens
and the real profile's sizes (batch 1 x 8 accumulation, LISA's embedding route) all run on a CPU.
"""
import json
from pathlib import Path

import pytest

from lisalib.profile import HUB_MAP_ENV, PROFILE_ENV, RUNS_ENV, get_profile


@pytest.fixture(scope="module")
def real_env(miniatures_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(HUB_MAP_ENV, str(miniatures_dir))
        patch.setenv(PROFILE_ENV, "real")
        patch.setenv(RUNS_ENV, str(tmp_path_factory.mktemp("runs")))
        yield get_profile()


@pytest.fixture(scope="module")
def real_run(real_env, synth_data, tmp_path_factory):
    from lisalib.lisa.train import notebook_args, train

    args = notebook_args(real_env, "vlm", synth_data, max_steps=1, grad_accum=2, save_every=1, progress=False)
    summary = train(args)
    return args, summary


def test_the_smoke_profile_is_the_real_one_with_tiny_budgets(real_env):
    assert real_env.name == "real" and real_env.smoke
    assert (real_env.vlm, real_env.sam) == ("llava-hf/llava-1.5-7b-hf", "facebook/sam-vit-base")
    assert (real_env.train_batch_size, real_env.grad_accum) == (1, 8)


def test_train_resume_and_notebook_recipe_on_the_miniatures(real_run):
    from lisalib.lisa.train import train

    args, summary = real_run
    assert summary["finished"] and summary["step"] == 1
    record = json.loads((Path(args.output_dir) / "run.json").read_text())
    assert record["args"]["vlm_name"] == "llava-hf/llava-1.5-7b-hf" and record["args"]["seg_prompt"] == "embedding"
    assert record["args"]["batch_size"] == 1 and record["args"]["gradient_checkpointing"] is True
    assert train(args)["step"] == 1  # a finished run is returned as it is, never retrained or deleted


def test_evaluate_cli_scores_a_real_profile_run(real_run, synth_data, capsys):
    from lisalib.lisa.evaluate import main

    args, _ = real_run
    assert main(["--checkpoint", args.output_dir, "--data", str(synth_data), "--max_samples", "2", "--batch_size", "1", "--json",
                 "--no_progress"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for protocol in ("teacher_forced", "generate"):
        assert 0.0 <= figures["protocols"][protocol]["giou"] <= 1.0 and figures["protocols"][protocol]["n"] == 2


def test_ceiling_cli_on_the_miniatures(real_env, synth_data, capsys):
    from lisalib.lisa.ceiling import main

    assert main(["--vision_source", "dual", "--prompt", "point", "--data", str(synth_data), "--vlm_name",
                 real_env.vlm, "--sam_name", real_env.sam, "--n_train", "2", "--n_val", "2", "--steps", "1",
                 "--batch_size", "1", "--json", "--no_progress"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["giou"] <= 1.0
