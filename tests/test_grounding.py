"""Stage 3 of tiny-llava: referring boxes as location tokens, their parsing and scoring."""
from __future__ import annotations

import pytest

import lisalib.world as shapes
from lisalib.zoo.pretrain.grounding import (REC_PROMPT, box_iou, box_of, box_text, grounding_texts, heldout_grounding,
                                            parse_box)
from lisalib.zoo.tokenizer import LOCATION_BINS, LOCATION_TOKENS, add_grounding_tokens, build_word_tokenizer


def test_grounding_tokens_keep_every_earlier_id_and_tokenize_whole():
    tokenizer = build_word_tokenizer(shapes.vocabulary())
    before = dict(tokenizer.get_vocab())
    added = add_grounding_tokens(tokenizer)
    assert added == len(LOCATION_TOKENS) + 7
    assert add_grounding_tokens(tokenizer) == 0  # idempotent
    vocab = tokenizer.get_vocab()
    assert all(vocab[w] == i for w, i in before.items())
    prompt = REC_PROMPT.format(sentence="the red circle")
    ids = tokenizer(f"{prompt} <loc_3> <loc_31></s>", add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert "<unk>" not in tokens
    assert tokens[-3:] == ["<loc_3>", "<loc_31>", "</s>"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("boxes", add_special_tokens=False)["input_ids"]) == ["<unk>"]


def test_box_text_round_trip_is_within_one_bin():
    box = [10.0, 20.0, 60.5, 127.0]
    text = box_text(box, 128, 128)
    assert text.count("<loc_") == 4
    parsed = parse_box(text, 128, 128)
    assert all(abs(a - b) <= 128 / LOCATION_BINS for a, b in zip(parsed, box))
    assert parse_box("<loc_1> <loc_2> <loc_3>", 128, 128) is None  # fewer than four
    assert parse_box("top left", 128, 128) is None
    assert parse_box(f"<loc_1> <loc_2> <loc_3> <loc_{LOCATION_BINS}>", 128, 128) is None


def test_box_iou_edge_cases():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [5, 5, 6, 6]) == 0.0
    assert box_iou(None, [0, 0, 1, 1]) == 0.0


def test_boxes_come_from_visible_masks_and_every_object_is_asked():
    scene = shapes.generate_scenes(1, seed=5)[0]
    box = box_of(scene, 0)
    mask = scene.visible_masks()[0]
    assert mask[int(box[1]):int(box[3]), int(box[0]):int(box[2])].sum() == mask.sum()
    triples = grounding_texts(scene)
    assert {k for k, _, _ in triples} <= {"box", "box_reason"}
    assert all(t[1].startswith(REC_PROMPT.split("{")[0]) for t in triples)
    items = heldout_grounding(3, seed=2000)
    assert sum(it["type"] == "expression" for it in items) == sum(len(s.objects) for s in shapes.generate_scenes(3, seed=2000))
