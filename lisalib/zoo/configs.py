"""Architectures of the tiny zoo models: real transformers configs, shrunk.

They are the same classes as the hub models (`LlavaConfig` with a CLIP vision tower and a LLaMA text
model; `SamConfig`), only narrower and shallower, so every code path the tutorial exercises on a CPU is
the code path that runs `llava-hf/llava-1.5-7b-hf` and `facebook/sam-vit-base` on a GPU.
"""
from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, SamConfig

TINY_IMAGE_SIZE = 128  # shapes-world scenes are rendered at this size for both tiny models
TINY_VLM_PATCH = 16  # 8x8 = 64 image tokens
TINY_SAM_PATCH = 8  # 16x16 image embedding, low-res masks 64x64


def tiny_llava_config(vocab_size: int, image_token_id: int, pad_token_id: int, bos_token_id: int,
                      eos_token_id: int) -> LlavaConfig:
    """CLIP-style ViT (128 px, patch 16, width 128, 4 layers) + LLaMA-style LM (width 192, 4 layers)."""
    vision = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_VLM_PATCH,
        projection_dim=128,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=False,
    )
    num_patches = (TINY_IMAGE_SIZE // TINY_VLM_PATCH) ** 2
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=num_patches,
        vision_feature_select_strategy="default",  # drop CLS, as llava-1.5 does
        vision_feature_layer=-1,  # the last layer (llava-1.5 reads the penultimate one of its 24; this tower has 4)
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def tiny_sam_config() -> SamConfig:
    """SAM with a 4-layer, width-96 ViT at 128 px (patch 8) and a width-64 prompt encoder/decoder."""
    embed = TINY_IMAGE_SIZE // TINY_SAM_PATCH
    return SamConfig(
        vision_config=dict(
            hidden_size=96,
            output_channels=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=TINY_IMAGE_SIZE,
            patch_size=TINY_SAM_PATCH,
            window_size=4,
            global_attn_indexes=[1, 3],
            mlp_dim=384,
            num_pos_feats=32,
            # SamVisionConfig defaults to std 1e-10: fine for loading SAM's weights, but from scratch it
            # leaves the encoder at ~0 and it barely learns. Use the usual 0.02.
            initializer_range=0.02,
        ),
        prompt_encoder_config=dict(
            hidden_size=64, image_size=TINY_IMAGE_SIZE, patch_size=TINY_SAM_PATCH, mask_input_channels=8
        ),
        mask_decoder_config=dict(
            hidden_size=64, mlp_dim=256, num_hidden_layers=2, num_attention_heads=4, iou_head_hidden_dim=64
        ),
    )
