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
saved one loads back as traditional. It can also be named without being saved: ``traditional:ENCODER+LLM``
(e.g. ``traditional:tiny-siglip+tiny-lm``, the zoo's pretrained SigLIP and LM; or two hub ids) is a
``--vlm_name`` that :func:`lisalib.zoo.load_vlm` assembles on the fly, seeded, so a run trained on it
reloads bit for bit (the new projector trains and is saved with the run; the new ``<image>`` row is seeded).

The image encoder may be a CLIP or a SigLIP tower. CLIP has a CLS token (dropped: LLaVA's ``default``
strategy) and its own normalisation; SigLIP has none (``full``), normalises to [-1, 1] and reads its
features at layer -2 (what tiny-siglip's patch/name alignment was trained on, as LaViDa does).
"""
from __future__ import annotations

FAMILY_KEY = "lisalib_family"
SOURCES_KEY = "lisalib_sources"
SPEC_PREFIX = "traditional:"
ZOO_PAIR = "traditional:tiny-siglip+tiny-lm"  # the tiny profile's pair: both pretrained in the zoo
ASSEMBLY_SEED = 0  # the new projector's and the new rows' initialisation


def parse_spec(name) -> tuple[str, str] | None:
    """``(image_encoder, text_llm)`` of a ``traditional:ENCODER+LLM`` name; None for any other name."""
    name = str(name)
    if not name.startswith(SPEC_PREFIX):
        return None
    encoder, plus, llm = name[len(SPEC_PREFIX):].partition("+")
    if not (plus and encoder.strip() and llm.strip()):
        raise ValueError(f"{name!r}: a traditional composite is named 'traditional:IMAGE_ENCODER+TEXT_LLM', "
                         f"e.g. {ZOO_PAIR!r}")
    return encoder.strip(), llm.strip()


def assemble(vision_model, llm, tokenizer, image_side: int | None = None, image_processor=None,
             sources: dict | None = None):
    """``(LlavaForConditionalGeneration, LlavaProcessor)`` from a vision model (``CLIPVisionModel`` /
    ``SiglipVisionModel``), a causal LM and its tokenizer; the projector is freshly initialised."""
    import torch
    from transformers import AddedToken, CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, \
        LlavaProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from transformers.utils import logging as transformers_logging

    from lisalib.constants import IMAGE_TOKEN
    from lisalib.zoo.miniatures import LLAVA_CHAT_TEMPLATE

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _join_lines(tokenizer)
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
    with torch.random.fork_rng(devices=[]):  # the same composite every time, whatever the caller's RNG
        torch.manual_seed(ASSEMBLY_SEED)
        model = LlavaForConditionalGeneration(config)
        with torch.no_grad():
            model.model.vision_tower.load_state_dict(vision_model.state_dict())
            model.model.language_model.load_state_dict(llm.model.state_dict())
            model.lm_head.load_state_dict(llm.lm_head.state_dict())
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:  # + a spare row for LISA's <SEG>
            verbosity = transformers_logging.get_verbosity()
            transformers_logging.set_verbosity_error()  # the resize logs its method at warning level
            try:
                model.resize_token_embeddings(len(tokenizer) + 1, mean_resizing=True, pad_to_multiple_of=64)
            finally:
                transformers_logging.set_verbosity(verbosity)
    model.to(next(vision_model.parameters()).dtype)
    side = image_side or vision_config.image_size
    if image_processor is None and not is_clip:
        from transformers import SiglipImageProcessorPil

        image_processor = SiglipImageProcessorPil(size={"height": side, "width": side})  # mean = std = 0.5
    elif image_processor is None:
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
    if vision.config.model_type not in ("clip_vision_model", "siglip_vision_model"):
        raise ValueError(f"{image_encoder!r} is a {vision.config.model_type!r} model, not a CLIP or SigLIP image "
                         "encoder (a traditional composite is named 'traditional:IMAGE_ENCODER+TEXT_LLM')")
    llm = AutoModelForCausalLM.from_pretrained(text_source, dtype=_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    return assemble(vision, llm, tokenizer, image_processor=AutoImageProcessor.from_pretrained(vision_source),
                    sources={"image_encoder": image_encoder, "text_llm": text_llm})


def _join_lines(tokenizer) -> None:
    """Read LLaVA's ``<image>\\n`` line break as a space where the LLM's tokenizer has no newline (the zoo's
    word-level tiny-lm: ``"\\nwhere"`` would be one unknown word); byte-level tokenizers are left alone."""
    from tokenizers import normalizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or tokenizer.unk_token_id is None or tokenizer.unk_token_id not in tokenizer("a\nb").input_ids:
        return
    steps = [normalizers.Replace("\n", " ")] + ([backend.normalizer] if backend.normalizer is not None else [])
    backend.normalizer = normalizers.Sequence(steps)


def _vision_only(model):
    """The vision half of a dual-tower CLIP / SigLIP checkpoint as a ``*VisionModel``."""
    from transformers import CLIPVisionModel, SiglipVisionModel

    cls = CLIPVisionModel if model.config.model_type == "clip" else SiglipVisionModel
    vision = cls(model.config.vision_config)
    getattr(vision, "vision_model", vision).load_state_dict(model.vision_model.state_dict())  # v5: no wrapper
    return vision.to(model.dtype)
