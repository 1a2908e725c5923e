"""tiny-siglip: a real SiglipModel with so400m's code paths, SigLIP's processor conventions and sigmoid loss."""
import math

import numpy as np
import pytest
import torch
from transformers import SiglipModel, SiglipProcessor

from lisalib.accounting.registry import model_spec
from lisalib.world import encoder_views, generate_highres_scene, generate_scene
from lisalib.zoo.pretrain.siglip import (DATA, GRID, HELDOUT_SEED, TEXT_LENGTH, TRAIN_SEED, SiglipRecipe,
                                         build_tiny_siglip, evaluate_siglip, patch_embeddings, patch_similarity,
                                         pixels_from_uint8, plot_patch_similarity, pretrain_tiny_siglip,
                                         sigmoid_loss, training_pairs)

SIZE_FIELDS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
               "patch_size", "vocab_size", "max_position_embeddings", "projection_size"}
TINY = dict(train_scenes=40, highres_scenes=8, steps=16, caption_batch=8, crop_batch=24, view_batch=4,
            dense_weight=1.0, warmup_steps=2, lr=3e-3)


@pytest.fixture(scope="module")
def built():
    return build_tiny_siglip(seed=0)


@pytest.fixture(scope="module")
def trained():
    return pretrain_tiny_siglip(SiglipRecipe(**TINY), progress=False)


def test_config_keeps_so400m_code_paths(built):
    model, _ = built
    real = model_spec("siglip-so400m-patch14-384").config
    for tower in ("text_config", "vision_config"):
        ours = getattr(model.config, tower).to_dict()
        for key, value in real[tower].items():
            if key not in SIZE_FIELDS:
                assert ours[key] == value, (tower, key)
    vision = model.config.vision_config
    assert vision.vision_use_head and vision.hidden_act == "gelu_pytorch_tanh" and vision.layer_norm_eps == 1e-6
    assert model.config.text_config.hidden_size == vision.hidden_size  # one joint space, as SigLIP
    # no CLS token: exactly one position per patch, 8x8 per 64 px view
    assert model.vision_model.embeddings.position_embedding.num_embeddings == GRID * GRID == 64
    assert 300_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert model.logit_scale.item() == pytest.approx(math.log(10)) and model.logit_bias.item() == -10


def test_processor_shapes_and_max_length_padding(built):
    _, processor = built
    scene = generate_scene((HELDOUT_SEED, 0))
    out = processor(images=scene.render(), text=["the red triangle", scene.caption()], padding="max_length",
                    return_tensors="pt")
    assert set(out) == {"pixel_values", "input_ids"}  # SigLIP reads no attention mask
    assert out["pixel_values"].shape == (1, 3, 64, 64)
    assert out["input_ids"].shape == (2, TEXT_LENGTH)
    tok = processor.tokenizer
    assert tok.pad_token_id == tok.eos_token_id == 1
    first = out["input_ids"][0].tolist()
    assert tok.convert_ids_to_tokens(first[:4]) == ["the", "red", "triangle", "</s>"] and set(first[4:]) == {1}
    assert tok.unk_token_id not in out["input_ids"]


def test_stored_pixels_match_the_processor(built):
    _, processor = built
    image = generate_scene((TRAIN_SEED, 0)).render().resize((64, 64))
    stored = pixels_from_uint8(torch.from_numpy(np.array(image))[None], processor)
    assert torch.allclose(stored, processor(images=image, return_tensors="pt")["pixel_values"], atol=1e-5)


def test_sigmoid_loss_is_siglips(built):
    model, processor = built
    scenes = [generate_scene((TRAIN_SEED, i)) for i in range(3)]
    inputs = processor(images=[s.render() for s in scenes], text=[s.caption() for s in scenes],
                       padding="max_length", return_tensors="pt")
    with torch.no_grad():
        reference = model(**inputs, return_loss=True)
        ours = sigmoid_loss(reference.vision_model_output.pooler_output, reference.text_model_output.pooler_output,
                            torch.eye(3, dtype=torch.bool), model.logit_scale, model.logit_bias)
    assert ours.item() == pytest.approx(reference.loss.item(), rel=1e-5)


def test_training_lowers_the_loss_and_is_deterministic(trained):
    _, _, history = trained
    assert len(history) == TINY["steps"]
    assert np.mean(history[-4:]) < np.mean(history[:4])
    _, _, again = pretrain_tiny_siglip(SiglipRecipe(**TINY), progress=False)
    assert again == history


def test_training_data_pairs():
    data = training_pairs(SiglipRecipe(**TINY))
    assert data["caption_images"].shape == (40, 64, 64, 3) and data["caption_images"].dtype == torch.uint8
    names = {data["texts"][i] for i in data["crop_texts"].tolist()}
    assert any(n.startswith("the small ") for n in names) and "the red triangle" in names | set(data["texts"])
    assert len(data["view_images"]) == 5 * TINY["highres_scenes"]  # global view + 4 tiles each
    assert data["caption_touched"].shape[1:] == (17, 64)


def test_save_load_round_trip_with_plain_transformers(trained, tmp_path):
    model, processor, _ = trained
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = SiglipModel.from_pretrained(tmp_path)
    again_processor = SiglipProcessor.from_pretrained(tmp_path)
    original, reloaded = model.state_dict(), again.state_dict()
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key
    scene = generate_scene((HELDOUT_SEED, 1))
    a = processor(images=scene.render(), text=scene.caption(), padding="max_length", return_tensors="pt")
    b = again_processor(images=scene.render(), text=scene.caption(), padding="max_length", return_tensors="pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(**a).logits_per_image, again.eval()(**b).logits_per_image)


def test_hidden_states_grid_and_patch_similarity(trained):
    model, processor, _ = trained
    scene = generate_scene((HELDOUT_SEED, 2))
    pixels = processor(images=scene.render(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.vision_model(pixel_values=pixels, output_hidden_states=True)
        assert len(out.hidden_states) == model.config.vision_config.num_hidden_layers + 1
        assert out.hidden_states[-2].shape == (1, GRID * GRID, 64)  # 8x8 patch tokens, no CLS
        # patch embeddings are the pooling head applied to one token alone
        tokens = out.hidden_states[-2]
        head = model.vision_model.head(model.vision_model.post_layernorm(tokens[:, 5:6]))
        assert torch.allclose(torch.nn.functional.normalize(head, dim=-1), patch_embeddings(model, pixels)[:, 5],
                              atol=1e-5)
    similarity = patch_similarity(model, processor, scene.render(), f"the {scene.objects[0].name}")
    assert similarity.shape == (GRID, GRID) and np.all(np.abs(similarity) <= 1 + 1e-5)
    views = encoder_views(generate_highres_scene((HELDOUT_SEED, 0)))
    assert patch_similarity(model, processor, [v.image for v in views], "the red circle").shape == (5, GRID, GRID)
    import matplotlib

    matplotlib.use("Agg")
    assert plot_patch_similarity(scene.render(), similarity, "the red circle") is not None


def test_evaluate_returns_documented_keys(trained):
    model, processor, _ = trained
    metrics = evaluate_siglip(model, processor, n_scenes=8)
    assert set(metrics) == {"i2t_r1", "t2i_r1", "retrieval_chance", "retrieval_candidates", "patch_hit",
                            "patch_chance", "patch_n", "patch_inside", "patch_inside_chance", "highres_hit",
                            "highres_chance", "highres_n"}
    assert metrics["retrieval_candidates"] == 8 and metrics["retrieval_chance"] == 0.125
    assert 0 < metrics["patch_chance"] < 1 and metrics["patch_n"] > 8
    assert str(TRAIN_SEED) in DATA and str(HELDOUT_SEED) in DATA and TRAIN_SEED != HELDOUT_SEED
