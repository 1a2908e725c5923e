"""The shipped tiny zoo: loads with plain transformers, round-trips exactly, still meets its bars."""
import json

import numpy as np
import pytest
import torch
from transformers import (AutoProcessor, AutoTokenizer, GPT2LMHeadModel, LlamaForCausalLM, LlavaForConditionalGeneration,
                          LlavaProcessor, SamModel, SamProcessor, SiglipModel, SiglipProcessor)

from lisalib.zoo import (ZOO_MODELS, ZooError, load_sam, load_siglip, load_text_lm, load_vlm, load_zoo_model, resolve,
                         zoo_path)
from lisalib.zoo.build import ACCURACY_AIMS, REGRESSION_FLOORS, read_card
from lisalib.zoo.pretrain.sam import evaluate_sam
from lisalib.zoo.pretrain.vlm import evaluate_vlm

MAX_ZOO_BYTES = 30 * 1024 * 1024


@pytest.mark.parametrize("name,cls", [("tiny-llava", LlavaForConditionalGeneration), ("tiny-sam", SamModel),
                                      ("tiny-lm", LlamaForCausalLM), ("tiny-gpt2", GPT2LMHeadModel),
                                      ("tiny-siglip", SiglipModel)])
def test_loads_with_plain_transformers(name, cls):
    directory = zoo_path(name)
    model = cls.from_pretrained(directory)  # no lisalib code in between
    if ZOO_MODELS[name] == "text_lm":
        tokenizer = AutoTokenizer.from_pretrained(directory)
        assert {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id} < set(range(len(tokenizer)))
    else:
        processor = AutoProcessor.from_pretrained(directory)
        assert isinstance(processor, {"tiny-llava": LlavaProcessor, "tiny-sam": SamProcessor,
                                      "tiny-siglip": SiglipProcessor}[name])
    card = json.loads((directory / "zoo_card.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]


def test_zoo_is_small():
    total = sum(f.stat().st_size for name in ZOO_MODELS for f in zoo_path(name).rglob("*") if f.is_file())
    assert total < MAX_ZOO_BYTES


@pytest.mark.parametrize("loader,name", [(load_vlm, "tiny-llava"), (load_sam, "tiny-sam"), (load_text_lm, "tiny-lm"),
                                         (load_text_lm, "tiny-gpt2"), (load_siglip, "tiny-siglip")])
def test_save_load_round_trip_is_bit_exact(loader, name, tmp_path):
    model, processor = loader(name)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, _ = loader(str(tmp_path))
    original, reloaded = model.state_dict(), again.state_dict()
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key


def test_tiny_llava_keeps_its_floor_on_heldout_questions():
    metric, floor = REGRESSION_FLOORS["tiny-llava"]
    result = evaluate_vlm(*load_vlm("tiny-llava"), n_scenes=16)  # about 90 questions, a few seconds
    assert result["n"] >= 60
    assert result[metric] >= floor, result


@pytest.mark.parametrize("name", ["tiny-lm", "tiny-gpt2"])
def test_text_lms_keep_their_floor_on_heldout_text(name):
    from lisalib.zoo.pretrain.text_lm import evaluate_text_lm

    metric, floor = REGRESSION_FLOORS[name]
    result = evaluate_text_lm(*load_text_lm(name), n_scenes=16)
    assert result["roundtrip"] == 1.0 and result[metric] >= floor, result


def test_tiny_siglip_keeps_its_floor_on_patches_and_retrieval():
    from lisalib.zoo.pretrain.siglip import evaluate_siglip

    metric, floor = REGRESSION_FLOORS["tiny-siglip"]
    result = evaluate_siglip(*load_siglip("tiny-siglip"), n_scenes=40)
    assert result[metric] >= floor and result[metric] > 3 * result["patch_chance"], result
    assert result["i2t_r1"] > 5 * result["retrieval_chance"], result


def test_tiny_sam_keeps_its_floor_from_a_centre_point():
    metric, floor = REGRESSION_FLOORS["tiny-sam"]
    result = evaluate_sam(*load_sam("tiny-sam"), n_scenes=16)
    assert result["n"] >= 40
    assert result[metric] >= floor, result


@pytest.mark.parametrize("name", list(ZOO_MODELS))
def test_cards_record_measured_figures_against_the_aim(name):
    card = read_card(name)
    metric, aim = ACCURACY_AIMS[name]
    assert card["aim"] == {"metric": metric, "min": aim, "met": card["metrics"][metric] >= aim}
    assert card["metrics"][metric] >= REGRESSION_FLOORS[name][1]
    assert card["build_command"].startswith(f"python -m lisalib.zoo build --only {name}")


def test_cards_were_built_with_the_default_recipes():
    """So that the build command a card names (no --recipe) rebuilds the shipped weights."""
    from dataclasses import asdict

    from lisalib.zoo.build import _family

    for name in ZOO_MODELS:
        assert read_card(name)["recipe"] == asdict(_family(name)[0]()), name


def test_bad_names_give_clear_errors(tmp_path):
    with pytest.raises(ZooError, match="not a zoo model"):
        load_vlm("tiny-lava")
    with pytest.raises(ZooError, match="does not exist"):
        load_sam("./no/such/dir")
    with pytest.raises(ZooError, match="no config.json"):
        load_sam(str(tmp_path))
    assert resolve("llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf"  # hub ids pass through untouched
    assert resolve("tiny-sam") == str(zoo_path("tiny-sam"))


def test_conversation_labels_cover_answers_only():
    from lisalib.constants import chat_prompt
    from lisalib.world.scenes import generate_scenes
    from lisalib.zoo.pretrain.vlm import build_tiny_llava, collate_conversations

    _, processor = build_tiny_llava()
    batch = collate_conversations(processor, [[("what color is the star?", "red"), ("how many shapes are there?", "two")],
                                              [("is there a blue circle?", "no")]])
    tokens = processor.tokenizer.convert_ids_to_tokens
    labelled = [tokens([int(i) for i, l in zip(row, labels) if l != -100])
                for row, labels in zip(batch["input_ids"], batch["labels"])]
    assert labelled == [["red", "</s>", "two", "</s>"], ["no", "</s>"]]
    single = processor(images=[generate_scenes(1)[0].render()], text=[chat_prompt("is there a blue circle?")],
                       return_tensors="pt")["input_ids"][0]
    assert torch.equal(batch["input_ids"][1, :len(single)], single)  # turn one is exactly the inference prompt


def test_pretraining_loops_run_and_learn_something():
    from lisalib.zoo.pretrain.sam import SamRecipe, build_tiny_sam, pretrain_sam
    from lisalib.zoo.pretrain.vlm import VlmRecipe, build_tiny_llava, pretrain_vlm

    for build, pretrain, recipe in (
        (build_tiny_llava, pretrain_vlm, VlmRecipe(train_scenes=16, vision_steps=2, vision_batch_size=4, steps=3, batch_size=4,
                                                    rec_steps=0)),
        (build_tiny_sam, pretrain_sam, SamRecipe(train_scenes=16, steps=3, batch_size=4)),
    ):
        before = {k: v.clone() for k, v in build(0)[0].state_dict().items()}
        model, _, history = pretrain(recipe, progress=False)
        assert len(history) == recipe.steps and all(np.isfinite(history))
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert len(changed) > len(before) // 2


def test_stage_two_can_keep_the_stage_one_projector():
    """``train_projector=False`` trains only the LM in stage 2 (the projector keeps what stage 1 taught)."""
    from lisalib.zoo.pretrain.vlm import VlmRecipe, build_tiny_llava, pretrain_vlm

    before = {k: v.clone() for k, v in build_tiny_llava(0)[0].state_dict().items()}
    recipe = VlmRecipe(train_scenes=8, vision_steps=0, steps=2, batch_size=2, train_projector=False, rec_steps=0)
    model, _, _ = pretrain_vlm(recipe, progress=False)
    after = model.state_dict()
    projector = [k for k in after if "multi_modal_projector" in k]
    assert projector and all(torch.equal(after[k], before[k]) for k in projector)
    assert not torch.equal(after["model.language_model.layers.0.self_attn.q_proj.weight"],
                           before["model.language_model.layers.0.self_attn.q_proj.weight"])
    assert all(p.requires_grad for p in model.parameters())  # the returned model is left fully trainable


def test_stage_three_adds_location_tokens_and_trains_boxes(tmp_path):
    """Stage 3 grows the vocabulary by the grounding words and location tokens (old ids unchanged), trains
    the tower when asked, and can start from a saved checkpoint instead of stages 1-2."""
    from lisalib.zoo.pretrain.vlm import VlmRecipe, build_tiny_llava, pretrain_vlm
    from lisalib.zoo.tokenizer import LOCATION_TOKENS

    model, processor = build_tiny_llava(0)
    rows = model.get_input_embeddings().num_embeddings
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    tower = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
    recipe = VlmRecipe(train_scenes=8, batch_size=2, rec_steps=2, rec_turns=2, warmup_steps=1)
    grounded, grounded_processor, history = pretrain_vlm(recipe, progress=False, start_from=str(tmp_path))
    assert len(history) == 2 and all(np.isfinite(history))
    vocab = grounded_processor.tokenizer.get_vocab()
    assert all(t in vocab for t in LOCATION_TOKENS)
    assert grounded.get_input_embeddings().num_embeddings == len(grounded_processor.tokenizer) == rows + 39
    assert all(vocab[w] == i for w, i in processor.tokenizer.get_vocab().items())
    after = grounded.model.vision_tower.state_dict()
    assert any(not torch.equal(after[k], tower[k]) for k in tower)  # rec_train_tower


def test_shipped_tiny_llava_points_at_referred_shapes():
    """The shipped card's referring-box accuracy (IoU >= 0.5) meets the issue's bar with QA kept."""
    card = read_card("tiny-llava")
    assert card["metrics"]["rec"] >= 0.7 and card["metrics"]["qa"] >= 0.9


@pytest.mark.parametrize("name", list(ZOO_MODELS))
def test_weights_are_stored_as_the_card_says_and_load_as_float32(name):
    """fp16 storage halves the package; loading upcasts exactly, so every chapter still computes in fp32."""
    from safetensors import safe_open

    from lisalib.zoo.build import STORAGE_DTYPES

    card = read_card(name)
    assert card["storage_dtype"] == str(STORAGE_DTYPES[name]).removeprefix("torch.")
    with safe_open(str(zoo_path(name) / "model.safetensors"), framework="pt") as weights:
        stored = {weights.get_slice(key).get_dtype() for key in weights.keys()}
    expected = {"float16": "F16", "float32": "F32"}[card["storage_dtype"]]
    assert expected in stored and stored <= {expected, "I64"}
    model, _ = load_zoo_model(name)
    assert {p.dtype for p in model.parameters()} == {torch.float32}



def test_position_std_redraws_only_the_tower_position_table():
    from lisalib.zoo.pretrain.vlm import build_tiny_llava

    default = build_tiny_llava(0)[0].state_dict()
    scaled = build_tiny_llava(0, position_std=2.0)[0].state_dict()
    table = "model.vision_tower.embeddings.position_embedding.weight"
    assert default[table].std() < 0.05  # CLIP's own init
    assert 1.8 < scaled[table].std() < 2.2
    changed = [k for k, v in scaled.items() if not torch.equal(v, default[k])]
    assert changed == [table]


def test_grounding_batches_hold_the_scene_position_questions_only():
    from lisalib.world.scenes import generate_scenes
    from lisalib.zoo.pretrain.vlm import grounding_turns, scene_texts

    scenes = generate_scenes(20, seed=3)
    for scene in scenes:
        expected = [(qa["question"], qa["answer"]) for qa in scene.questions() if qa["type"] == "position"]
        assert grounding_turns(scene_texts(scene)) == expected
    assert any(grounding_turns(scene_texts(s)) for s in scenes)
    assert all(q.startswith("where is the ") for s in scenes for q, _ in grounding_turns(scene_texts(s)))


def test_build_cli_tries_recipe_changes_outside_the_zoo(tmp_path, capsys):
    from lisalib.zoo.__main__ import main, recipe_overrides

    assert recipe_overrides("tiny-llava", ["position_std=2.0", "grounding_every=3", "augment=false"]) == \
        {"position_std": 2.0, "grounding_every": 3, "augment": False}
    with pytest.raises(ZooError, match="KEY one of"):
        recipe_overrides("tiny-llava", ["positon_std=2"])
    with pytest.raises(ZooError, match="not a number"):
        recipe_overrides("tiny-sam", ["steps=many"])
    with pytest.raises(SystemExit):
        main(["build", "--recipe", "steps=2", "--out_dir", str(tmp_path)])  # which model?
    before = (zoo_path("tiny-sam") / "model.safetensors").stat().st_mtime
    out = tmp_path / "sam"
    assert main(["build", "--only", "tiny-sam", "--recipe", "steps=2", "--recipe", "train_scenes=8",
                 "--recipe", "batch_size=4", "--out_dir", str(out), "--json"]) == 0
    card = json.loads((out / "zoo_card.json").read_text())
    assert card["recipe"]["steps"] == 2 and card["recipe"]["train_scenes"] == 8
    assert json.loads(capsys.readouterr().out)["tiny-sam"]["recipe"]["steps"] == 2
    assert (zoo_path("tiny-sam") / "model.safetensors").stat().st_mtime == before  # the zoo is untouched


def test_isolated_turns_compute_each_answer_as_the_single_question_prompt():
    """Packed turns see the image prefix and their own question only: the same logits as asking alone."""
    from lisalib.world.scenes import generate_scenes
    from lisalib.zoo.pretrain.vlm import (build_tiny_llava, collate_conversations, embed_with_image_features,
                                          encode_images, vision_features)

    model, processor = build_tiny_llava(0)
    model.eval()
    features = vision_features(model, encode_images(processor, generate_scenes(2, seed=4)))
    turns = [("what color is the star?", "red"), ("how many shapes are there?", "two"), ("where is the blue circle?", "top left")]
    packed = collate_conversations(processor, [turns, turns[:1]], isolated=True)
    assert packed["attention_mask"].shape == (2, 1, packed["input_ids"].shape[1], packed["input_ids"].shape[1])
    with torch.no_grad():
        logits = model(inputs_embeds=embed_with_image_features(model, packed["input_ids"], features),
                       attention_mask=packed["attention_mask"], position_ids=packed["position_ids"]).logits
    answered = packed["labels"][0, 1:] != -100
    packed_answers = logits[0, :-1][answered]
    start = 0
    for turn in turns:
        alone = collate_conversations(processor, [[turn]])
        with torch.no_grad():
            single = model(inputs_embeds=embed_with_image_features(model, alone["input_ids"], features[:1]),
                           attention_mask=alone["attention_mask"]).logits[0, :-1][alone["labels"][0, 1:] != -100]
        assert torch.allclose(packed_answers[start:start + len(single)], single, atol=1e-4)
        start += len(single)
    assert start == len(packed_answers)
    first = collate_conversations(processor, [turns[:1]])["input_ids"][0]
    assert torch.equal(packed["input_ids"][1, :len(first)], first)  # one turn packed is the plain prompt
    tokens = processor.tokenizer.convert_ids_to_tokens
    assert tokens([int(i) for i, l in zip(packed["input_ids"][0], packed["labels"][0]) if l != -100]) == \
        ["red", "</s>", "two", "</s>", "top", "left", "</s>"]
    assert packed["attention_mask"][1, 0].diagonal().all()  # padding rows attend somewhere: no NaN


def test_heldout_exists_questions_ask_for_yes_and_for_no():
    from lisalib.zoo.pretrain.vlm import heldout_questions

    items = heldout_questions(12)
    for scene in {id(it["scene"]): it["scene"] for it in items}.values():
        answers = sorted(it["answer"] for it in items if it["scene"] is scene and it["type"] == "exists")
        assert answers == ["no", "yes"]


def test_dihedral_augmentation_moves_pixels_and_labels_together():
    """A flipped/transposed scene gets the labels that scene would have had: colour and kind move with
    the pixels, and a left-right flip mirrors the column third."""
    from lisalib.world.scenes import generate_scenes
    from lisalib.zoo.pretrain.vlm import _dihedral, object_pooling, patch_labels

    scene = generate_scenes(1, seed=3)[0]
    pixels = torch.tensor(np.asarray(scene.render()), dtype=torch.float).permute(2, 0, 1)[None]
    labels = patch_labels(scene, grid=8)[None]
    weights = object_pooling(scene, grid=8)[0][None]
    for seed in range(8):
        p, l, w = _dihedral(torch.Generator().manual_seed(seed), pixels, labels, weights, grid=8)
        transpose, flip_x, flip_y = torch.randint(2, (3,), generator=torch.Generator().manual_seed(seed)).tolist()
        expected = labels.reshape(1, 4, 8, 8)
        if transpose:
            expected = expected.transpose(2, 3)[:, [0, 1, 3, 2]]
        if flip_x:
            expected = expected.flip(3)
        if flip_y:
            expected = expected.flip(2)
        l = l.reshape(1, 4, 8, 8)
        for row in (0, 1):
            assert torch.equal(l[:, row], expected[:, row])
        column = expected[:, 2] if not flip_x else torch.where(expected[:, 2] > 0, 4 - expected[:, 2], 0)
        assert torch.equal(l[:, 2], column)
        row = expected[:, 3] if not flip_y else torch.where(expected[:, 3] > 0, 4 - expected[:, 3], 0)
        assert torch.equal(l[:, 3], row)
        assert p.shape == pixels.shape and torch.allclose(w.sum(-1), weights.sum(-1))


def test_update_card_keeps_the_build_figures_and_says_why(tmp_path, monkeypatch):
    import shutil

    from lisalib.zoo import build as build_module

    copy = tmp_path / "tiny-sam"
    shutil.copytree(zoo_path("tiny-sam"), copy)
    before = json.loads((copy / "zoo_card.json").read_text())
    monkeypatch.setattr("lisalib.zoo.zoo_path", lambda name: copy)
    card = build_module.update_card("tiny-sam", {"miou": 0.5, "n": 3}, "a test.")
    assert card["metrics"] == {"miou": 0.5, "n": 3} and card["aim"]["met"] is False
    assert card["built_metrics"] == before.get("built_metrics", before["metrics"])
    assert json.loads((copy / "zoo_card.json").read_text()) == card
    readme = (copy / "README.md").read_text()
    assert "miou = 0.5" in readme and "Re-measured: a test." in readme
