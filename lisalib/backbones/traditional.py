"""002's "traditional mode": a separately pretrained image encoder (CLIP or SigLIP) and a text LLM, joined.

002 draws three connectors: image -> text space (``ImageTextConnector``), text -> SAM prompt
(``TextSAMConnector``) and image encoder -> SAM (``ImageEncoderSAMConnector``). The last two are the
Modified LISA's ``seg_token_to_sam`` and ``vision_to_sam``; the first is exactly what LLaVA's
``multi_modal_projector`` is, except that nobody has aligned it yet. So the traditional backbone is
assembled as a ``LlavaForConditionalGeneration`` whose vision tower and language model carry the two
pretrained models' weights and whose projector is new -- and trains, with the other bridges, in the
``projections`` group. The difference from VLM mode is therefore one of *pretraining*, not of wiring:
in VLM mode the projector was aligned on millions of image-text pairs, here it starts from scratch.

The composite is marked in its config (``lisalib_family = "traditional"`` plus the two sources), so a
saved one loads back as traditional.
"""
from __future__ import annotations

FAMILY_KEY = "lisalib_family"
SOURCES_KEY = "lisalib_sources"


def assemble(vision_model, llm, tokenizer, image_side: int | None = None, image_processor=None,
             sources: dict | None = None):
    """``(LlavaForConditionalGeneration, LlavaProcessor)`` from a vision model (``CLIPVisionModel`` /
    ``SiglipVisionModel``), a causal LM and its tokenizer; the projector is freshly initialised."""
    import torch
    from transformers import AddedToken, CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, \
        LlavaProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    from lisalib.constants import IMAGE_TOKEN
    from lisalib.zoo.miniatures import LLAVA_CHAT_TEMPLATE

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    vision_config, text_config = vision_model.config, llm.config
    is_clip = vision_config.model_type == "clip_vision_model"
    config = LlavaConfig(vision_config=vision_config.to_dict(), text_config=text_config.to_dict(),
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default" if is_clip else "full",  # SigLIP has no CLS
                         vision_feature_layer=-2, image_seq_length=(vision_config.image_size // vision_config.patch_size) ** 2,
                         tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)))
    setattr(config, FAMILY_KEY, "traditional")
    setattr(config, SOURCES_KEY, sources or {"image_encoder": type(vision_model).__name__,
                                             "text_llm": type(llm).__name__})
    model = LlavaForConditionalGeneration(config)
    with torch.no_grad():
        model.model.vision_tower.load_state_dict(vision_model.state_dict())
        model.model.language_model.load_state_dict(llm.model.state_dict())
        model.lm_head.load_state_dict(llm.lm_head.state_dict())
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    side = image_side or vision_config.image_size
    if image_processor is None:
        image_processor = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                                image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size,
                               vision_feature_select_strategy=config.vision_feature_select_strategy,
                               num_additional_image_tokens=1 if is_clip else 0, chat_template=LLAVA_CHAT_TEMPLATE)
    return model.eval(), processor


def load_traditional(image_encoder: str, text_llm: str, dtype=None):
    """The real profile's composite from two hub ids / folders (e.g. ``openai/clip-vit-base-patch16`` and
    ``Qwen/Qwen3-0.6B-Base``), through ``lisalib.zoo.resolve`` (a hub map keeps it offline in CI)."""
    from transformers import AutoImageProcessor, AutoModel, AutoModelForCausalLM, AutoTokenizer

    from lisalib.zoo import _dtype, resolve

    vision_source, text_source = resolve(image_encoder), resolve(text_llm)
    vision = AutoModel.from_pretrained(vision_source, dtype=_dtype(dtype))
    vision = getattr(vision, "vision_model", None) and _vision_only(vision) or vision
    llm = AutoModelForCausalLM.from_pretrained(text_source, dtype=_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    return assemble(vision, llm, tokenizer, image_processor=AutoImageProcessor.from_pretrained(vision_source),
                    sources={"image_encoder": image_encoder, "text_llm": text_llm})


def _vision_only(model):
    """The vision half of a dual-tower CLIP / SigLIP checkpoint as a ``*VisionModel``."""
    from transformers import CLIPVisionModel, SiglipVisionModel

    cls = CLIPVisionModel if model.config.model_type == "clip" else SiglipVisionModel
    vision = cls(model.config.vision_config)
    vision.vision_model.load_state_dict(model.vision_model.state_dict())
    return vision.to(model.dtype)
