"""The tiny LaViDa: LaViDa's tower truncation, projector names, token layout counts, loss masking, round trips."""
import numpy as np
import pytest
import torch

from lisalib.shirg.data import encode_scenes, make_scenes
from lisalib.shirg.modeling import LavidaForCausalLM
from lisalib.shirg.train import LavidaRecipe, add_projector_lora, encode_text
from lisalib.zoo import load_siglip, load_text_lm


@pytest.fixture(scope="module")
def parts():
    siglip, processor = load_siglip("tiny-siglip")
    lm, tokenizer = load_text_lm("tiny-lm")
    model = LavidaForCausalLM.from_parts(siglip, lm).eval()
    data = encode_scenes(siglip, processor, make_scenes(4, 0, "val"), progress=False)
    return siglip, processor, model, tokenizer, data


def test_truncated_tower_is_the_full_towers_penultimate_layer(parts):
    siglip, processor, model, _, data = parts
    assert model.vision_tower.config.num_hidden_layers == siglip.config.vision_config.num_hidden_layers - 1
    assert not hasattr(model.vision_tower, "head") or model.vision_tower.head is None
    pixels = data.pixel_values([0, 1])
    expected = siglip.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(model.encode_views(pixels), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(data.features[:2].flatten(0, 1), expected, atol=1e-5, rtol=1e-5)
    # the processor's normalisation, replayed on the stored uint8 views
    direct = processor(images=[v.image for v in data.views[0]], return_tensors="pt")["pixel_values"]
    assert torch.equal(direct, data.pixel_values([0]))


def test_projector_names_and_lora_count(parts):
    model = parts[2]
    names = dict(model.named_modules())
    assert isinstance(names["mm_projector.0"], torch.nn.Linear) and isinstance(names["mm_projector.2"], torch.nn.Linear)
    assert isinstance(names["mm_projector.1"], torch.nn.GELU)
    copy = LavidaForCausalLM(model.config)
    copy.load_state_dict(model.state_dict())
    peft_model = add_projector_lora(copy, LavidaRecipe())
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == 4 * (64 + 96) + 4 * (96 + 96)  # r (in + out) per Linear: 1,408
    assert all("lora" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_layout_counts(parts):
    _, _, model, _, data = parts
    features = data.features[:2]
    pooled = model.image_tokens(features, "pooled")
    full = model.image_tokens(features, "full")
    # global 4x4 first, then the 2x2 crops tiled into 8x8 with one newline per row (LaViDa: 196 + 28 x 29 = 1008)
    assert [len(s.embeds) for s in pooled] == [16 + 8 * 9] * 2
    assert [len(s.embeds) for s in full] == [64 + 16 * 17] * 2
    selection = np.zeros((2, 5, 64), bool)
    selection[0, 0, :5] = True
    selection[0, 1, 0] = selection[0, 2, 0] = True  # the same tiled row: one newline
    selection[0, 3, 63] = True  # another row
    selection[1, 4, 10] = True
    chosen = model.image_tokens(features, "selected", selection)
    assert len(chosen[0].embeds) == 5 + 2 + 1 + 1 + 1 and len(chosen[1].embeds) == 2
    origin = chosen[0].origin
    assert origin[:5, 0].tolist() == [0] * 5 and origin[5].tolist() == [1, 0, 0] and origin[6].tolist() == [2, 0, 0]
    assert origin[7].tolist() == [-1, -1, -1]
    torch.testing.assert_close(chosen[0].embeds[7], model.image_newline)
    with pytest.raises(ValueError, match="selection"):
        model.image_tokens(features, "selected", selection[:, :, :10])
    with pytest.raises(ValueError, match="mode"):
        model.image_tokens(features, "cropped")


def test_project_then_pool_is_not_pool_then_project(parts):
    _, _, model, _, data = parts
    pooled = model.image_tokens(data.features[:1], "pooled")[0].embeds[:16]  # the global view's 4x4
    view = data.features[0, 0].reshape(8, 8, -1)
    blocks = view.reshape(4, 2, 4, 2, -1).mean(dim=(1, 3)).reshape(16, -1)  # bilinear x0.5 = 2x2 means
    torch.testing.assert_close(pooled, model.mm_projector(view.reshape(64, -1)).reshape(4, 2, 4, 2, -1)
                               .mean(dim=(1, 3)).reshape(16, -1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pooled, model.mm_projector(blocks), atol=1e-4)


def test_labels_cover_only_the_answer_and_the_loss_is_finite(parts):
    _, _, model, tokenizer, data = parts
    batch = data.samples[:3]
    text = encode_text(tokenizer, batch)
    for row, label, sample in zip(text["input_ids"], text["labels"], batch):
        kept = row[label != -100].tolist()
        assert tokenizer.decode(kept[:-1]).strip() == sample.answer and kept[-1] == tokenizer.eos_token_id
    out = model(**text, image_features=data.features[[s.scene_index for s in batch]])
    assert torch.isfinite(out.loss) and out.logits.shape[1] == 1 + 88 + text["input_ids"].shape[1] - 1
    with pytest.raises(ValueError, match="image_features or pixel_values"):
        model(**text)


def test_save_and_load_round_trip(parts, tmp_path):
    _, _, model, tokenizer, data = parts
    model.save_pretrained(tmp_path)
    loaded = LavidaForCausalLM.from_pretrained(tmp_path).eval()
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    text = encode_text(tokenizer, data.samples[:2])
    features = data.features[[s.scene_index for s in data.samples[:2]]]
    with torch.no_grad():
        torch.testing.assert_close(model(**text, image_features=features).logits,
                                   loaded(**text, image_features=features).logits)


def test_selection_overhead_reports_every_selector(parts):
    from lisalib.shirg.timing import selection_overhead

    siglip, processor, model, _, data = parts
    timing = selection_overhead(model, siglip, processor, data, budget=80, repeats=2)
    assert set(timing["seconds"]) == {"encoder", "text", "text_cached_phrases", "saliency"}
    assert all(v > 0 for v in timing["seconds"].values()) and timing["text_vs_encoder"] > 0



def test_save_run_and_load_run_keep_the_trained_projector(parts, tmp_path):
    """A run saved after its projector LoRA reloads with the same outputs, adapter on and off (peft wraps
    ``mm_projector.0`` / ``.2`` in place: saved naively, their weights became ``base_layer`` keys that
    ``from_pretrained`` dropped and re-initialised, a random projector)."""
    from lisalib.shirg.train import load_run, save_run

    _, _, model, tokenizer, data = parts
    clone = LavidaForCausalLM(model.config)
    clone.load_state_dict(model.state_dict())
    peft_model = add_projector_lora(clone.eval(), LavidaRecipe())
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a non-zero adapter, so "on" and "off" differ
    stage = {"steps": 1, "seconds": 0.0, "final_loss": 0.0}
    run = {"recipe": {}, "train_scenes": 1, "train_questions": 1, "stages": {"pooled": stage, "lora": stage},
           "lora_trainable_parameters": 1, "parameters": 1, "seconds": 0.0, "threads": 1,
           "versions": {"torch": "", "transformers": ""}}
    save_run(peft_model, tokenizer, run, tmp_path)
    loaded, _, _ = load_run(tmp_path)
    text = encode_text(tokenizer, data.samples[:2])
    features = data.features[[s.scene_index for s in data.samples[:2]]]
    with torch.no_grad():
        on = peft_model(**text, image_features=features).logits
        torch.testing.assert_close(loaded(**text, image_features=features).logits, on)
        with loaded.disable_adapter(), peft_model.disable_adapter():
            off = peft_model(**text, image_features=features).logits
            torch.testing.assert_close(loaded(**text, image_features=features).logits, off)
    assert not torch.allclose(on, off)
