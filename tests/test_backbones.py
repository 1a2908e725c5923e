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
