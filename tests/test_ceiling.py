"""The mask-path ceilings: prompts, what trains, and that the mask path learns from a known-good prompt."""
import json
import shutil

import numpy as np
import pytest
import torch

from lisalib.lisa.ceiling import TARGET_NAMES, PromptedMaskPath, main, target_name
from lisalib.reasonseg.dataset import ReasonSegDataset
from lisalib.lisa.modeling import LisaForReasoningSegmentation


@pytest.mark.parametrize("source", ["vlm", "dual"])
def test_only_the_mask_path_trains_and_the_loss_falls(source, synth_data):
    torch.manual_seed(0)
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", source)
    llm_before = model.vlm.model.language_model.layers[0].self_attn.q_proj.weight.clone()
    decoder_before = model.sam.mask_decoder.mask_tokens.weight.clone()
    path = PromptedMaskPath(model)
    samples = [ReasonSegDataset(synth_data, "train")[i] for i in range(4)]
    encoded = path.encode(samples, progress=False)
    assert len(encoded["masks"]) == 4 and encoded["points"].shape == (4, 2)
    assert ((encoded["points"] >= 0) & (encoded["points"] <= 128)).all()  # SAM's 128 px input frame
    before = path.evaluate(encoded)["giou"]
    history = path.train(encoded, steps=40, batch_size=4, lr=3e-3, progress=False)
    assert np.mean(history[-5:]) < np.mean(history[:5])  # it fits four samples from their centre points
    assert torch.equal(model.vlm.model.language_model.layers[0].self_attn.q_proj.weight, llm_before)
    assert not torch.equal(model.sam.mask_decoder.mask_tokens.weight, decoder_before)
    assert not any(p.requires_grad for p in model.parameters())  # left frozen afterwards
    result = path.evaluate(encoded)
    # measured (one thread): vlm 0.002 -> 0.861 (its bridge starts random), dual 0.944 -> 0.992 (tiny-sam
    # already answers a click); the fit must clearly improve on where it started
    assert result["n"] == 4 and result["giou"] > before
    assert result["giou"] == pytest.approx({"vlm": 0.861, "dual": 0.992}[source], abs=0.03)


def test_cli_prints_json_and_rejects_a_missing_folder(synth_data, tmp_path, capsys):
    assert main(["--data", str(synth_data), "--n_train", "4", "--n_val", "2", "--steps", "2", "--json",
                 "--no_progress"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["n"] == 2 and figures["steps"] == 2 and figures["vision_source"] == "vlm"
    assert figures["prompt"] == "point"
    assert main(["--data", str(tmp_path / "nowhere"), "--steps", "1", "--no_progress"]) == 2
    assert "no such ReasonSeg folder" in capsys.readouterr().err


def test_needs_a_processor():
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", "vlm")
    model.processor = None
    with pytest.raises(ValueError, match="no processor"):
        PromptedMaskPath(model)


@pytest.mark.parametrize("prompt", ["appearance", "lm_state"])
def test_other_prompts_train_their_own_parameters_and_leave_the_llm_alone(prompt, synth_data):
    torch.manual_seed(0)
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", "vlm")
    llm_before = model.vlm.model.language_model.layers[-1].mlp.down_proj.weight.clone()
    projection_before = model.seg_projection.linear.weight.clone()
    path = PromptedMaskPath(model, prompt)
    samples = [ReasonSegDataset(synth_data, "train")[i] for i in range(4)]
    encoded = path.encode(samples, progress=False)
    if prompt == "lm_state":  # one frozen <SEG> state per sample, LLM width
        assert encoded["states"].shape == (4, model.config.vlm_config.text_config.hidden_size)
    else:  # the target's name, as the synthetic set wrote it
        assert [TARGET_NAMES[i] for i in encoded["names"]] == [target_name(s) for s in samples]
    before = path.evaluate(encoded)["giou"]
    history = path.train(encoded, steps=40, batch_size=4, lr=3e-3, progress=False)
    assert np.mean(history[-5:]) < np.mean(history[:5])
    assert torch.equal(model.vlm.model.language_model.layers[-1].mlp.down_proj.weight, llm_before)
    assert torch.equal(model.seg_projection.linear.weight, projection_before) == (prompt != "lm_state")
    assert not any(p.requires_grad for p in path.parameters)


def test_appearance_prompts_need_the_synthetic_metadata(synth_data, tmp_path):
    sample = ReasonSegDataset(synth_data, "train")[0]
    assert target_name(sample) in TARGET_NAMES
    image = tmp_path / "real.png"
    shutil.copy(sample["path"], image)
    annotation = json.loads(open(str(sample["path"]).rsplit(".", 1)[0] + ".json").read())
    annotation.pop("synth")  # what a real ReasonSeg annotation looks like
    image.with_suffix(".json").write_text(json.dumps(annotation))
    with pytest.raises(ValueError, match="real.json: no shapes-world target name"):
        target_name({**sample, "path": str(image)})


def test_unknown_prompt_is_refused_by_class_and_cli(synth_data, capsys):
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", "vlm")
    with pytest.raises(ValueError, match="prompt must be one of"):
        PromptedMaskPath(model, "box")
    with pytest.raises(SystemExit):
        main(["--data", str(synth_data), "--prompt", "box"])
    assert "invalid choice" in capsys.readouterr().err
