"""LisaForReasoningSegmentation on tiny random backbones: vision sources, <SEG>, losses, masks, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaForConditionalGeneration, LlavaProcessor, SamModel, SamProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

import lisalib.world as shapes
from lisalib.images import ImageInputError
from lisalib.lisa.losses import LossWeights, dice_per_mask, mask_losses, sigmoid_bce_per_mask, total_loss
from lisalib.lisa.bridges import VisionToSam, VisionToVlm
from lisalib.lisa.configuration import LisaConfig
from lisalib.lisa.modeling import LisaForReasoningSegmentation, count_vision_passes
from lisalib.constants import LABEL_IGNORE_INDEX as IGNORE_INDEX
from lisalib.lisa.processing import LisaInputError, postprocess_masks
from lisalib.zoo.configs import tiny_llava_config, tiny_sam_config
from lisalib.zoo.tokenizer import build_word_tokenizer

SOURCES = ("dual", "vlm", "sam")
QUESTIONS = ["where is the red circle?", "what shape is the blue object?"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Random tiny LLaVA and SAM saved like zoo checkpoints, so from_parts goes through lisalib.zoo."""
    root = tmp_path_factory.mktemp("tiny_parts")
    tokenizer = build_word_tokenizer(shapes.vocabulary())
    ids = tokenizer.convert_tokens_to_ids
    torch.manual_seed(0)
    vlm_dir, sam_dir = root / "vlm", root / "sam"
    LlavaForConditionalGeneration(tiny_llava_config(len(tokenizer), ids("<image>"), ids("<pad>"), ids("<s>"),
                                                    ids("</s>"))).save_pretrained(vlm_dir)
    LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 128},
                                                         crop_size={"height": 128, "width": 128}),
                   tokenizer=tokenizer, patch_size=16, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1).save_pretrained(vlm_dir)
    SamModel(tiny_sam_config()).save_pretrained(sam_dir)
    SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": 128}, pad_size={"height": 128, "width": 128}, mask_size={"longest_edge": 64},
        mask_pad_size={"height": 64, "width": 64})).save_pretrained(sam_dir)
    return str(vlm_dir), str(sam_dir)


@pytest.fixture(scope="module")
def models(parts):
    torch.manual_seed(0)
    return {source: LisaForReasoningSegmentation.from_parts(*parts, vision_source=source) for source in SOURCES}


@pytest.fixture(scope="module")
def scenes():
    return shapes.generate_scenes(2, seed=3)


def _images(scenes):
    """One square and one non-square image (128x128 and 128 wide x 90 high)."""
    return [scenes[0].render(), scenes[1].render().crop((0, 0, 128, 90))]


def _batch(model, scenes, answers=("the <SEG> .", "<SEG> ."), with_masks=True):
    images = _images(scenes)
    masks = [scenes[0].visible_masks()[:1], scenes[1].visible_masks()[:1, :90, :]] if with_masks else None
    return model.processor(images, QUESTIONS, answers=list(answers), masks=masks,
                           vision_source=model.config.vision_source)


# ----- losses ------------------------------------------------------------------------------------------
def test_losses_match_lisa_worked_example():
    logits = torch.tensor([[[2.0, -1.0], [0.0, -3.0]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    bce, dice = mask_losses([logits], [target])
    assert bce.item() == pytest.approx(0.5455, abs=5e-5)
    assert dice.item() == pytest.approx(0.377941, abs=5e-7)
    assert total_loss(0.3, bce, dice).item() == pytest.approx(1.5799, abs=5e-5)
    assert LossWeights() == LossWeights(ce=1.0, bce=2.0, dice=0.5)
    # LISA's large Dice scale keeps an empty ground truth cheap (0.1537 at s=1000, 0.9945 at s=1)
    empty = torch.zeros(1, 2, 2)
    assert dice_per_mask(torch.full((1, 2, 2), -10.0), empty).item() == pytest.approx(0.1537, abs=5e-5)
    assert dice_per_mask(torch.full((1, 2, 2), -10.0), empty, scale=1.0).item() == pytest.approx(0.9945, abs=5e-5)
    assert sigmoid_bce_per_mask(logits, target).shape == (1,)


def test_mask_losses_average_over_all_masks_and_ignore_empty_groups():
    a, b = torch.randn(2, 5, 7), torch.randn(1, 3, 3)
    ga, gb = (torch.rand(2, 5, 7) > 0.5).float(), (torch.rand(1, 3, 3) > 0.5).float()
    bce, dice = mask_losses([a, torch.zeros(0, 4, 4), b], [ga, torch.zeros(0, 4, 4), gb])
    expected = torch.cat([sigmoid_bce_per_mask(a, ga), sigmoid_bce_per_mask(b, gb)]).mean()
    assert bce.item() == pytest.approx(expected.item(), rel=1e-6)
    assert mask_losses([torch.zeros(0, 4, 4)], [torch.zeros(0, 4, 4)])[0].item() == 0.0


# ----- the vision path ---------------------------------------------------------------------------------
@pytest.mark.parametrize("source,expected", [("dual", 2), ("vlm", 1), ("sam", 1)])
def test_hooks_count_vision_passes(models, scenes, source, expected):
    model = models[source]
    assert len(model.vision_encoders()) == expected  # an unused encoder is not even built
    with count_vision_passes(model) as calls:
        model(**_batch(model, scenes))
    assert calls.total() == expected and set(calls.values()) == {1}
    with count_vision_passes(model) as calls:  # generation + final pass reuse one encoding
        model.segment(_images(scenes), QUESTIONS, max_new_tokens=3)
    assert calls.total() == expected


def test_bridges_map_between_grids():
    to_sam = VisionToSam(vision_dim=128, sam_channels=64, sam_grid=16)
    assert to_sam(torch.randn(2, 64, 128)).shape == (2, 64, 16, 16)  # 8x8 CLIP grid -> 16x16 SAM grid
    with pytest.raises(ValueError, match="square grid"):
        to_sam(torch.randn(1, 63, 128))
    to_vlm = VisionToVlm(sam_channels=64, vision_dim=128, vlm_grid=8)
    assert to_vlm(torch.randn(2, 64, 16, 16)).shape == (2, 64, 128)


@pytest.mark.parametrize("source", SOURCES)
def test_forward_shapes_and_losses(models, scenes, source):
    model = models[source]
    batch = _batch(model, scenes)
    out = model(**batch)
    vocab = model.vlm.get_input_embeddings().num_embeddings
    assert out.logits.shape == (*batch["input_ids"].shape, vocab)
    assert [m.shape for m in out.low_res_masks] == [(1, 64, 64), (1, 64, 64)]
    assert [m.shape for m in out.pred_masks] == [(1, 128, 128), (1, 90, 128)]  # original sizes
    assert out.seg_embeddings.shape == (2, 64)
    weights = model.config.loss_weights
    assert out.loss.item() == pytest.approx(
        (weights.ce * out.ce_loss + weights.bce * out.bce_loss + weights.dice * out.dice_loss).item(), rel=1e-6)
    out.loss.backward()
    model.zero_grad(set_to_none=True)


def test_real_size_configs_on_meta_device():
    from lisalib.bench import meta_model

    for source in SOURCES:
        model = meta_model(source, sam="base")
        features = model.encode_images(torch.zeros(1, 3, 336, 336, device="meta"),
                                       torch.zeros(1, 3, 1024, 1024, device="meta"))
        assert features.llm.shape == (1, 576, 4096) and features.sam.shape == (1, 256, 64, 64)
        low_res, prompts = model.decode_masks(features.sam, torch.zeros(1, 4096, device="meta"),
                                              torch.zeros(1, dtype=torch.long, device="meta"))
        assert low_res.shape == (1, 256, 256) and prompts.shape == (1, 256)


# ----- <SEG> -------------------------------------------------------------------------------------------
def test_seg_token_added_and_embeddings_resized(models, parts):
    model = models["vlm"]
    tokenizer = model.processor.tokenizer
    assert model.config.seg_token_id == tokenizer.convert_tokens_to_ids("<SEG>") == len(tokenizer) - 1
    assert model.vlm.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.vlm.get_output_embeddings().out_features == len(tokenizer)
    ids = tokenizer("the <SEG> .", add_special_tokens=False).input_ids
    assert ids.count(model.config.seg_token_id) == 1 and "<SEG>" in model.processor.decode(torch.tensor(ids))
    original = LlavaForConditionalGeneration.from_pretrained(parts[0])  # pretrained rows untouched
    rows = original.get_input_embeddings().weight
    assert torch.equal(model.vlm.get_input_embeddings().weight[: rows.shape[0]], rows)


@pytest.mark.parametrize("position", ["preceding", "seg"])
def test_seg_hidden_state_position_is_a_config_choice(models, scenes, position):
    model = models["dual"]
    batch = _batch(model, scenes, with_masks=False)
    model.config.seg_hidden_state = position
    try:
        out = model(**batch)
        features = model.encode_images(batch["vlm_pixel_values"], batch["sam_pixel_values"])
        hidden, _ = model.language_forward(model.embed_inputs(batch["input_ids"], features.llm),
                                           batch["attention_mask"])
    finally:
        model.config.seg_hidden_state = "preceding"
    rows, cols = (batch["input_ids"] == model.config.seg_token_id).nonzero(as_tuple=True)
    cols = cols - 1 if position == "preceding" else cols
    torch.testing.assert_close(out.seg_embeddings, model.seg_projection(hidden[rows, cols]))


def test_preceding_state_needs_a_token_before_seg(models):
    model = models["dual"]
    hidden = torch.zeros(1, 3, model.config.vlm_config.text_config.hidden_size)
    with pytest.raises(LisaInputError, match="first token"):
        model.select_seg_states(torch.tensor([[model.config.seg_token_id, 5, 6]]), hidden)


def test_text_hidden_fcs_option(parts):
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="vlm", seg_projection="text_hidden_fcs")
    assert [type(m).__name__ for m in model.seg_projection.children()] == ["Linear", "ReLU", "Linear", "Dropout"]
    assert model.seg_projection(torch.randn(3, 192)).shape == (3, 64)


def test_generated_answer_without_seg_gives_no_mask(models, scenes):
    model = models["vlm"]
    seg = model.config.seg_token_id
    results = model.segment(_images(scenes), QUESTIONS, max_new_tokens=4, suppress_tokens=[seg])
    assert [r.masks.shape for r in results] == [(0, 128, 128), (0, 90, 128)]
    assert all("<SEG>" not in r.text for r in results)
    forced = model.segment(_images(scenes), QUESTIONS, max_new_tokens=2, sequence_bias={(seg,): 100.0})
    for result, size in zip(forced, [(128, 128), (90, 128)]):
        assert result.text.count("<SEG>") == result.masks.shape[0] == 2
        assert result.masks.shape[1:] == size and result.masks.dtype == bool


def test_teacher_forced_segment_returns_one_mask_per_seg(models, scenes):
    results = models["sam"].segment(_images(scenes), QUESTIONS, answers=["<SEG> .", "the <SEG> and <SEG> ."])
    assert [r.text for r in results] == ["<SEG> .", "the <SEG> and <SEG> ."]
    assert [r.masks.shape for r in results] == [(1, 128, 128), (2, 90, 128)]
    assert results[1].mask_logits.shape == (2, 90, 128)


def test_teacher_forcing_without_seg_raises(models, scenes):
    model = models["dual"]
    with pytest.raises(LisaInputError, match="contain no <SEG>"):
        model.segment(_images(scenes), QUESTIONS, answers=["the red circle .", "<SEG> ."])
    with pytest.raises(LisaInputError, match=r"1 ground-truth mask\(s\) but 0 <SEG>"):
        _batch(model, scenes, answers=("the red circle .", "<SEG> ."))
    batch = _batch(model, scenes, with_masks=False, answers=("the circle .", "a square ."))
    batch["gt_masks"] = [torch.zeros(1, 128, 128), torch.zeros(1, 90, 128)]
    with pytest.raises(LisaInputError, match="put one <SEG> in the answer"):
        model(**batch)


# ----- processor ---------------------------------------------------------------------------------------
def test_labels_cover_only_the_answer(models, scenes):
    model = models["dual"]
    batch = _batch(model, scenes, with_masks=False)
    tokenizer = model.processor.tokenizer
    for row, answer in zip(range(2), ["the <SEG> .", "<SEG> ."]):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        assert labelled.tolist() == tokenizer(f"{answer}</s>", add_special_tokens=False).input_ids
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    image_id = model.processor.image_token_id
    assert ((batch["input_ids"] == image_id).sum(dim=1) == 64).all()  # 8x8 tiny CLIP grid


def test_vlm_source_pads_clip_view_to_sams_frame(models, scenes):
    tall = Image.new("RGB", (40, 100), (255, 0, 0))
    batch = models["vlm"].processor([tall], ["where is the red circle?"], vision_source="vlm")
    assert "sam_pixel_values" not in batch and batch["vlm_pixel_values"].shape == (1, 3, 128, 128)
    assert batch["reshaped_input_sizes"].tolist() == [[128, 51]]
    # left columns are the red image, the right ones CLIP's mean colour (normalised to about 0)
    pixels = batch["vlm_pixel_values"][0]
    assert pixels[0, :, :40].mean() > 1.0 and pixels[:, :, 60:].abs().max() < 0.05


def test_bad_inputs_raise_clear_errors(models, scenes):
    model = models["dual"]
    processor = model.processor
    with pytest.raises(LisaInputError, match="empty batch"):
        processor([], [])
    with pytest.raises(LisaInputError, match="one query per image"):
        processor(_images(scenes), QUESTIONS[:1])
    with pytest.raises(ImageInputError):
        processor([Image.new("I;16", (32, 32))], QUESTIONS[:1])
    with pytest.raises(ImageInputError):
        processor([np.zeros((8, 8, 3), dtype=np.float32)], QUESTIONS[:1])
    gray = processor([scenes[0].render().convert("L")], QUESTIONS[:1])  # harmless modes are converted
    assert gray["vlm_pixel_values"].shape == (1, 3, 128, 128)
    with pytest.raises(LisaInputError, match="masks must be"):
        processor(_images(scenes), QUESTIONS, answers=["<SEG> .", "<SEG> ."],
                  masks=[np.zeros((1, 64, 64)), np.zeros((1, 90, 128))])
    with pytest.raises(LisaInputError, match="need teacher-forced answers"):
        processor(_images(scenes), QUESTIONS, masks=[np.zeros((1, 128, 128)), np.zeros((1, 90, 128))])
    with pytest.raises(LisaInputError, match="prepared for vision_source='vlm'"):
        model(**models["vlm"].processor(_images(scenes), QUESTIONS, vision_source="vlm"))
    with pytest.raises(LisaInputError, match="needs sam_pixel_values"):
        model.encode_images(torch.zeros(1, 3, 128, 128))
    with pytest.raises(LisaInputError, match="non-empty"):
        model(input_ids=torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="vision_source must be one of"):
        LisaConfig(vision_source="clip")


# ----- post-processing, save/load, training groups -------------------------------------------------------
def test_postprocess_matches_sam_image_processor(models):
    low_res = torch.randn(3, 64, 64)
    reference = models["dual"].processor.sam_processor.image_processor.post_process_masks(
        [low_res[:, None]], original_sizes=[(90, 200)], reshaped_input_sizes=[(58, 128)], binarize=False)[0][:, 0]
    ours = postprocess_masks(low_res, (90, 200), (58, 128), pad_size=128)
    assert ours.shape == (3, 90, 200)
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("source", ["vlm", "sam"])
def test_save_and_load_round_trip_exactly(models, scenes, tmp_path, source):
    model = models[source]
    model.save_pretrained(tmp_path)
    loaded = LisaForReasoningSegmentation.from_pretrained(tmp_path).eval()
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert any(key.startswith(("vision_to_sam.", "vision_to_vlm.")) for key in after)
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert loaded.config.vision_source == source and loaded.config.seg_token_id == model.config.seg_token_id
    assert loaded.processor.seg_token_id == model.config.seg_token_id
    batch = _batch(model, scenes)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).loss, model(**batch).loss, rtol=0, atol=0)


def test_set_trainable_limits_gradients_to_groups_and_seg_row(parts, scenes):
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="vlm").train()
    seg = model.config.seg_token_id
    rows_before = [model.vlm.get_input_embeddings().weight.detach().clone(),
                   model.vlm.get_output_embeddings().weight.detach().clone()]
    counts = model.set_trainable()
    assert set(counts) == {"projections", "seg_row", "mask_decoder"}
    assert counts["seg_row"] == 2 * model.config.vlm_config.text_config.hidden_size
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(("vision_to_sam", "seg_projection", "sam.mask_decoder",
                                              "vlm.model.language_model.embed_tokens.trainable_tokens_delta",
                                              "vlm.lm_head.trainable_tokens_delta"))
                             for name in trainable)
    # peft trainable tokens: the <SEG> rows start where the matrices had them, the matrices stay frozen
    deltas = model.trainable_groups()["seg_row"]
    assert [tuple(d.shape) for d in deltas] == [(1, 192), (1, 192)]
    assert all(torch.equal(d[0], rows[seg]) for d, rows in zip(deltas, rows_before))
    model(**_batch(model, scenes)).loss.backward()
    assert model.vlm.get_input_embeddings().weight.grad is None  # no gradient the size of the vocabulary
    assert all(d.grad is not None and d.grad.abs().sum() > 0 for d in deltas)
    assert model.vision_to_sam.linear.weight.grad.abs().sum() > 0
    with torch.no_grad():  # what the forward reads for <SEG> is the trainable row
        deltas[0].add_(1.0)
        embedded = model.vlm.get_input_embeddings()(torch.tensor([[seg, seg - 1]]))
    assert torch.equal(embedded[0, 0], deltas[0][0]) and torch.equal(embedded[0, 1], rows_before[0][seg - 1])
    assert model.set_trainable() == counts  # a second call adds no second adapter


def test_optional_groups_lora_and_llm(parts):
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="dual")
    with pytest.raises(ValueError, match="no LoRA adapters"):
        model.set_trainable(["lora"])
    with pytest.raises(ValueError, match="unknown trainable group"):
        model.set_trainable(["decoder"])
    counts = model.set_trainable(["llm"])
    assert counts["llm"] == sum(p.numel() for p in model.vlm.model.language_model.parameters())
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"vlm.model.language_model.{n}" for n, _ in model.vlm.model.language_model.named_parameters()}


def test_four_bit_llm_on_cpu(parts, scenes):
    pytest.importorskip("bitsandbytes")
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="vlm", load_in_4bit=True)
    assert type(model.vlm.model.language_model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    assert type(model.vlm.lm_head).__name__ == "Linear"  # kept out of quantization, like the vision side
    result = model.segment(_images(scenes)[:1], QUESTIONS[:1], answers=["<SEG> ."])
    assert result[0].masks.shape == (1, 128, 128)


def test_a_4bit_vlm_is_placed_on_the_device_each_process_asks_for(monkeypatch):
    """Under `accelerate launch --multi_gpu` every process loads its own 4-bit copy: on its own GPU, not GPU 0."""
    import lisalib.zoo as zoo

    seen = {}
    real_load_vlm = zoo.load_vlm

    def recording_load_vlm(name, **kwargs):
        seen.update(kwargs)
        return real_load_vlm(name, dtype=kwargs.get("dtype"))  # a plain load: there is no GPU here

    monkeypatch.setattr(zoo, "load_vlm", recording_load_vlm)
    LisaForReasoningSegmentation.from_parts("tiny-llava", "tiny-sam", "vlm", load_in_4bit=True, device="cpu")
    assert seen["load_in_4bit"] is True and seen["device_map"] == {"": torch.device("cpu")}
    assert seen["skip_modules"] == ["vision_tower", "multi_modal_projector", "lm_head"]


# ----- the point route ---------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["point", "both"])
def test_point_route_prompts_sam_with_a_predicted_click(parts, scenes, prompt):
    from lisalib.lisa.bridges import SegTokenToPoint
    from lisalib.lisa.losses import location_loss

    torch.manual_seed(0)
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="dual", seg_prompt=prompt)
    assert hasattr(model, "seg_projection") == (prompt == "both")
    batch = _batch(model, scenes)
    assert [tuple(p.shape) for p in batch["gt_points"]] == [(1, 2), (1, 2)]
    out = model(**batch)
    assert [tuple(p.shape) for p in out.pred_points] == [(1, 2), (1, 2)]
    assert all(bool(((p >= 0) & (p <= 1)).all()) for p in out.pred_points)  # fractions of width and height
    # the loss from scratch: the target patch of the 8 x 8 token grid and the offset inside it
    with torch.no_grad():
        tokens = model.encode_images(batch["vlm_pixel_values"], batch["sam_pixel_values"]).llm
        hidden, _ = model.language_forward(model.embed_inputs(batch["input_ids"], tokens), batch["attention_mask"])
        seg, rows = model.select_seg_states(batch["input_ids"], hidden)
        logits, offsets = model.seg_to_point(seg, tokens[rows])
    assert logits.shape == (2, 64) and offsets.shape == (2, 64, 2)
    gt = torch.cat(batch["gt_points"])  # the square image: grid frame == image frame
    patch, offset = SegTokenToPoint.targets(gt[:1], 8)
    assert patch.item() == int(gt[0, 1] * 8) * 8 + int(gt[0, 0] * 8)
    index, inside = SegTokenToPoint.targets(torch.cat([gt[:1], torch.tensor([[float("nan")] * 2])]), 8)
    assert index[1].item() == -100
    assert out.location_loss is not None and out.location_loss.item() > 0
    assert location_loss(logits[:1], offsets[:1], torch.tensor([-100]), offset).item() == 0.0
    assert out.loss.item() == pytest.approx((out.ce_loss + 2 * out.bce_loss + 0.5 * out.dice_loss
                                             + out.location_loss).item(), rel=1e-6)
    (out.bce_loss + out.dice_loss).backward(retain_graph=True)  # the click is a detached prompt ...
    assert model.seg_to_point.query.weight.grad is None
    out.location_loss.backward()  # ... trained by the location loss
    assert model.seg_to_point.query.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    assert any(p is model.seg_to_point.query.weight for p in model.trainable_groups()["projections"])


def test_click_is_the_best_patch_plus_its_offset():
    from lisalib.lisa.bridges import SegTokenToPoint

    logits = torch.zeros(1, 16)
    logits[0, 6] = 5.0  # row 1, column 2 of a 4 x 4 grid
    offsets = torch.full((1, 16, 2), 0.5)
    offsets[0, 6] = torch.tensor([0.25, 0.75])
    torch.testing.assert_close(SegTokenToPoint.click(logits, offsets), torch.tensor([[2.25 / 4, 1.75 / 4]]))
    index, offset = SegTokenToPoint.targets(torch.tensor([[2.25 / 4, 1.75 / 4], [1.2, 0.5]]), 4)
    assert index.tolist() == [6, -100]
    torch.testing.assert_close(offset[0], torch.tensor([0.25, 0.75]))


def test_grid_and_image_frames_invert_each_other():
    from lisalib.lisa.processing import grid_to_image, image_to_grid

    points = torch.tensor([[0.1, 0.2], [0.9, 0.5]])
    sizes = torch.tensor([[90.0, 128.0], [128.0, 60.0]])  # (H, W)
    for source in ("dual", "vlm", "sam"):
        torch.testing.assert_close(image_to_grid(grid_to_image(points, sizes, source), sizes, source), points)
    # vlm pads a 90-high image to 128: the grid's bottom rows hold no image
    assert grid_to_image(torch.tensor([[0.5, 0.5]]), sizes[:1], "vlm")[0, 1].item() == pytest.approx(64 / 90)
    # dual centre-crops a 128-wide image to its middle 90 columns
    assert grid_to_image(torch.tensor([[0.0, 0.5]]), sizes[:1], "dual")[0, 0].item() == pytest.approx(19 / 128)


def test_point_route_click_moves_the_mask(parts, scenes, monkeypatch):
    """The click really is SAM's prompt: a different point gives a different mask, and SAM receives the
    fraction times the image's size in its frame (the 128 x 90 image keeps 128 x 90 there)."""
    torch.manual_seed(0)
    model = LisaForReasoningSegmentation.from_parts(*parts, vision_source="dual", seg_prompt="point")
    batch = _batch(model, scenes)
    seen = []
    hook = model.sam.prompt_encoder.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["input_points"].clone()), with_kwargs=True)
    original = model.predict_points
    with torch.no_grad():
        first = model(**batch).pred_masks
        fractions = model(**batch).pred_points
        monkeypatch.setattr(model, "predict_points",
                            lambda *a: (*original(*a)[:2], torch.tensor([[0.9, 0.9], [0.1, 0.1]])))
        second = model(**batch).pred_masks
    hook.remove()
    assert not torch.equal(first[0], second[0])
    torch.testing.assert_close(seen[1][1, 0, 0], fractions[1][0] * torch.tensor([128.0, 90.0]))
    torch.testing.assert_close(seen[-1][1, 0, 0], torch.tensor([12.8, 9.0]))


def test_point_targets_are_inside_centres_and_nan_for_empty_masks():
    from lisalib.lisa.processing import mask_points

    masks = torch.zeros(2, 10, 20)
    masks[0, 2:5, 4:9] = 1  # centre pixel (6, 3)
    points = mask_points(masks)
    torch.testing.assert_close(points[0], torch.tensor([6 / 20, 3 / 10]))
    assert bool(points[1].isnan().all())


def test_seg_prompt_is_checked():
    with pytest.raises(ValueError, match="seg_prompt"):
        LisaConfig(vlm_config=tiny_llava_config(90, 4, 0, 2, 3), sam_config=tiny_sam_config(), seg_prompt="box")


def test_lisa_processor_pads_on_the_left_whatever_the_checkpoint_says():
    """Generation appends on the right, so a right-padded batch would generate after its pads."""
    from lisalib.lisa.processing import LisaProcessor
    from lisalib.zoo import load_sam, load_vlm

    (_, vlm_processor), (_, sam_processor) = load_vlm("tiny-llava"), load_sam("tiny-sam")
    vlm_processor.tokenizer.padding_side = "right"
    processor = LisaProcessor(vlm_processor, sam_processor)
    assert processor.tokenizer.padding_side == "left"
    image = np.zeros((32, 48, 3), np.uint8)
    batch = processor([image, image], ["a", "what would roll down a hill if it were pushed?"])
    assert (batch["attention_mask"][0, :1] == 0).all() and (batch["attention_mask"][:, -1] == 1).all()
