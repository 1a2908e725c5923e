"""The random-weight miniatures of the real profile's hub models: loaded through LISALIB_HUB_MAP, the real
configs' code-path settings, the real processors' shapes and conventions, a cached rebuild."""
import time

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaForConditionalGeneration, LlavaProcessor, SamModel, SamProcessor

from lisalib.accounting.registry import model_spec
from lisalib.world import generate_scenes
from lisalib.zoo import HUB_MAP_ENV, ZooError, hub_map, load_sam, load_vlm, resolve
from lisalib.zoo.miniatures import LLAVA_PROCESSOR, LLAVA_TOKENIZER, SHIPPED, build, shapes_corpus

REAL = {role: model_spec(name) for role, name in SHIPPED.items()}
PROMPT = "USER: <image>\nWhat is this? ASSISTANT:"
# what a miniature may change: sizes, and the token ids that follow its small vocabulary
SIZES = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
         "projection_dim", "mlp_dim", "output_channels", "num_pos_feats", "global_attn_indexes",
         "iou_head_hidden_dim", "vocab_size", "image_token_index", "pad_token_id"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("miniatures")
    return out, build(out)


def _loaded(built, loader, role):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(HUB_MAP_ENV, str(built[0]))
        return loader(REAL[role].hub_id)


@pytest.fixture(scope="module")
def vlm(built):
    return _loaded(built, load_vlm, "vlm")


@pytest.fixture(scope="module")
def sam(built):
    return _loaded(built, load_sam, "sam")


@pytest.fixture
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8), "RGB")


def assert_same_code_paths(config, real: dict, where: str = "config"):
    """Every setting of the real hub config but the sizes is the miniature's too, nested configs included."""
    for key, value in real.items():
        if isinstance(value, dict):
            assert_same_code_paths(getattr(config, key), value, f"{where}.{key}")
        elif key not in SIZES:
            assert getattr(config, key) == value, f"{where}.{key}"


def test_map_lists_both_hub_ids(built, monkeypatch):
    out, summary = built
    monkeypatch.setenv(HUB_MAP_ENV, str(out / "hub_map.json"))
    mapped = hub_map()
    assert set(mapped) == {spec.hub_id for spec in REAL.values()} == set(summary["models"])
    for hub_id, folder in mapped.items():
        assert resolve(hub_id) == folder and (out / hub_id.replace("/", "--")).samefile(folder)
    monkeypatch.setenv(HUB_MAP_ENV, str(out))  # the folder holding the map works too
    assert hub_map() == mapped


def test_small(built):
    for entry in built[1]["models"].values():
        assert entry["parameters"] < 1_000_000 and entry["bytes"] < 5 * 1024 * 1024


def test_unmapped_hub_id_is_an_error_while_the_map_is_set(built, monkeypatch):
    monkeypatch.setenv(HUB_MAP_ENV, str(built[0]))
    with pytest.raises(ZooError, match="hub_map.json"):
        resolve("openai/clip-vit-large-patch14-336")
    monkeypatch.delenv(HUB_MAP_ENV)
    assert resolve("openai/clip-vit-large-patch14-336") == "openai/clip-vit-large-patch14-336"


def test_llava_config_is_the_real_one_shrunk(vlm):
    model, processor = vlm
    assert isinstance(model, LlavaForConditionalGeneration) and isinstance(processor, LlavaProcessor)
    config, real = model.config, REAL["vlm"].config
    assert_same_code_paths(config, real)
    vision = config.vision_config
    assert (vision.image_size // vision.patch_size) ** 2 == real["image_seq_length"]  # 576 patches, + CLS = 577
    assert vision.num_hidden_layers >= -config.vision_feature_layer  # the penultimate layer exists
    tokenizer = processor.tokenizer
    assert config.image_token_index == tokenizer.convert_tokens_to_ids(LLAVA_PROCESSOR["image_token"])
    assert config.pad_token_id == config.text_config.pad_token_id == tokenizer.pad_token_id
    assert len(tokenizer) <= config.text_config.vocab_size
    assert processor.patch_size == vision.patch_size
    assert processor.vision_feature_select_strategy == real["vision_feature_select_strategy"]
    assert processor.num_additional_image_tokens == LLAVA_PROCESSOR["num_additional_image_tokens"]


def test_llava_processor_and_forward(vlm, image):
    model, processor = vlm
    batch = processor(images=image, text=PROMPT, return_tensors="pt")
    side = REAL["vlm"].config["vision_config"]["image_size"]
    assert batch["pixel_values"].shape == (1, 3, side, side)
    assert (batch["input_ids"] == model.config.image_token_index).sum() == REAL["vlm"].config["image_seq_length"]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.text_config.vocab_size)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == PROMPT


def test_llava_pads_on_the_real_side(vlm, image):
    _, processor = vlm
    tokenizer = processor.tokenizer
    assert tokenizer.padding_side == LLAVA_TOKENIZER["padding_side"]
    assert tokenizer.model_max_length == LLAVA_TOKENIZER["model_max_length"]
    long = "USER: <image>\nWhat color is the circle in the top left of the image? ASSISTANT:"
    batch = processor(images=[image, image], text=[PROMPT, long], padding=True, return_tensors="pt")
    short_ids, mask = batch["input_ids"][0], batch["attention_mask"][0]
    n_pad = int((mask == 0).sum())
    assert n_pad > 0
    pads = slice(0, n_pad) if tokenizer.padding_side == "left" else slice(len(mask) - n_pad, None)
    assert (short_ids[pads] == tokenizer.pad_token_id).all() and (mask[pads] == 0).all()
    assert batch["attention_mask"][1].all()


def test_tokenizer_has_llamas_conventions_and_round_trips(vlm):
    tokenizer = vlm[1].tokenizer
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    assert tokenizer.convert_ids_to_tokens(13) == "<0x0A>"  # byte fallback, as LLaMA's newline
    for content in (LLAVA_PROCESSOR["image_token"], LLAVA_TOKENIZER["pad_token"]):  # added as llava-hf's were
        added = tokenizer.added_tokens_decoder[tokenizer.convert_tokens_to_ids(content)]
        assert added.content == content and added.special and not added.normalized
    scene = generate_scenes(1, seed=99)[0]
    sentences = [scene.caption(), *(qa["question"] for qa in scene.questions()), *shapes_corpus(1, 7)[1:4],
                 "Is there a Zebra? ümlaut"]
    for sentence in sentences:
        ids = tokenizer(sentence).input_ids
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == sentence


def test_sam_config_processor_and_embedding(sam, image):
    model, processor = sam
    assert isinstance(model, SamModel) and isinstance(processor, SamProcessor)
    config, real = model.config, REAL["sam"].config
    assert_same_code_paths(config, real)
    vision = config.vision_config
    assert set(vision.global_attn_indexes) <= set(range(vision.num_hidden_layers))
    assert vision.num_hidden_layers - 1 in vision.global_attn_indexes
    channels = vision.output_channels
    assert config.prompt_encoder_config.hidden_size == config.mask_decoder_config.hidden_size == channels
    batch = processor(images=image, input_points=[[[250.0, 180.0]]], return_tensors="pt")
    side = real["vision_config"]["image_size"]
    grid = side // real["vision_config"]["patch_size"]  # 64x64 image embedding
    assert batch["pixel_values"].shape == (1, 3, side, side)
    with torch.no_grad():
        embedding = model.get_image_embeddings(batch["pixel_values"])
        masks = model(image_embeddings=embedding, input_points=batch["input_points"]).pred_masks
    assert embedding.shape == (1, channels, grid, grid) and embedding.std() > 0.1
    assert masks.shape[-2:] == (4 * grid, 4 * grid)  # SAM's 256 px low-resolution masks


def test_second_build_is_a_cache_hit(built):
    out, _ = built
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()}
    start = time.perf_counter()
    summary = build(out)
    assert summary["cached"] and time.perf_counter() - start < 1.0
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} == before


def test_siglip_miniature_keeps_so400m_geometry_for_chapter_5(built):
    """The real profile's chapter 5 on the miniature: LaViDa's 768 px canvas, 384 px views, 27 x 27 tokens."""
    from lisalib.shirg.data import encode_scenes, make_scenes
    from lisalib.shirg.evaluate import selection_row, selections
    from lisalib.zoo import load_siglip

    siglip, processor = _loaded(built, load_siglip, "siglip")
    assert_same_code_paths(siglip.config, REAL["siglip"].config)
    vision = siglip.config.vision_config
    assert (vision.image_size, vision.patch_size) == (384, 14)
    data = encode_scenes(siglip, processor, make_scenes(1, seed=0, factor=3), progress=False)
    assert data.features.shape == (1, 5, 729, vision.hidden_size) and data.saliency.shape == (1, 5, 729)
    assert all(s.target_tokens.shape == (5, 729) for s in data.samples)
    assert any(s.target_tokens.any() for s in data.samples)
    row = selection_row(data, selections(data, siglip, processor, "text", 980))
    assert 0.0 <= row["recall"] <= 1.0 and 0.0 < row["coverage"] <= 1.0
