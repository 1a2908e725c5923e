"""lisalib.backbones: family detection, vision grids, the end-to-end check of every family, 002's claims."""
import pytest
import torch
from PIL import Image

from lisalib.backbones import FAMILIES, adapter_for, family_of
from lisalib.backbones.base import stitch
from lisalib.backbones.tiny import tiny_backbone

REAL = {"llava-1.5-7b": ("llava", 1024, 4096, (24, 24), 576),
        "smolvlm-instruct": ("smolvlm", 1152, 2048, (27, 27), 81),
        "qwen2-vl-2b-instruct": ("qwen2_vl", 1280, 1536, (32, 32), 256),
        "paligemma-3b-pt-224": ("paligemma", 1152, 2048, (16, 16), 256)}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_configs_pick_their_adapter(name):
    from lisalib.accounting.registry import load_config

    adapter = adapter_for(load_config(name))
    family, vision, text, grid, tokens = REAL[name]
    assert (adapter.family, adapter.vision_dim, adapter.text_dim, adapter.vision_grid(), adapter.image_tokens()) == \
        (family, vision, text, grid, tokens)


def test_real_parameter_counts_on_meta():
    from lisalib.accounting import count_parameters

    assert count_parameters("smolvlm-instruct").total == 2_246_272_880
    assert count_parameters("qwen2-vl-2b-instruct").total == 2_208_985_600
    assert count_parameters("paligemma-3b-pt-224").total == 2_923_466_480


def test_unknown_family_is_a_clear_error():
    from transformers import BertConfig

    with pytest.raises(ValueError, match="no backbone adapter"):
        family_of(BertConfig())


def test_stitch_lays_crops_in_reading_order():
    crops = torch.arange(4 * 4).reshape(4, 4, 1).float()  # 2 x 2 crops of 2 x 2 patches, values = crop*4 + patch
    grid = stitch(crops, 2, 2).reshape(4, 4)
    assert grid[0].tolist() == [0, 1, 4, 5] and grid[3].tolist() == [10, 11, 14, 15]


def test_qwen2_vl_grid_is_row_major():
    """The un-permuted grid equals the patch features of each position: feed an image whose patches differ and
    compare with the patch embeddings computed in raster order."""
    model, processor = tiny_backbone("qwen2_vl")
    adapter = adapter_for(model.config)
    image = Image.new("RGB", (64, 64))
    for i in range(8):
        for j in range(8):
            image.paste((i * 30, j * 30, 0), (j * 8, i * 8, j * 8 + 8, i * 8 + 8))
    batch = processor(images=[image], text=[adapter.prompt(processor, "a")], return_tensors="pt")
    model.model.visual.blocks = torch.nn.ModuleList()  # patch embedding only: each output is its own patch's
    with torch.no_grad():
        _, grid = adapter.encode(model, batch["pixel_values"], adapter.extras(batch))
    colours = grid[0].reshape(8, 8, -1)
    assert not torch.allclose(colours[0, 1], colours[1, 0])  # row and column are not swapped
    # row-major: position (i, j) holds the patch painted (i*30, j*30); one painted all (90, 150) says which
    painted = Image.new("RGB", (64, 64), (90, 150, 0))
    b2 = processor(images=[painted], text=[adapter.prompt(processor, "a")], return_tensors="pt")
    with torch.no_grad():
        _, flat = adapter.encode(model, b2["pixel_values"], adapter.extras(b2))
    assert torch.allclose(colours[3, 5], flat[0, 0], atol=1e-5)
    assert not torch.allclose(colours[5, 3], flat[0, 0], atol=1e-5)


def test_smolvlm_image_splitting_stitches_a_finer_grid():
    model, processor = tiny_backbone("smolvlm", image_splitting=True)
    adapter = adapter_for(model.config)
    views = [adapter.vlm_view(Image.new("RGB", (128, 100), (200, 10, 10)), processor)]
    batch, _ = adapter.text_batch(processor, views, [adapter.prompt(processor, "a")], None, "")
    with torch.no_grad():
        tokens, grid = adapter.encode(model, batch["pixel_values"], adapter.extras(batch))
    assert grid.shape[1] == 16 * 16 and tokens.shape[1] == 5 * 16  # 2 x 2 crops stitched; 4 crops + global


def test_every_family_passes_the_end_to_end_check(tmp_path):
    from lisalib.backbones.check import run_check

    result = run_check(root=str(tmp_path))
    assert set(result["families"]) == set(FAMILIES)
    for name, entry in result["families"].items():
        assert entry["ok"], (name, entry.get("error"))
        assert entry["segment"]["vision_passes"] == 1 and entry["round_trip"]["reload_max_abs_diff"] == 0.0
        assert entry["train"]["last_loss"] < entry["train"]["first_loss"]


def test_claims_of_002_are_measured():
    from lisalib.backbones.claims import measure_claims

    claims = {c["claim"]: c for c in measure_claims()["claims"]}
    assert claims["LLaVA-1.5-7B + LoRA r=16: trainable params"]["holds"]
    assert claims["LLaVA-1.5-7B + LoRA r=16: all params"]["measured"] == 7_071_815_680
    assert not claims["Traditional: LLM (Qwen3-0.6B-Base) embedding dim 2048"]["holds"]


def test_002_flag_names_map_onto_existing_settings():
    from lisalib.lisa.train import parse_args

    args = parse_args(["--vlm_model_name", "a/b", "--use_vlm", "--vlm_use_lora", "--vlm_lora_r", "16",
                       "--vlm_quantization", "4bit"])
    assert (args.vlm_name, args.vision_source, args.use_lora, args.lora_r, args.load_in_4bit) == \
        ("a/b", "vlm", True, 16, True)
    with pytest.raises(SystemExit):
        parse_args(["--vlm_freeze", "--use_lora"])


def test_sam_source_is_refused_where_the_family_has_no_such_path():
    from lisalib.lisa.configuration import LisaConfig

    model, _ = tiny_backbone("paligemma")
    with pytest.raises(ValueError, match="not available for the paligemma family"):
        LisaConfig(vlm_config=model.config, vision_source="sam")


# ----- the traditional mode from the zoo's pretrained parts ---------------------------------------------
def test_traditional_spec_names_a_pair():
    from lisalib.backbones.traditional import ZOO_PAIR, parse_spec

    assert parse_spec(ZOO_PAIR) == ("tiny-siglip", "tiny-lm")
    assert parse_spec("traditional:openai/clip-vit-base-patch16+Qwen/Qwen3-0.6B-Base") == \
        ("openai/clip-vit-base-patch16", "Qwen/Qwen3-0.6B-Base")
    assert parse_spec("tiny-llava") is None
    with pytest.raises(ValueError, match="IMAGE_ENCODER\\+TEXT_LLM"):
        parse_spec("traditional:tiny-siglip")


def test_traditional_pair_in_the_wrong_order_is_a_clear_error():
    from lisalib.zoo import load_vlm

    with pytest.raises(ValueError, match="not a CLIP or SigLIP image encoder"):
        load_vlm("traditional:tiny-lm+tiny-siglip")


def test_zoo_pair_is_siglip_pretrained_and_seeded():
    """tiny-siglip's tower and tiny-lm's weights as they are, SigLIP's own processing (no CLS, [-1, 1],
    layer -2), and the same composite on every load (the shipped run's projector fits no other)."""
    from lisalib.backbones.traditional import ZOO_PAIR
    from lisalib.lisa.train import fingerprint
    from lisalib.zoo import load_siglip, load_text_lm, load_vlm

    torch.manual_seed(1)
    model, processor = load_vlm(ZOO_PAIR)
    torch.manual_seed(2)
    again, _ = load_vlm(ZOO_PAIR)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    siglip, _ = load_siglip("tiny-siglip")
    lm, tokenizer = load_text_lm("tiny-lm")
    assert type(model.model.vision_tower).__name__ == "SiglipVisionModel"
    assert torch.equal(model.model.vision_tower.embeddings.patch_embedding.weight,
                       siglip.vision_model.embeddings.patch_embedding.weight)
    assert torch.equal(model.model.language_model.layers[0].self_attn.q_proj.weight,
                       lm.model.layers[0].self_attn.q_proj.weight)
    adapter = adapter_for(model.config)
    assert adapter.family == "traditional" and adapter.trains_projector()
    assert (model.config.vision_feature_select_strategy, model.config.vision_feature_layer) == ("full", -2)
    assert list(processor.image_processor.image_mean) == [0.5, 0.5, 0.5]
    assert model.get_input_embeddings().num_embeddings > len(processor.tokenizer)  # a spare row for <SEG>
    view = adapter.vlm_view(Image.new("RGB", (100, 80), (200, 10, 10)), processor)
    batch = processor(images=[view], text=[adapter.prompt(processor, "where is the red circle?")], return_tensors="pt")
    tokens = processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens.count("<image>") == 64 and "<unk>" not in tokens  # "<image>\nwhere": the line break is a space
    with torch.no_grad():
        llm_tokens, grid = adapter.encode(model, batch["pixel_values"])
    assert llm_tokens.shape == (1, 64, 96) and grid.shape == (1, 64, 64)  # 8 x 8 patches, no CLS
    assert fingerprint(ZOO_PAIR) not in (None, fingerprint("tiny-siglip"), fingerprint("tiny-lm"))


def test_clip_composite_drops_cls():
    model, processor = tiny_backbone("traditional")  # random CLIP + Qwen3: the CLIP path of the same assembly
    adapter = adapter_for(model.config)
    assert model.config.vision_feature_select_strategy == "default"
    view = adapter.vlm_view(Image.new("RGB", (64, 64)), processor)
    batch = processor(images=[view], text=[adapter.prompt(processor, "a")], return_tensors="pt")
    with torch.no_grad():
        llm_tokens, grid = adapter.encode(model, batch["pixel_values"])
    assert grid.shape[1] == 64 and llm_tokens.shape[1] == int((batch["input_ids"] == adapter.image_token_id).sum())


def test_shipped_traditional_run_records_its_recipe():
    import warnings

    from lisalib.backbones.compare import RUNS, training_facts
    from lisalib.lisa.evaluate import load_trained

    facts = {family: training_facts(run) for family, run in RUNS.items()}
    assert facts["traditional"]["vlm"] == "traditional:tiny-siglip+tiny-lm"
    assert "--vlm_name traditional:tiny-siglip+tiny-lm" in facts["traditional"]["command"]
    for key in ("steps", "samples", "batch_size", "seg_prompt", "threads"):  # the same recipe as the ladder's run
        assert facts["traditional"][key] == facts["llava"][key], key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a changed base would warn
        model = load_trained(RUNS["traditional"])
    assert model.backbone.family == "traditional" and model.config.seg_prompt == "point"


def test_compare_rows_put_baselines_first():
    from lisalib.backbones.compare import HEADERS, compare_rows

    m = {"giou": 0.5, "ciou": 0.4, "n": 2, "giou_low": 0.4, "giou_high": 0.6}
    rows = compare_rows({"baselines": {"every shape": m},
                         "models": {"llava": {"run": "r", "scores": {**m, "point": {"inside_rate": 0.7}}}}})
    assert [len(r) for r in rows] == [len(HEADERS)] * 2
    assert rows[0][1] == "query-blind: every shape" and rows[1][:3] == ("llava", "r", 0.5) and rows[1][5] == 0.7
