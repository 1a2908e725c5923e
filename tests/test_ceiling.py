"""The point-prompt ceiling: centre points, what trains, and that the mask path learns from a perfect prompt."""
import json

import numpy as np
import pytest
import torch

from lisalib.ceiling import PointPromptedMasks, centre_point, main, point_prompt_ceiling
from lisalib.data.reasonseg import ReasonSegDataset
from lisalib.modeling_lisa import LisaForReasoningSegmentation


def test_centre_point_uses_target_pixels_only():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:5, 4:7] = 1  # centre (5, 3)
    mask[8:10, 15:20] = 255  # ignore pixels do not pull the click
    assert centre_point(mask) == (5.0, 3.0)
    with pytest.raises(ValueError, match="no target pixels"):
        centre_point(np.full((4, 4), 255, np.uint8))


@pytest.mark.parametrize("source", ["vlm", "dual"])
def test_only_the_mask_path_trains_and_the_loss_falls(source, synth_data):
    torch.manual_seed(0)
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", source)
    llm_before = model.vlm.model.language_model.layers[0].self_attn.q_proj.weight.clone()
    decoder_before = model.sam.mask_decoder.mask_tokens.weight.clone()
    path = PointPromptedMasks(model)
    samples = [ReasonSegDataset(synth_data, "train")[i] for i in range(4)]
    encoded = path.encode(samples, progress=False)
    assert len(encoded["masks"]) == 4 and encoded["points"].shape == (4, 2)
    assert ((encoded["points"] >= 0) & (encoded["points"] <= 128)).all()  # SAM's 128 px input frame
    history = path.train(encoded, steps=40, batch_size=4, lr=3e-3, progress=False)
    assert np.mean(history[-5:]) < np.mean(history[:5])  # it fits four samples from their centre points
    assert torch.equal(model.vlm.model.language_model.layers[0].self_attn.q_proj.weight, llm_before)
    assert not torch.equal(model.sam.mask_decoder.mask_tokens.weight, decoder_before)
    assert not any(p.requires_grad for p in model.parameters())  # left frozen afterwards
    result = path.evaluate(encoded)
    assert result["n"] == 4 and 0.0 <= result["giou"] <= 1.0


def test_cli_prints_json_and_rejects_a_missing_folder(synth_data, tmp_path, capsys):
    assert main(["--data", str(synth_data), "--n_train", "4", "--n_val", "2", "--steps", "2", "--json",
                 "--no_progress"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["n"] == 2 and figures["steps"] == 2 and figures["vision_source"] == "vlm"
    assert main(["--data", str(tmp_path / "nowhere"), "--steps", "1", "--no_progress"]) == 2
    assert "no such ReasonSeg folder" in capsys.readouterr().err


def test_needs_a_processor():
    model = LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", "vlm")
    model.processor = None
    with pytest.raises(ValueError, match="no processor"):
        PointPromptedMasks(model)
