"""The cross-attention baseline: ``VisionEncoderDecoderModel`` of a SigLIP vision tower and a GPT-2 decoder.

Built from parts (``from_encoder_decoder_pretrained`` fails on SigLIP's composite config): the decoder is the
pretrained GPT-2 re-created with ``add_cross_attention=True, is_decoder=True``, so every block gains a
randomly initialised cross-attention (``crossattention`` + ``ln_cross_attn``) over the encoder's patch
tokens; its own weights are copied. ``freeze_encoder=True`` is the fair counterpart of the prefix model
(the same frozen tower); ``False`` is 004's all-trainable run. ``generate`` needs ``decoder_start_token_id``
and ``pad_token_id``: both are set from the tokenizer (start = bos).
"""
from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

from lisalib.captioning.modeling import vision_tower_from


def cross_attention_decoder(language_model, seed: int = 0):
    """A copy of a GPT-2 LM with cross-attention added to every block (new weights drawn with ``seed``)."""
    data = language_model.config.to_dict()
    data.update(add_cross_attention=True, is_decoder=True)
    model_type = data.pop("model_type")
    config = AutoConfig.for_model(model_type, **data)
    torch.manual_seed(seed)
    decoder = AutoModelForCausalLM.from_config(config)
    missing, unexpected = decoder.load_state_dict(language_model.state_dict(), strict=False)
    if unexpected or any("crossattention" not in k and "ln_cross_attn" not in k for k in missing):
        raise RuntimeError(f"decoder weights did not match: missing {missing}, unexpected {unexpected}")
    decoder.generation_config = language_model.generation_config
    return decoder


def build_ved(vision, language_model, tokenizer, freeze_encoder: bool = True, seed: int = 0) -> VisionEncoderDecoderModel:
    """SigLIP tower (headless; ``vision``: a ``SiglipModel``, ``SiglipVisionModel`` or vision config) + GPT-2 with
    cross-attention; token ids from the tokenizer (pad falls back to eos, as GPT-2 has none)."""
    encoder = vision_tower_from(vision)
    decoder = cross_attention_decoder(language_model, seed)
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = bos, pad, tokenizer.eos_token_id
    freeze_ved(model, freeze_encoder)
    return model


def freeze_ved(model: VisionEncoderDecoderModel, freeze_encoder: bool) -> None:
    model.encoder.requires_grad_(not freeze_encoder)
    model.decoder.requires_grad_(True)
    model.config.freeze_encoder = bool(freeze_encoder)  # kept in the saved config, read back by the loader


def ved_config_on_meta(vision_config, text_config) -> VisionEncoderDecoderConfig:
    """The composite config of a VED from two configs (for counting on ``meta``)."""
    data = text_config.to_dict()
    data.update(add_cross_attention=True, is_decoder=True)
    decoder = AutoConfig.for_model(data.pop("model_type"), **data)
    return VisionEncoderDecoderConfig.from_encoder_decoder_configs(vision_config, decoder)


def ved_loss(model, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Teacher-forced loss of ``bos caption eos`` rows: decoder inputs are the rows without their last token,
    labels the rows without ``bos`` (-100 on padding); the decoder attention mask is passed, as the prefix
    model's is."""
    labels = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    return model(pixel_values=pixel_values, decoder_input_ids=input_ids[:, :-1],
                 decoder_attention_mask=attention_mask[:, :-1], labels=labels).loss


@torch.no_grad()
def ved_generate(model, pixel_values: torch.Tensor, num_beams: int = 1, max_new_tokens: int = 31) -> torch.Tensor:
    """[B, T] caption ids (greedy or beam, never sampled), the decoder start token removed."""
    out = model.generate(pixel_values=pixel_values, do_sample=False, num_beams=num_beams,
                         max_new_tokens=max_new_tokens, temperature=None, top_p=None, top_k=None)
    return out[:, 1:]


__all__ = ["build_ved", "cross_attention_decoder", "freeze_ved", "ved_config_on_meta", "ved_generate", "ved_loss"]
