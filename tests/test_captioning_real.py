"""Chapter 6's real-profile path on the random-weight miniatures of SigLIP base/16, SmolLM-135M and GPT-2:
224 px / 196 patch tokens, SmolLM's and GPT-2's token conventions (bos = eos, no pad), one step of each variant."""
import pytest

from lisalib.profile import HUB_MAP_ENV, PROFILE_ENV, get_profile


@pytest.fixture(scope="module")
def real(miniatures_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(HUB_MAP_ENV, str(miniatures_dir))
        patch.setenv(PROFILE_ENV, "real")
        yield get_profile()


def test_real_profile_names_004s_models(real):
    assert (real.caption_vision, real.caption_lm, real.caption_ved_lm) == (
        "google/siglip-base-patch16-224", "HuggingFaceTB/SmolLM-135M", "openai-community/gpt2")
    assert real.smoke and real.caption_steps > 0


def test_every_variant_trains_and_scores_on_the_miniatures(real):
    from lisalib.captioning.data import shapes_split
    from lisalib.captioning.runs import evaluate_shipped
    from lisalib.captioning.train import VARIANTS, CaptionRecipe, train_variant
    from lisalib.zoo import load_siglip

    _, processor = load_siglip(real.caption_vision)
    side = processor.image_processor.size["height"]
    train, val = shapes_split(8, "train", size=side), shapes_split(4, "val", size=side)
    recipe = CaptionRecipe(vision=real.caption_vision, prefix_lm=real.caption_lm, ved_lm=real.caption_ved_lm,
                           steps=1, train_images=len(train), batch_size=2, device=real.device)
    bundles = {v: train_variant(v, train, recipe, progress=False) for v in VARIANTS}
    assert bundles["prefix"][0].config.prefix_tokens == 196 and bundles["prefix_pooled"][0].config.prefix_tokens == 49
    assert bundles["prefix"][1].pad_token_id is None  # SmolLM's convention: the code falls back to eos
    result = evaluate_shipped(bundles=bundles, train=train, val=val, timing=False)
    assert set(result["variants"]) == set(VARIANTS) and result["n_val"] == 4
