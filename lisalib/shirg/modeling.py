"""``LavidaForCausalLM``: a LaViDa-style VLM whose image tokens can be pooled (LaViDa), all kept, or selected.

The parts keep LaViDa's names: ``vision_tower`` (SigLIP with its last layer and head deleted, so its last
hidden state is the full tower's ``hidden_states[-2]``), ``mm_projector`` (``mlp2x_gelu``:
``mm_projector.0`` Linear, ``.1`` GELU, ``.2`` Linear), ``image_newline`` and ``language_model``. The order is
LaViDa's code's: project every token, then pool (bilinear, stride 2) -- the paper's "pool, then project" is
a different function with a GELU in between. :meth:`image_tokens` builds the LLM-side sequence: the global
view's tokens first, then the crops tiled into one map read row by row, one ``image_newline`` after each row
that keeps a token (``spatial_unpad`` for a square image; a selection keeps the same layout with gaps).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel, SiglipVisionConfig, SiglipVisionModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from lisalib.constants import LABEL_IGNORE_INDEX
from lisalib.shirg.configuration import LavidaConfig


@dataclass
class ImageSequence:
    """The LLM-side image tokens of one sample: ``embeds`` [L, d] and, per position, the (view, row, col) it
    came from (``-1`` rows are newlines; pooled tokens carry pooled-grid coordinates)."""

    embeds: torch.Tensor
    origin: np.ndarray


def truncated_vision_config(config: SiglipVisionConfig) -> SiglipVisionConfig:
    """LaViDa's tower config: one layer fewer, no attention-pooling head."""
    data = config.to_dict()
    data.update(num_hidden_layers=config.num_hidden_layers - 1, vision_use_head=False)
    data.pop("model_type", None)
    return SiglipVisionConfig(**data)


def tiled_order(n_views: int, rows: int, cols: int, grid: int) -> list[list[tuple[int, int, int]]]:
    """(view, row, col) of the crops' tokens, grouped by row of the tiled (rows*grid) x (cols*grid) map;
    view 0 is the global view, crops are views 1.. in row-major order."""
    lines = []
    for map_row in range(rows * grid):
        crop_row, r = divmod(map_row, grid)
        lines.append([(1 + crop_row * cols + map_col // grid, r, map_col % grid) for map_col in range(cols * grid)])
    assert 1 + rows * cols == n_views
    return lines


class LavidaForCausalLM(PreTrainedModel):
    """SigLIP tower -> ``mm_projector`` -> (pool | keep | select) -> causal LM; see the module docstring."""

    config: LavidaConfig
    config_class = LavidaConfig
    base_model_prefix = "lavida"
    main_input_name = "input_ids"
    _supports_sdpa = True

    def __init__(self, config: LavidaConfig, vision_tower: SiglipVisionModel | None = None,
                 language_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.vision_tower = vision_tower if vision_tower is not None else SiglipVisionModel(config.vision_config)
        mm, d = config.vision_config.hidden_size, config.text_config.hidden_size
        if config.projector_type == "mlp2x_gelu":
            self.mm_projector = nn.Sequential(nn.Linear(mm, d), nn.GELU(), nn.Linear(d, d))
        else:
            self.mm_projector = nn.Sequential(nn.Linear(mm, d))
        self.image_newline = nn.Parameter(torch.zeros(d))
        self.language_model = (language_model if language_model is not None
                               else AutoModelForCausalLM.from_config(config.text_config))
        self.post_init()
        for part in (self.vision_tower, self.language_model):  # sub-models built from a config get no kernel
            if part.config._attn_implementation is None:  # choice; SigLIP's own is sdpa (same numbers)
                part.set_attn_implementation("sdpa")

    @classmethod
    def from_parts(cls, siglip, language_model, projector_type: str = "mlp2x_gelu", seed: int = 0):
        """Build from a loaded ``SiglipModel`` (its vision tower is truncated here, weights copied) and a causal LM."""
        torch.manual_seed(seed)
        full = getattr(siglip, "vision_model", siglip)  # SiglipModel's tower, or a SiglipVisionModel itself
        vision_config = getattr(siglip.config, "vision_config", siglip.config)
        truncated = truncated_vision_config(vision_config)
        tower = SiglipVisionModel(truncated)
        core = getattr(tower, "vision_model", tower)  # transformers 5: no vision_model attribute
        missing, _ = core.load_state_dict(full.state_dict(), strict=False)
        if missing:
            raise RuntimeError(f"truncated tower left weights unset: {missing}")
        config = LavidaConfig(vision_config=tower.config, text_config=language_model.config,
                              projector_type=projector_type)
        model = cls(config, vision_tower=tower, language_model=language_model)
        with torch.no_grad():
            for layer in model.mm_projector:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=config.initializer_range)
                    nn.init.zeros_(layer.bias)
            model.image_newline.normal_(std=config.initializer_range)
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    # ----- the image path -------------------------------------------------------------------------------
    def encode_views(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, grid*grid, C]: the truncated tower's last hidden state, before ``post_layernorm`` (LaViDa's features)."""
        return self.vision_tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-1]

    def image_tokens(self, features: torch.Tensor, mode: str = "pooled",
                     selection: np.ndarray | None = None) -> list[ImageSequence]:
        """The LLM-side image sequences of a batch; ``features`` [B, views, grid*grid, C].

        ``mode``: ``pooled`` (LaViDa: project, bilinear-pool each view), ``full`` (all tokens projected) or
        ``selected`` (``selection`` [B, views, grid*grid] bool: the kept tokens, projected unpooled).
        """
        config = self.config
        batch, views = features.shape[:2]
        projected = self.mm_projector(features)  # [B, V, T, d]: project first, as LaViDa's encode_images
        grid = config.grid
        if mode == "pooled":
            maps = projected.reshape(batch * views, grid, grid, -1).permute(0, 3, 1, 2)
            pooled = F.interpolate(maps, size=(config.pooled_grid,) * 2, mode="bilinear", align_corners=False)
            projected = pooled.permute(0, 2, 3, 1).reshape(batch, views, config.pooled_grid ** 2, -1)
            grid = config.pooled_grid
            keep = np.ones((batch, views, grid * grid), bool)
        elif mode == "full":
            keep = np.ones((batch, views, grid * grid), bool)
        elif mode == "selected":
            if selection is None or np.shape(selection) != (batch, views, grid * grid):
                raise ValueError(f"mode='selected' needs a [{batch}, {views}, {grid * grid}] bool selection, got "
                                 f"{None if selection is None else np.shape(selection)}")
            keep = np.asarray(selection, bool)
        else:
            raise ValueError(f"mode must be 'pooled', 'full' or 'selected', not {mode!r}")
        lines = tiled_order(views, config.crop_rows, config.crop_cols, grid)
        sequences = []
        for b in range(batch):
            origin = [(0, r, c) for r in range(grid) for c in range(grid) if keep[b, 0, r * grid + c]]
            for line in lines:
                kept = [(v, r, c) for v, r, c in line if keep[b, v, r * grid + c]]
                origin += kept + ([(-1, -1, -1)] if kept else [])
            origin = np.array(origin, dtype=np.int64).reshape(-1, 3)
            tokens = projected[b, np.maximum(origin[:, 0], 0), origin[:, 1] * grid + origin[:, 2]]
            newline = torch.from_numpy(origin[:, 0] < 0).to(tokens.device)[:, None]
            sequences.append(ImageSequence(torch.where(newline, self.image_newline.to(tokens.dtype), tokens), origin))
        return sequences

    # ----- the language model -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                image_features: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                mode: str = "pooled", selection: np.ndarray | None = None, **kwargs) -> CausalLMOutputWithPast:
        """``input_ids`` [B, L] = ``<s>`` then the text (right-padded); the image sequence goes right after ``<s>``.

        Give ``image_features`` [B, views, T, C] (cached tower output) or ``pixel_values`` [B * views, 3, H, W].
        Logits and labels come back in the combined sequence's positions (labels -100 on ``<s>`` and image).
        """
        if image_features is None:
            if pixel_values is None:
                raise ValueError("give image_features or pixel_values")
            image_features = self.encode_views(pixel_values).unflatten(0, (input_ids.shape[0], self.config.n_views))
        images = self.image_tokens(image_features, mode, selection)
        embeds, masks, targets = self.merge(input_ids, attention_mask, labels, images)
        out = self.language_model(inputs_embeds=embeds, attention_mask=masks, **kwargs)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), targets[:, 1:].flatten(),
                                   ignore_index=LABEL_IGNORE_INDEX)
        return CausalLMOutputWithPast(loss=loss, logits=out.logits, past_key_values=out.past_key_values)

    def merge(self, input_ids, attention_mask, labels, images: list[ImageSequence]):
        """Insert each image sequence after ``<s>``; right-pad to the longest; labels (if any) shifted along."""
        text = self.get_input_embeddings()(input_ids)
        rows, masks, targets = [], [], []
        for b, image in enumerate(images):
            n = int(attention_mask[b].sum())
            rows.append(torch.cat([text[b, :1], image.embeds, text[b, 1:n]]))
            if labels is not None:
                ignore = torch.full((1 + len(image.embeds),), LABEL_IGNORE_INDEX, dtype=labels.dtype)
                targets.append(torch.cat([ignore.to(labels.device), labels[b, 1:n]]))
        width = max(len(r) for r in rows)
        embeds = text.new_zeros(len(rows), width, text.shape[-1])
        mask = attention_mask.new_zeros(len(rows), width)
        padded = torch.full((len(rows), width), LABEL_IGNORE_INDEX, dtype=torch.long, device=text.device)
        for b, row in enumerate(rows):
            embeds[b, :len(row)] = row
            mask[b, :len(row)] = 1
            if labels is not None:
                padded[b, :len(row)] = targets[b]
        return embeds, mask, padded
