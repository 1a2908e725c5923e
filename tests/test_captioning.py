"""Chapter 6: metrics, references, baselines, the prefix captioner and the VED baseline (lisalib.captioning)."""
import math

import numpy as np
import pytest
import torch

from lisalib.captioning.data import encode_captions, pixel_values, references, shapes_split
from lisalib.captioning.metrics import normalise, score_captions
from lisalib.constants import LABEL_IGNORE_INDEX


# ----- metrics ------------------------------------------------------------------------------------------------
def test_normaliser_lowercases_and_drops_punctuation():
    assert normalise("Three shapes: a Red circle, and a star.") == "three shapes a red circle and a star"
    with pytest.raises(TypeError):
        normalise(None)


def test_a_perfect_caption_scores_one_on_bleu_and_rouge():
    refs = {0: ["a red circle on the left"], 1: ["two blue squares"], 2: ["one green star in the image"]}
    s = score_captions(refs, {k: v[0] for k, v in refs.items()})
    assert s["bleu4"] == pytest.approx(1.0) and s["rouge_l"] == pytest.approx(1.0)
    assert s["cider"] > 5  # an exact match of every reference: each n-gram's tf-idf vectors coincide (x 10)


def test_bleu_by_hand():
    # hypothesis "a red circle" vs reference "a red circle star": precisions 1, 1, 1, brevity penalty
    # exp(1 - 4/3); no 4-gram at all, which pycocoevalcap smooths to (1e-15 / 1e-9) = 1e-6, so BLEU-4 is not
    # 0 but bp * 1e-6 ** (1/4) = 0.0227: a 3-word caption never scores an exact 0
    s = score_captions({0: ["a red circle star"]}, {0: "a red circle"})
    bp = math.exp(1 - 4 / 3)
    assert s["bleu1"] == pytest.approx(bp, rel=1e-6) and s["bleu3"] == pytest.approx(bp, rel=1e-6)
    assert s["bleu4"] == pytest.approx(bp * 1e-6 ** 0.25, rel=1e-4)


def test_cider_depends_on_the_evaluated_set_and_empty_hypotheses_score_zero():
    refs = {0: ["a red circle", "one red circle"], 1: ["a blue square", "one blue square"],
            2: ["a red square", "one red square"]}
    hyps = {0: "a red circle", 1: "a blue circle", 2: "a red square"}
    three = score_captions(refs, hyps)["cider"]
    two = score_captions({k: refs[k] for k in (0, 1)}, {k: hyps[k] for k in (0, 1)})["cider"]
    assert three != pytest.approx(two)  # idf comes from the split's references: score whole splits
    empty = score_captions(refs, {0: "", 1: "", 2: ""})
    assert empty["cider"] == 0 and empty["bleu1"] < 1e-6


def test_score_captions_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="different images"):
        score_captions({0: ["a"]}, {1: "a"})
    with pytest.raises(ValueError, match="non-empty list"):
        score_captions({0: "a red circle"}, {0: "a red circle"})
    with pytest.raises(ValueError, match="one hypothesis"):
        score_captions({0: ["a"]}, {0: ["a", "b"]})


# ----- data ---------------------------------------------------------------------------------------------------
def test_five_references_in_the_tokenizers_vocabulary():
    from lisalib.world import generate_scene
    from lisalib.zoo import load_text_lm

    _, tokenizer = load_text_lm("tiny-lm")
    for i in range(30):
        scene = generate_scene((61000, i))
        refs = references(scene)
        assert len(refs) == 5 and len(set(refs)) >= 3 and refs[0] == scene.caption()
        ids, _ = encode_captions(tokenizer, refs, 30)
        assert not (ids == tokenizer.unk_token_id).any(), refs


def test_splits_are_seeded_and_disjoint():
    train, val0, val1 = shapes_split(8, "train"), shapes_split(8, "val", seed=0), shapes_split(8, "val", seed=1)
    assert not set(train.ids) & set(val0.ids) and not set(val0.ids) & set(val1.ids)
    assert np.array_equal(shapes_split(8, "val", seed=0).images, val0.images)
    assert train.images.shape == (8, 64, 64, 3) and train.images.dtype == np.uint8
    with pytest.raises(ValueError):
        shapes_split(8, "test")


def test_encoded_captions_end_with_eos_and_are_cut_before_it():
    from lisalib.zoo import load_text_lm

    _, tok = load_text_lm("tiny-lm")
    ids, mask = encode_captions(tok, ["one shape: a red circle.", "two shapes: a red circle and a blue star."], 4)
    assert ids.shape == (2, 6) and (ids[:, 0] == tok.bos_token_id).all() and (ids[:, -1] == tok.eos_token_id).all()
    assert mask.all()
    ids, mask = encode_captions(tok, ["one shape.", "two shapes: a red circle and a blue star."], 30)
    assert ids[0, int(mask[0].sum()) - 1] == tok.eos_token_id and mask[0].sum() < mask[1].sum()


# ----- the prefix model -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parts():
    from lisalib.zoo import load_siglip, load_text_lm

    siglip, processor = load_siglip("tiny-siglip")
    lm, tokenizer = load_text_lm("tiny-lm")
    gpt2, gpt2_tokenizer = load_text_lm("tiny-gpt2")
    data = shapes_split(4, "val")
    return siglip, processor, lm, tokenizer, gpt2, gpt2_tokenizer, data


def _prefix(parts, **options):
    from lisalib.captioning.modeling import PrefixCaptioner
    from lisalib.zoo import load_text_lm

    siglip, *_ = parts
    return PrefixCaptioner.from_parts(siglip, load_text_lm("tiny-lm")[0], **options)


def test_pixel_shuffle_and_average_pool_shapes():
    from lisalib.captioning.modeling import average_pool, pixel_shuffle

    x = torch.arange(2 * 16 * 3, dtype=torch.float).reshape(2, 16, 3)
    shuffled = pixel_shuffle(x, 2)
    assert shuffled.shape == (2, 4, 12)
    assert torch.equal(shuffled[0, 0], torch.cat([x[0, 0], x[0, 1], x[0, 4], x[0, 5]]))  # a 2 x 2 block
    assert torch.allclose(average_pool(x, 2)[0, 0], (x[0, 0] + x[0, 1] + x[0, 4] + x[0, 5]) / 4)
    with pytest.raises(ValueError):
        pixel_shuffle(torch.zeros(1, 15, 3), 2)


def test_prefix_model_trainable_set_and_prefix_lengths(parts):
    model = _prefix(parts)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projection.") or "lora_" in n for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable) and any("o_proj.lora_B" in n for n in trainable)
    assert model.config.prefix_tokens == 64 and not model.vision_tower.config.vision_use_head
    pooled = _prefix(parts, prefix_pooling="pixel_shuffle")
    assert pooled.config.prefix_tokens == 16 and pooled.projection.in_features == 4 * 64
    assert _prefix(parts, prefix_pooling="avg").projection.in_features == 64
    with pytest.raises(ValueError):
        _prefix(parts, projection_type="conv")


def test_labels_ignore_prefix_bos_and_padding(parts):
    from lisalib.captioning.modeling import caption_targets

    *_, tok, _, _, data = parts
    ids, mask = encode_captions(tok, ["one shape: a red circle.", "two shapes."], 30)
    targets = caption_targets(ids, mask, prefix_tokens=3)
    assert (targets[:, :4] == LABEL_IGNORE_INDEX).all()  # prefix and bos
    n = int(mask[1].sum())
    assert (targets[1, 3 + n:] == LABEL_IGNORE_INDEX).all() and targets[1, 3 + n - 1] == tok.eos_token_id


def test_prefix_loss_equals_manual_cross_entropy_on_caption_tokens(parts):
    siglip, processor, lm, tok, *_ , data = parts
    model = _prefix(parts).eval()
    ids, mask = encode_captions(tok, [r[0] for r in data.refs], 30)
    px = pixel_values(data.images, processor)
    with torch.no_grad():
        out = model(px, ids, mask, labels=ids)
    p = model.config.prefix_tokens
    logits = out.logits[:, p:-1]  # bos .. last caption token predict caption .. eos
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, LABEL_IGNORE_INDEX)
    manual = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=LABEL_IGNORE_INDEX)
    assert out.loss.item() == pytest.approx(manual.item(), rel=1e-5)
    with pytest.raises(ValueError, match="attention mask"):
        model(px, ids, None)


def test_prefix_generation_is_deterministic_and_returns_new_tokens(parts):
    siglip, processor, lm, tok, *_ , data = parts
    model = _prefix(parts).eval()
    px = pixel_values(data.images, processor)
    a = model.generate(px, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, max_new_tokens=8)
    b = model.generate(px, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, max_new_tokens=8)
    assert torch.equal(a, b) and a.shape[0] == 4 and 1 <= a.shape[1] <= 8  # new tokens only, not prefix + new
    beams = model.generate(px, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, num_beams=3, max_new_tokens=8)
    assert torch.equal(beams, model.generate(px, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, num_beams=3,
                                             max_new_tokens=8))


def test_prefix_model_save_pretrained_from_pretrained_round_trip(parts, tmp_path):
    from lisalib.captioning.modeling import PrefixCaptioner

    siglip, processor, lm, tok, *_ , data = parts
    model = _prefix(parts, prefix_pooling="pixel_shuffle").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)  # trained-looking LoRA and projection (lora_B starts at 0)
    model.save_pretrained(tmp_path)
    again = PrefixCaptioner.from_pretrained(tmp_path).eval()
    assert again.config.prefix_pooling == "pixel_shuffle" and again.config.lora_r == 16
    for (n, p), (m, q) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n == m and torch.equal(p, q), n
    ids, mask = encode_captions(tok, [r[0] for r in data.refs], 30)
    px = pixel_values(data.images, processor)
    with torch.no_grad():
        assert torch.allclose(model(px, ids, mask).logits, again(px, ids, mask).logits, atol=1e-6)
    assert {n for n, p in again.named_parameters() if p.requires_grad} == \
        {n for n, p in model.named_parameters() if p.requires_grad}


# ----- the VED baseline -------------------------------------------------------------------------------------------
def test_ved_built_from_parts_frozen_and_full(parts):
    from lisalib.captioning.ved import build_ved, ved_generate, ved_loss

    siglip, processor, _, _, gpt2, tok, data = parts
    frozen = build_ved(siglip, gpt2, tok, freeze_encoder=True)
    full = build_ved(siglip, gpt2, tok, freeze_encoder=False)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert all(p.requires_grad for p in full.parameters())
    assert any("crossattention" in n for n, _ in frozen.decoder.named_parameters())
    # the decoder keeps tiny-gpt2's weights; only cross-attention is new
    assert torch.equal(frozen.decoder.transformer.wte.weight, gpt2.transformer.wte.weight)
    ids, mask = encode_captions(tok, [r[0] for r in data.refs], 30)
    px = pixel_values(data.images, processor)
    loss = ved_loss(frozen, px, ids, mask)
    assert torch.isfinite(loss) and 0 < loss.item() < math.log(len(tok)) + 5
    out = ved_generate(frozen.eval(), px, max_new_tokens=6)
    assert torch.equal(out, ved_generate(frozen, px, max_new_tokens=6)) and out.shape[1] <= 6


# ----- baselines ------------------------------------------------------------------------------------------------
def test_baselines(parts):
    from lisalib.captioning.baselines import baseline_scores, most_frequent_caption

    siglip, processor, *_ = parts
    train = shapes_split(60, "train")
    val = shapes_split(20, "val")
    frequent = most_frequent_caption(train)
    assert frequent in {r for refs in train.refs for r in refs}
    scores = baseline_scores(siglip, processor, train, val)
    assert set(scores) == {"most_frequent", "nearest_neighbour", "nearest_neighbour_patches"}
    assert scores["nearest_neighbour"]["example"] in {refs[0] for refs in train.refs}
    assert all(0 <= s["cider"] < 10 for s in scores.values())


def test_patch_lookup_reads_what_the_captioners_read(parts):
    import torch.nn.functional as F

    from lisalib.captioning.baselines import nearest_neighbour_captions, patch_embeddings
    from lisalib.captioning.data import pixel_values
    from lisalib.captioning.modeling import vision_tower_from

    siglip, processor, *_ = parts
    train = shapes_split(30, "train")
    tower = vision_tower_from(siglip)
    with torch.no_grad():
        expected = F.normalize(tower(pixel_values=pixel_values(train.images[:4], processor)).last_hidden_state.mean(1), dim=-1)
    assert torch.allclose(patch_embeddings(siglip, processor, train.images[:4]), expected, atol=1e-5)
    # a training image looked up is its own nearest neighbour
    assert nearest_neighbour_captions(siglip, processor, train, train.subset(range(5)), patch_embeddings) == \
        [train.refs[i][0] for i in range(5)]


def test_lora_on_every_linear_layer_of_the_lm(parts):
    from lisalib.captioning.train import LLAMA_ALL_LINEAR, CaptionRecipe, prefix_options

    recipe = CaptionRecipe(lora_targets=LLAMA_ALL_LINEAR, pool_factor=4)
    model = _prefix(parts, **prefix_options("prefix", recipe))
    lora = {n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n}
    assert lora == set(LLAMA_ALL_LINEAR.split(","))
    # tiny-lm: 4 layers; r 16 on q 96x96, k/v 96x32, o 96x96, gate/up 96x256, down 256x96; Linear(64, 96)
    per_layer = 16 * ((96 + 96) * 2 + (96 + 32) * 2 + (96 + 256) * 3)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4 * per_layer + 64 * 96 + 96
    pooled = _prefix(parts, **prefix_options("prefix_pooled", recipe))
    assert pooled.config.prefix_tokens == 4 and pooled.projection.in_features == 16 * 64


def test_parameter_groups_cover_every_trainable_tensor_and_lora_plus_splits_b(parts):
    from lisalib.captioning.train import CaptionRecipe, parameter_groups, prefix_options

    recipe = CaptionRecipe()
    model = _prefix(parts, **prefix_options("prefix", recipe))
    plain = {g["name"]: g for g in parameter_groups(model, "prefix", recipe)}
    assert set(plain) == {"projection", "lora"} and plain["lora"]["lr"] == recipe.lora_lr
    plus = CaptionRecipe(lora_b_lr_ratio=4.0)
    groups = {g["name"]: g for g in parameter_groups(model, "prefix", plus)}
    b_ids = {id(p) for n, p in model.named_parameters() if "lora_B" in n}
    assert {id(p) for p in groups["lora_B"]["params"]} == b_ids and groups["lora_B"]["lr"] == 4 * plus.lora_lr
    assert not b_ids & {id(p) for p in groups["lora"]["params"]}
    assert sum(len(g["params"]) for g in groups.values()) == sum(len(g["params"]) for g in plain.values())


def test_image_blind_ablation_removes_the_image_and_is_undone(parts):
    from lisalib.captioning.evaluate import caption_images, image_blind

    siglip, processor, _, tokenizer, gpt2, gpt2_tokenizer, data = parts
    from lisalib.captioning.ved import build_ved

    for model, tok in ((_prefix(parts), tokenizer), (build_ved(siglip, gpt2, gpt2_tokenizer), gpt2_tokenizer)):
        px = pixel_values(data.images, processor)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)  # an image-dependent model (lora_B starts at 0)
        with image_blind(model):
            blind = caption_images(model, tok, processor, data.images, max_new_tokens=5)
            tower = model.vision_tower if hasattr(model, "vision_tower") else model.encoder
            assert not tower(pixel_values=px).last_hidden_state.any()
        assert len(set(blind)) == 1  # no image, one caption for every image
        assert tower(pixel_values=px).last_hidden_state.any()  # the hook is gone


def test_real_size_train_step_flops_count_the_frozen_tower_once():
    from lisalib.captioning.counts import train_step_flops

    rows = train_step_flops()
    assert {r["vision_tower"] for r in rows.values()} == {rows["prefix"]["vision_tower"]}  # same SigLIP base/16
    assert rows["prefix"]["prefix_tokens"] == 196 and rows["prefix_pooled_s2"]["prefix_tokens"] == 49
    # 196 prefix tokens through SmolLM cost more than the tower and the pooled prefix together
    assert rows["prefix"]["total"] > rows["prefix_pooled_s2"]["total"] > rows["prefix_pooled_s7"]["total"]
    assert rows["ved"]["total"] > rows["ved_frozen"]["total"]  # backward through the tower


def test_pooling_step_times_are_measured_for_every_factor():
    from lisalib.captioning.timing import pooling_step_times

    times = pooling_step_times((1, 2, 4), batch_size=2, repeats=1)
    assert set(times) == {1, 2, 4} and all(t > 0 for t in times.values())
