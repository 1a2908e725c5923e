import pytest

from lisalib.profile import ALLOW_CPU_ENV, HUB_MAP_ENV, PROFILE_ENV, RUNS_ENV, ProfileError, get_profile, resolve_profile_name


def test_tiny_is_default_without_gpu(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: False)
    profile = get_profile()
    assert profile.name == "tiny"
    assert (profile.vlm, profile.sam, profile.device) == ("tiny-llava", "tiny-sam", "cpu")
    assert not profile.load_in_4bit


def test_gpu_selects_real(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: True)
    assert resolve_profile_name() == "real"


def test_environment_overrides_hardware(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "TINY ")
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: True)
    assert get_profile().name == "tiny"
    monkeypatch.setenv(PROFILE_ENV, "real")
    monkeypatch.setenv(ALLOW_CPU_ENV, "1")
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: False)
    real = get_profile()
    assert real.vlm == "llava-hf/llava-1.5-7b-hf" and real.sam == "facebook/sam-vit-base"
    assert real.device == "cpu" and not real.load_in_4bit  # no GPU: no bitsandbytes-GPU path


@pytest.mark.parametrize("bad", ["small", "", "gpu", "tiny-llava"])
def test_bad_profile_name(monkeypatch, bad):
    if bad == "":
        monkeypatch.setenv(PROFILE_ENV, "")  # empty counts as unset: the hardware decides
        monkeypatch.setattr("lisalib.profile._cuda_available", lambda: False)
        assert resolve_profile_name() == "tiny"
        monkeypatch.setattr("lisalib.profile._cuda_available", lambda: True)
        assert resolve_profile_name() == "real"
        return
    with pytest.raises(ProfileError, match="tiny, real"):
        get_profile(bad)


def test_real_profile_without_gpu_names_the_gpu_and_the_opt_in(monkeypatch):
    for env in (ALLOW_CPU_ENV, HUB_MAP_ENV):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: False)
    with pytest.raises(ProfileError, match=f"CUDA GPU.*{ALLOW_CPU_ENV}=1"):
        get_profile("real")
    monkeypatch.setenv(HUB_MAP_ENV, "/somewhere/hub_map.json")  # CI's miniatures: real code paths, smoke budgets
    smoke = get_profile("real")
    assert smoke.smoke and smoke.device == "cpu" and smoke.train_steps <= 5 and smoke.eval_samples <= 8


def test_real_profile_sizes_every_batch_for_a_t4(monkeypatch):
    monkeypatch.delenv(HUB_MAP_ENV, raising=False)
    monkeypatch.setenv(RUNS_ENV, "/content/drive/MyDrive/lisalib-runs")
    monkeypatch.setattr("lisalib.profile._cuda_available", lambda: True)
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: including_emulation)  # a T4
    real = get_profile("real")
    assert (real.dtype, real.load_in_4bit, real.smoke) == ("float16", True, False)
    assert real.train_batch_size == 1 and real.eval_batch_size == 1 and real.encode_chunk <= 4
    assert real.runs_dir == "/content/drive/MyDrive/lisalib-runs"
    assert "single word or phrase" in real.answer_suffix
    tiny = get_profile("tiny")
    assert tiny.answer_suffix == "" and tiny.runs_dir == "/content/drive/MyDrive/lisalib-runs"


def test_train_cli_refuses_the_real_profile_without_a_gpu():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in (ALLOW_CPU_ENV, HUB_MAP_ENV)}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "lisalib.train", "--profile", "real", "--output_dir", "unused"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "CUDA GPU" in done.stderr and f"{ALLOW_CPU_ENV}=1" in done.stderr
