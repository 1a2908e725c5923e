"""Chapter 5: SHIRG / LaViDa multi-view token selection.

``layout`` (LaViDa's views, tokens, pooling and LLM-side counts), ``cost`` (what a token costs the LLM),
``seedplan`` (the seed plan's multi-view bugs, computed).
"""
from lisalib.shirg.cost import (GiB, LLADA_8B, TABLE_TOKENS, VISION_WIDTH, cost_table, encoder_flops_per_view,
                                kv_cache_bytes, lora_scale, prefill_flops, projector_flops, projector_lora_params,
                                projector_params)
from lisalib.shirg.layout import (LAVIDA_PINPOINTS, PATCH_SIZE, POOL_MODES, POOL_STRIDE, STAGE2_PINPOINTS, VIEW_SIZE,
                                  AnyresView, Token, TokenLayout, anyres_views, check_view, divide_to_patches,
                                  lavida_features, letterbox_geometry, llm_layout, merge_spatial_unpad, pool_2d,
                                  pool_then_project, pooled_grid, project_then_pool, resize_and_pad,
                                  select_best_resolution, so400m_vision_config, token_counts, token_layout,
                                  truncated_tower, unpad_slices, view_geometry)
from lisalib.shirg.seedplan import seed_plan_bugs, seed_views
