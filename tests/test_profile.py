import pytest

from lisalib.profile import PROFILE_ENV, ProfileError, get_profile, resolve_profile_name


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
