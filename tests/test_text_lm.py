"""tiny-lm and tiny-gpt2: the shared tokenizer round-trips the worlds' texts, short pretraining runs learn,
are deterministic, load with plain transformers, and keep the real models' code paths."""
import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel, LlamaForCausalLM

from lisalib.accounting.registry import model_spec
from lisalib.world import generate_scenes
from lisalib.zoo.pretrain.text_lm import (DATA, HELDOUT_SEED, TRAIN_SEED, LmRecipe, build_lm_tokenizer,
                                          build_text_lm, collate, encode_lines, evaluate_text_lm, normalise, pack,
                                          pretrain_text_lm, pretrain_tiny_gpt2, pretrain_tiny_lm, scene_lines)

SHORT = dict(train_scenes=40, highres_train_scenes=10, steps=30, batch_size=16, warmup_steps=5)
CLASSES = {"llama": LlamaForCausalLM, "gpt2": GPT2LMHeadModel}
SIZE_KEYS = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings", "bos_token_id", "eos_token_id"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_lm_tokenizer()


@pytest.fixture(scope="module")
def short_runs():
    """One short pretraining run per architecture (a few seconds each)."""
    return {"llama": pretrain_tiny_lm(LmRecipe(**SHORT), progress=False),
            "gpt2": pretrain_tiny_gpt2(LmRecipe(**SHORT), progress=False)}


def test_tokenizer_round_trips_every_line_of_both_worlds(tokenizer):
    lines = scene_lines(50, 50, TRAIN_SEED) + scene_lines(50, 50, HELDOUT_SEED)
    assert {kind for kind, _ in lines} == {"caption", "qa"}
    unk = tokenizer.unk_token_id
    for _, text in lines:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and unk not in ids, text
        assert normalise(text) == text  # world texts are already normalised
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    reasoning = [q["text"] for scene in generate_scenes(50, seed=TRAIN_SEED) for q in scene.reasoning_queries()]
    for text in reasoning:  # the rest of the world's language is covered too
        ids = tokenizer(text)["input_ids"]
        assert unk not in ids and tokenizer.decode(ids, skip_special_tokens=True) == text
    assert any("digit" in text for _, text in lines)
    assert any(text.startswith(("twelve", "thirteen", "fourteen")) for _, text in lines)


def test_tokenizer_special_tokens_are_inside_the_vocabulary(tokenizer):
    vocab = tokenizer.get_vocab()
    assert len(vocab) == len(tokenizer) < 200
    for token in ("bos", "eos", "pad", "unk"):
        token_id = getattr(tokenizer, f"{token}_token_id")
        assert token_id is not None and 0 <= token_id < len(vocab)
        assert vocab[getattr(tokenizer, f"{token}_token")] == token_id
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}) == 4
    assert tokenizer.decode(tokenizer("Red  Star.")["input_ids"], skip_special_tokens=True) == "red  star."


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_packed_lines_give_the_loss_of_a_padded_batch(tokenizer, architecture):
    """Padding-free training: lines packed into rows see only themselves, at their own positions."""
    model = build_text_lm(architecture, tokenizer).eval()
    rows = encode_lines(tokenizer, [text for _, text in scene_lines(6, 3, TRAIN_SEED)])
    packed = pack(rows, tokenizer.pad_token_id)
    assert len(packed["input_ids"]) < len(rows) and (packed["labels"] != -100).sum() == sum(len(r) - 1 for r in rows)
    with torch.no_grad():
        padded_loss = model(**collate(rows, tokenizer.pad_token_id)).loss
        packed_loss = model(**packed, use_cache=False).loss
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_short_pretraining_lowers_the_loss_and_is_deterministic(short_runs, architecture):
    model, _, history = short_runs[architecture]
    assert len(history) == SHORT["steps"]
    assert sum(history[-5:]) / 5 < 0.8 * sum(history[:5]) / 5
    again, _, history_again = pretrain_text_lm(LmRecipe(**SHORT), architecture, progress=False)
    assert history_again == history
    first, second = model.state_dict(), again.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other, _, _ = pretrain_text_lm(LmRecipe(**SHORT | {"seed": 1}), architecture, progress=False)
    assert not torch.equal(other.state_dict()["lm_head.weight"], first["lm_head.weight"])


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_save_and_reload_with_plain_transformers_is_bit_exact(short_runs, architecture, tmp_path):
    model, tokenizer, _ = short_runs[architecture]
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = CLASSES[architecture].from_pretrained(tmp_path)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    original, again = model.state_dict(), reloaded.state_dict()
    assert original.keys() == again.keys()
    assert all(torch.equal(original[k], again[k]) for k in original)
    text = scene_lines(1, 1, HELDOUT_SEED)[-2][1]  # a high-res caption with details
    assert reloaded_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded_tokenizer.decode(reloaded_tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert reloaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    assert torch.equal(model(ids).logits, reloaded.eval()(ids).logits)


def test_tiny_lm_keeps_smollm_code_paths(tokenizer):
    model = build_text_lm("llama", tokenizer)
    config, smollm = model.config, model_spec("smollm-135m").config
    for key, value in smollm.items():
        if key == "rope_theta":
            assert config.rope_parameters["rope_theta"] == value
        elif key not in SIZE_KEYS:
            assert getattr(config, key) == value, key
    assert config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    ratio = smollm["num_attention_heads"] // smollm["num_key_value_heads"]
    assert config.num_attention_heads == ratio * config.num_key_value_heads
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert config.hidden_act == "silu" and type(model.model.norm).__name__ == "LlamaRMSNorm"
    assert config.vocab_size == len(tokenizer) and config.max_position_embeddings >= 128
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == \
        (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert 200_000 <= sum(p.numel() for p in model.parameters()) <= 600_000


def test_tiny_gpt2_keeps_gpt2_code_paths_and_gains_cross_attention(short_runs, tmp_path):
    model, tokenizer, _ = short_runs["gpt2"]
    config, gpt2 = model.config, model_spec("gpt2").config
    for key in ("model_type", "architectures", "activation_function", "layer_norm_epsilon", "tie_word_embeddings"):
        assert getattr(config, key) == gpt2[key], key
    assert model.lm_head.weight is model.transformer.wte.weight and not config.add_cross_attention
    assert 200_000 <= sum(p.numel() for p in model.parameters()) <= 600_000
    model.save_pretrained(tmp_path)
    decoder = GPT2LMHeadModel.from_pretrained(tmp_path, add_cross_attention=True)
    assert decoder.config.add_cross_attention and hasattr(decoder.transformer.h[0], "crossattention")
    loaded = decoder.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in model.state_dict().items())  # only cross-attention is new
    ids = torch.tensor([tokenizer("two shapes:")["input_ids"]])
    encoder_states = torch.randn(1, 5, config.n_embd)
    out = decoder(input_ids=ids, encoder_hidden_states=encoder_states)
    assert out.logits.shape == (1, ids.shape[1], len(tokenizer))


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_evaluate_reports_perplexity_below_the_unigram_baseline(short_runs, architecture):
    model, tokenizer, _ = short_runs[architecture]
    metrics = evaluate_text_lm(model, tokenizer, n_scenes=20)
    assert set(metrics) == {"perplexity", "caption_perplexity", "unigram_perplexity", "gain", "roundtrip",
                            "n_tokens", "n_lines"}
    assert metrics["roundtrip"] == 1.0 and metrics["n_tokens"] > 500
    assert 1.0 < metrics["perplexity"] < metrics["unigram_perplexity"] and metrics["gain"] > 1.0
    assert not model.training  # evaluation leaves the mode as it found it
    assert "(5000, i)" in DATA and "(6000, i)" in DATA
