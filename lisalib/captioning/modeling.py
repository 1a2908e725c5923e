"""``PrefixCaptioner``: ClipCap / 004-style prefix conditioning, built so that it trains, decodes and reloads.

Image -> SigLIP vision tower (frozen; ``last_hidden_state``, all patches, no CLS) -> optional token pooling
-> projection to the LM's width = prefix embeddings -> ``[prefix, bos, caption, eos]`` through a decoder-only
LM whose attention carries a peft LoRA. What 004 got wrong and this class does instead:

- labels are -100 on the prefix, on ``bos`` and on padding, so the loss is the caption's and ``eos``'s only,
  and an explicit ``eos`` ends every caption (004 appended none and trained on pads);
- the attention mask is always passed (004's collator gave none);
- :meth:`generate` is deterministic (``do_sample=False``; 004's temperature 1.0 meant sampling) and keeps the
  new tokens that ``generate(inputs_embeds=...)`` returns (004 sliced 196 of them off: empty captions);
- the LoRA is injected in place (``peft.inject_adapter_in_model``) when the model is built from its config, so
  ``save_pretrained`` / ``from_pretrained`` round-trip the whole model (004's raised ``TypeError``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel, SiglipVisionConfig, SiglipVisionModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from lisalib.captioning.configuration import PrefixCaptionerConfig
from lisalib.constants import LABEL_IGNORE_INDEX


def pixel_shuffle(tokens: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, N, D] on a square grid -> [B, N / s^2, s^2 D]: each s x s block of patches becomes one token
    (SmolVLM's connector), read row by row."""
    b, n, d = tokens.shape
    g = int(round(n ** 0.5))
    if g * g != n or g % factor:
        raise ValueError(f"{n} tokens are not a square grid divisible by {factor}")
    x = tokens.reshape(b, g // factor, factor, g // factor, factor, d)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, (g // factor) ** 2, factor * factor * d)


def average_pool(tokens: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, N, D] -> [B, N / s^2, D]: s x s average pooling of the patch grid."""
    b, n, d = tokens.shape
    g = int(round(n ** 0.5))
    if g * g != n or g % factor:
        raise ValueError(f"{n} tokens are not a square grid divisible by {factor}")
    maps = tokens.transpose(1, 2).reshape(b, d, g, g)
    return F.avg_pool2d(maps, factor).flatten(2).transpose(1, 2)


class PrefixCaptioner(PreTrainedModel):
    """Vision tower -> (pool) -> projection -> prefix of a LoRA-adapted causal LM; see the module docstring."""

    config: PrefixCaptionerConfig
    config_class = PrefixCaptionerConfig
    base_model_prefix = "captioner"
    main_input_name = "pixel_values"
    _supports_sdpa = True

    def __init__(self, config: PrefixCaptionerConfig, vision_tower: SiglipVisionModel | None = None,
                 language_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.vision_tower = vision_tower if vision_tower is not None else SiglipVisionModel(config.vision_config)
        d_in, d_out = config.prefix_width, config.text_config.hidden_size
        if config.projection_type == "linear":
            self.projection = nn.Linear(d_in, d_out)
        else:
            self.projection = nn.Sequential(nn.Linear(d_in, config.mlp_hidden_dim), nn.GELU(), nn.Dropout(0.1),
                                            nn.Linear(config.mlp_hidden_dim, d_out))
        self.language_model = (language_model if language_model is not None
                               else AutoModelForCausalLM.from_config(config.text_config))
        if config.lora_r > 0:
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              bias="none", target_modules=config.lora_target_modules())
            inject_adapter_in_model(lora, self.language_model)
        self.post_init()
        for part in (self.vision_tower, self.language_model):
            if part.config._attn_implementation is None:
                part.set_attn_implementation("sdpa")
        self.freeze()

    @classmethod
    def from_parts(cls, vision, language_model, seed: int = 0, **options) -> "PrefixCaptioner":
        """Build from a loaded SigLIP (``SiglipModel`` or ``SiglipVisionModel``; its tower's weights are copied
        into a tower without the attention-pooling head, which prefix captioning never reads) and a loaded
        causal LM (used as it is); ``options`` are :class:`PrefixCaptionerConfig` fields."""
        tower = vision_tower_from(vision)
        config = PrefixCaptionerConfig(vision_config=tower.config, text_config=language_model.config, **options)
        torch.manual_seed(seed)
        model = cls(config, vision_tower=tower, language_model=language_model)
        with torch.no_grad():  # post_init leaves already-initialised sub-models alone; the bridge is new
            for layer in model.projection.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=config.initializer_range)
                    nn.init.zeros_(layer.bias)
        return model

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "PrefixCaptioner":
        """transformers' loader, then :meth:`freeze` again (loading replaces the parameters, and with them the
        trainable flags set in ``__init__``)."""
        model = super().from_pretrained(*args, **kwargs)
        model.freeze()
        return model

    def freeze(self) -> None:
        """Trainable: projection, LoRA (when ``lora_r > 0``), the tower only if ``freeze_vision`` is False, the
        whole LM only if ``freeze_language_model`` is False."""
        for name, p in self.named_parameters():
            if name.startswith("projection."):
                p.requires_grad_(True)
            elif name.startswith("vision_tower."):
                p.requires_grad_(not self.config.freeze_vision)
            else:
                p.requires_grad_("lora_" in name or not self.config.freeze_language_model)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    # ----- the image path -------------------------------------------------------------------------------
    def prefix(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, prefix_tokens, d_text]: the prefix embeddings of a batch of images."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_vision):
            features = self.vision_tower(pixel_values=pixel_values).last_hidden_state
        if self.config.prefix_pooling == "pixel_shuffle":
            features = pixel_shuffle(features, self.config.pool_factor)
        elif self.config.prefix_pooling == "avg":
            features = average_pool(features, self.config.pool_factor)
        return self.projection(features)

    # ----- training -----------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None, **kwargs) -> CausalLMOutputWithPast:
        """``input_ids`` [B, L] = ``bos caption eos`` right-padded, ``attention_mask`` marking them.

        ``labels``: pass ``input_ids`` (or anything shaped like it); the loss ignores ``bos``, padding and the
        prefix, so the last prefix position is never a target and ``bos`` predicts the first caption token.
        Logits come back for the prefix positions too ([B, P + L, vocab]).
        """
        if attention_mask is None:
            raise ValueError("pass the attention mask (004 trained without one: pads were attended and scored)")
        prefix = self.prefix(pixel_values)
        text = self.get_input_embeddings()(input_ids)
        embeds = torch.cat([prefix.to(text.dtype), text], dim=1)
        ones = attention_mask.new_ones(prefix.shape[:2])
        mask = torch.cat([ones, attention_mask], dim=1)
        out = self.language_model(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        loss = None
        if labels is not None:
            targets = caption_targets(labels, attention_mask, prefix.shape[1])
            loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), targets[:, 1:].flatten(),
                                   ignore_index=LABEL_IGNORE_INDEX)
        return CausalLMOutputWithPast(loss=loss, logits=out.logits, past_key_values=out.past_key_values)

    # ----- decoding -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, bos_token_id: int, eos_token_id: int, pad_token_id: int | None = None,
                 num_beams: int = 1, max_new_tokens: int | None = None, **kwargs) -> torch.Tensor:
        """[B, T] new token ids (greedy, or beam search with ``num_beams``; never sampled), ``eos`` included
        and pads after it. The LM sees ``[prefix, bos]`` as ``inputs_embeds``; transformers returns only the
        tokens it adds, which is what the caption is."""
        prefix = self.prefix(pixel_values)
        bos = self.get_input_embeddings()(torch.full((len(prefix), 1), bos_token_id, device=prefix.device))
        embeds = torch.cat([prefix.to(bos.dtype), bos], dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return self.language_model.generate(
            inputs_embeds=embeds, attention_mask=mask, do_sample=False, num_beams=num_beams,
            max_new_tokens=max_new_tokens or self.config.max_caption_tokens + 1, eos_token_id=eos_token_id,
            pad_token_id=eos_token_id if pad_token_id is None else pad_token_id, bos_token_id=bos_token_id,
            temperature=None, top_p=None, top_k=None, **kwargs)


def caption_targets(labels: torch.Tensor, attention_mask: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """Labels in the combined ``[prefix, bos, caption, eos, pad]`` positions: -100 except caption and eos."""
    caption = labels.masked_fill(attention_mask == 0, LABEL_IGNORE_INDEX).clone()
    caption[:, 0] = LABEL_IGNORE_INDEX  # bos is an input, never a target
    ignore = torch.full((len(labels), prefix_tokens), LABEL_IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
    return torch.cat([ignore, caption], dim=1)


def vision_tower_from(vision) -> SiglipVisionModel:
    """A headless ``SiglipVisionModel`` with the weights of ``vision`` (a ``SiglipModel``, a
    ``SiglipVisionModel`` or a ``SiglipVisionConfig`` for random weights)."""
    if isinstance(vision, SiglipVisionConfig):
        config, source = vision, None
    else:
        config = getattr(vision.config, "vision_config", vision.config)
        source = getattr(vision, "vision_model", vision)
    data = config.to_dict()
    data.pop("model_type", None)
    data["vision_use_head"] = False
    tower = SiglipVisionModel(SiglipVisionConfig(**data))
    if source is not None:
        core = getattr(tower, "vision_model", tower)
        state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
        missing, unexpected = core.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"vision tower weights did not match: missing {missing}, unexpected {unexpected}")
    return tower.eval()


__all__ = ["PrefixCaptioner", "average_pool", "caption_targets", "pixel_shuffle", "vision_tower_from"]
