"""Pretraining of ``tiny-siglip``: a real ``SiglipModel`` whose patch tokens know which words they match.

Chapter 5 re-implements SHIRG-style text-relevance token selection over SigLIP patch tokens and chapter 6
freezes a SigLIP vision tower for captioning; both need a SigLIP that already aligns images (and image
regions) with shapes-world text. The zoo trains it here from scratch with SigLIP's own pairwise sigmoid loss
on two kinds of pairs: whole scenes with their captions, and crops around one object with its name ("the
red triangle", "the small blue square"), plus a dense term, the same sigmoid loss between patch tokens and
the names of the objects they touch, without which small high-res targets are never found (SiglipRecipe).

Geometry: a scaled-down so400m/14-384. LaViDa reads 27x27 = 729 patch tokens of 14 px per 384 px view (no
CLS token; SigLIP pools with its attention-pooling head); here a view is 64 px with 8 px patches, an 8x8 =
64-token grid, the defaults of :func:`lisalib.world.highres.encoder_views`, so one global view + four tiles
is 5 x 64 = 320 tokens, the tiny analogue of LaViDa's 5 x 729 = 3645.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from tqdm.auto import tqdm
from transformers import (PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessorPil, SiglipModel,
                          SiglipProcessor, get_cosine_schedule_with_warmup)

from lisalib.accounting.registry import model_spec
from lisalib.training.steps import take_step
from lisalib.world import encoder_views, generate_highres_scenes, generate_scenes, highres_vocabulary
from lisalib.world.highres import PATCH_SIZE, VIEW_SIZE

TRAIN_SEED = 7000  # scenes (7000, i) of both worlds train the model ...
HELDOUT_SEED = 8000  # ... scenes (8000, i) are never seen in training
IMAGE_SIZE = VIEW_SIZE  # 64 px views (so400m: 384)
PATCH = PATCH_SIZE  # 8 px patches (so400m: 14): an 8x8 grid per view
GRID = IMAGE_SIZE // PATCH
TEXT_LENGTH = 32  # texts are padded to this many tokens (so400m: 64); the longest caption is 28 with </s>
FEATURE_LAYER = -2  # LaViDa's SigLIP features: hidden_states[-2]
CANVAS = 128  # shapes-world scenes, and high-res canvases resized to the tiles' resolution, are cut at this size
DATA = (f"shapes world (scenes ({TRAIN_SEED}, i), i < train_scenes: the scene at {IMAGE_SIZE} px with its caption, "
        f"and crops around each object with its name) and high-res world (scenes ({TRAIN_SEED}, i), i < "
        f"highres_scenes: crops around small targets and distractors with their names, and the encoder views, "
        f"global + 4 tiles, whose patches are labelled with the objects they touch); held-out scenes "
        f"({HELDOUT_SEED}, i) of both worlds")


@dataclass
class SiglipRecipe:
    """Everything that determines the built checkpoint (with the code itself).

    Each step is one sigmoid-loss batch of ``caption_batch`` scene/caption pairs and ``crop_batch``
    crop/name pairs (the texts of the batch deduplicated: pairs with the same text are all positives), plus
    the dense term on the scenes' and ``view_batch`` high-res views' patch tokens.

    The dense term goes beyond plain SigLIP because the high-res check needs it. Measured (900 steps,
    held-out, layer -2): plain SigLIP (``dense_weight=0, view_batch=0``) puts the best patch on the named
    object in 79 % of shapes-world queries (chance 12 %) but finds no small high-res target among the 320
    tokens (0 %, chance 2 %); with the dense term 85 % and 61 %, and retrieval improves too (R@1 0.55 vs 0.50).
    The default (1200 steps, about 5.3 min on one idle CPU thread) reaches 86 % and 64 %.
    """

    train_scenes: int = 3000
    highres_scenes: int = 600
    crops_per_object: int = 2  # crops (different windows) per object of a shapes-world scene
    highres_distractor_crops: int = 2  # distractors cropped per high-res scene (every small target is)
    min_crop: int = 64  # crop side in pixels of the 128 px canvas (64: a tile's scale, 128: the global view's)
    max_crop: int = 128
    steps: int = 1200
    caption_batch: int = 32
    crop_batch: int = 40
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    flip_crops: bool = True  # random horizontal flips of crops (a name does not change; a caption's order would)
    dense_weight: float = 1.0  # the dense term (patch tokens vs object names, see dense_loss); 0: plain SigLIP
    view_batch: int = 32  # high-res encoder views (global + tiles) per step, for the dense term only
    seed: int = 0


# ----- the model and its processor ------------------------------------------------------------------------
def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over both worlds' vocabulary, with SigLIP's conventions.

    As SigLIP's tokenizer: lower-cases, appends ``</s>``, pads on the right with ``</s>`` (pad = eos = id 1,
    the so400m config's ids) to a fixed ``TEXT_LENGTH`` (use ``padding="max_length"``), and returns
    ``input_ids`` only: SigLIP's text tower reads the padded sequence without an attention mask and pools
    its last position.
    """
    vocab = {"<unk>": 0, "</s>": 1}
    for word in highres_vocabulary():  # includes the shapes world's vocabulary()
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^a-z0-9]"), behavior="isolated")]
    )
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="</s>", pad_token="</s>", unk_token="<unk>", padding_side="right",
        truncation_side="right", model_max_length=TEXT_LENGTH, model_input_names=["input_ids"],
        clean_up_tokenization_spaces=False,
    )


def tiny_siglip_config(vocab_size: int) -> SiglipConfig:
    """so400m/14-384's config (``lisalib/configs/siglip-so400m-patch14-384.json``) with sizes changed only.

    Both towers: width 64 (1152), 4 layers (27), 4 heads (16), MLP 240 (4304, the same 3.74 ratio); vision
    64 px views of 8 px patches (384 / 14); text 32 positions (64) and this vocabulary. Activation
    (gelu_pytorch_tanh), layer-norm eps, the attention-pooling head (``vision_use_head``), token ids and
    the initializer are so400m's.
    """
    config = model_spec("siglip-so400m-patch14-384").config
    sizes = dict(hidden_size=64, intermediate_size=240, num_hidden_layers=4, num_attention_heads=4)
    text = {**config["text_config"], **sizes, "vocab_size": vocab_size, "max_position_embeddings": TEXT_LENGTH}
    vision = {**config["vision_config"], **sizes, "image_size": IMAGE_SIZE, "patch_size": PATCH}
    for sub in (text, vision):
        sub.pop("model_type", None)
    return SiglipConfig(text_config=text, vision_config=vision, initializer_factor=config["initializer_factor"])


def build_tiny_siglip(seed: int = 0) -> tuple[SiglipModel, SiglipProcessor]:
    """A randomly initialised tiny SiglipModel and its SiglipProcessor.

    ``logit_scale`` and ``logit_bias`` start as SigLIP's paper does, t' = log 10 and b = -10 (transformers
    initialises both at 0, which only suits loading weights over them): every pair then starts out scored
    as a negative, as nearly all pairs of a batch are, which spares the large first corrections the paper
    reports for b = 0. The image processor is the PIL backend of ``SiglipImageProcessor`` (no torchvision
    here); it saves as ``SiglipImageProcessor`` and loads back as either.
    """
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = SiglipModel(tiny_siglip_config(len(tokenizer)))
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})  # mean/std 0.5
    return model, SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def pixels_from_uint8(images: torch.Tensor, processor: SiglipProcessor) -> torch.Tensor:
    """[N, H, W, 3] uint8 images already at the model's size -> pixel values, as the image processor computes
    them (rescale, normalise): training stores crops as uint8 to keep memory small."""
    ip = processor.image_processor
    mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() * ip.rescale_factor - mean) / std


def _resized(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))  # the image processor's resize


# ----- training data ---------------------------------------------------------------------------------------
def crop_window(center: tuple[float, float], canvas: int, rng: np.random.Generator, min_side: int,
                max_side: int) -> tuple[int, int, int, int]:
    """A square window (x0, y0, x1, y1) inside the canvas with ``center`` in its middle 40 % (each axis)."""
    side = int(round(math.exp(rng.uniform(math.log(min_side), math.log(max_side)))))
    side = min(side, canvas)
    x0, y0 = (int(round(c - side * rng.uniform(0.3, 0.7))) for c in center)
    x0, y0 = (min(max(v, 0), canvas - side) for v in (x0, y0))
    return x0, y0, x0 + side, y0 + side


MAX_OBJECTS = 17  # the most objects a high-res scene holds (14 distractors + 3 targets)


def object_patches(masks: np.ndarray, names: list[str], index: dict, grid: int = GRID) -> tuple:
    """Dense labels of one view: ([MAX_OBJECTS] text index, -1 padded; [MAX_OBJECTS, grid*grid] patches each
    object's visible ``masks`` touch)."""
    texts = torch.full((MAX_OBJECTS,), -1)
    touched = torch.zeros(MAX_OBJECTS, grid * grid, dtype=torch.bool)
    k = 0
    for name, mask in zip(names, masks):
        cover = _patch_coverage(mask, grid) > 0
        if cover.any():
            texts[k], touched[k] = index.setdefault(name, len(index)), torch.from_numpy(cover)
            k += 1
    return texts, touched


def training_pairs(recipe: SiglipRecipe) -> dict:
    """uint8 images at 64 px and their texts (indices into ``texts``): ``caption_*`` (scene, caption) and
    ``crop_*`` (crop, name); ``view_*``: high-res encoder views; ``*_objects`` / ``*_touched``: the names of
    the objects in a scene or view and the patches they touch (the dense term's labels).

    Crops come from the 128 px canvas (a shapes-world scene, or a high-res canvas resized to the tiles'
    resolution, as :func:`encoder_views` does), side ``min_crop``..``max_crop`` (log-uniform), so an object is
    seen at the scales of both the tiles (side 64) and the global view (side 128). Objects whose visible
    part is under 20 px of the canvas are skipped (nothing to see).
    """
    rng = np.random.default_rng([recipe.seed, 1])
    index: dict[str, int] = {}
    caption_images, captions, caption_dense = [], [], []
    crop_images, crop_names, view_images, view_dense = [], [], [], []

    def add_crops(image: Image.Image, center, name: str, count: int) -> None:
        for _ in range(count):
            window = crop_window(center, CANVAS, rng, recipe.min_crop, recipe.max_crop)
            crop_images.append(_resized(image.crop(window)))
            crop_names.append(index.setdefault(name, len(index)))

    for scene in generate_scenes(recipe.train_scenes, seed=TRAIN_SEED):
        image = scene.render()
        caption_images.append(_resized(image))
        captions.append(index.setdefault(scene.caption(), len(index)))
        names = [f"the {o.name}" for o in scene.objects]
        caption_dense.append(object_patches(scene.visible_masks(), names, index))
        visible = scene.visible_masks().sum(axis=(1, 2))
        for name, obj, area in zip(names, scene.objects, visible):
            if area >= 20:
                add_crops(image, obj.center, name, recipe.crops_per_object)
    for scene in generate_highres_scenes(recipe.highres_scenes, seed=TRAIN_SEED):
        if scene.width != scene.height:
            raise ValueError("training crops assume square high-res canvases")
        scale = CANVAS / scene.width
        image = scene.render().resize((CANVAS, CANVAS), Image.BICUBIC)
        targets = {t.index: t for t in scene.targets}
        names = [f"the {scene.target_name(targets[i])}" if i in targets else f"the {o.name}"
                 for i, o in enumerate(scene.objects)]
        visible = scene.visible_masks()
        area = visible.sum(axis=(1, 2)) * scale ** 2
        others = [i for i in range(len(scene.objects)) if i not in targets and area[i] >= 20]
        chosen = list(targets) + [others[k] for k in rng.permutation(len(others))[:recipe.highres_distractor_crops]]
        for i in chosen:
            center = scene.objects[i].center
            add_crops(image, (center[0] * scale, center[1] * scale), names[i], 1)
        if recipe.view_batch:
            half = scene.width // 2
            views = encoder_views(scene, IMAGE_SIZE, PATCH)
            regions = [visible] + [visible[:, r * half:(r + 1) * half, c * half:(c + 1) * half]
                                   for r in range(2) for c in range(2)]
            for view, masks in zip(views, regions):
                view_images.append(np.asarray(view.image))
                view_dense.append(object_patches(masks, names, index))
    texts = sorted(index, key=index.get)
    stack = lambda rows: (torch.stack([t for t, _ in rows]), torch.stack([m for _, m in rows]))  # noqa: E731
    data = {
        "caption_images": torch.from_numpy(np.stack(caption_images)),
        "caption_texts": torch.tensor(captions),
        "crop_images": torch.from_numpy(np.stack(crop_images)),
        "crop_texts": torch.tensor(crop_names),
        "texts": texts,
    }
    data["caption_objects"], data["caption_touched"] = stack(caption_dense)
    if view_images:
        data["view_images"] = torch.from_numpy(np.stack(view_images))
        data["view_objects"], data["view_touched"] = stack(view_dense)
    return data


# ----- the loss and the training loop ---------------------------------------------------------------------
def sigmoid_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, positive: torch.Tensor,
                 logit_scale: torch.Tensor, logit_bias: torch.Tensor) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: every image-text pair of the batch is a binary problem, label +1 where
    ``positive[i, j]`` (image i goes with text j) and -1 elsewhere, logits ``cos * exp(t') + b``; summed
    over texts, averaged over images (SigLIP's normalisation by the batch size)."""
    logits = F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T * logit_scale.exp() + logit_bias
    signs = positive.float() * 2 - 1
    return -F.logsigmoid(signs * logits).sum(-1).mean()


def dense_loss(patch_embeds: torch.Tensor, name_embeds: torch.Tensor, positive: torch.Tensor,
               logit_scale: torch.Tensor, logit_bias: torch.Tensor) -> torch.Tensor:
    """The optional dense term: the same sigmoid loss per patch token, [B, P, D] patch embeddings
    (:func:`patch_embeddings`' projection) against the batch's object names, label +1 where the patch
    touches that object (``positive`` [B, P, names]); averaged over patches."""
    return sigmoid_loss(patch_embeds.flatten(0, 1), name_embeds, positive.flatten(0, 1), logit_scale, logit_bias)


def pretrain_tiny_siglip(recipe: SiglipRecipe = SiglipRecipe(), progress: bool = True):
    """Train tiny-siglip from scratch; returns (model, processor, loss history).

    Both towers, ``logit_scale`` and ``logit_bias`` are trained together (AdamW, cosine schedule with
    warm-up), one sigmoid-loss batch of captions and crops per step (plus, with ``dense_weight``, the dense
    term on the scenes' and ``view_batch`` high-res views' patch tokens). Deterministic per ``seed``.
    """
    model, processor = build_tiny_siglip(recipe.seed)
    data = training_pairs(recipe)
    text_ids = processor.tokenizer(data["texts"], padding="max_length", truncation=True,
                                   return_tensors="pt")["input_ids"]
    dense = recipe.dense_weight > 0
    n_views = recipe.view_batch if dense and "view_images" in data else 0
    model.train()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.steps)
    generator = torch.Generator().manual_seed(recipe.seed + 2)
    history: list[float] = []
    bar = tqdm(range(recipe.steps), desc="tiny-siglip", disable=not progress)
    for step in bar:
        cap = torch.randint(len(data["caption_texts"]), (recipe.caption_batch,), generator=generator)
        crop = torch.randint(len(data["crop_texts"]), (recipe.crop_batch,), generator=generator)
        crops = data["crop_images"][crop]
        if recipe.flip_crops:
            flip = torch.rand(len(crop), generator=generator) < 0.5
            crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(2), crops)
        batch = [data["caption_images"][cap], crops]
        if n_views:
            view = torch.randint(len(data["view_images"]), (n_views,), generator=generator)
            batch.append(data["view_images"][view])
        pairs = torch.cat([data["caption_texts"][cap], data["crop_texts"][crop]])
        texts = pairs
        if dense:
            objects = torch.cat([data["caption_objects"][cap]] + ([data["view_objects"][view]] if n_views else []))
            touched = torch.cat([data["caption_touched"][cap]] + ([data["view_touched"][view]] if n_views else []))
            texts = torch.cat([pairs, objects[objects >= 0]])
        unique = torch.unique(texts)  # each text once: pairs with the same text are all positives
        column = torch.full((len(data["texts"]),), -1)
        column[unique] = torch.arange(len(unique))
        vision = model.vision_model(pixel_values=pixels_from_uint8(torch.cat(batch), processor),
                                    output_hidden_states=dense)
        text_embeds = model.get_text_features(input_ids=text_ids[unique]).pooler_output
        positive = column[pairs][:, None] == torch.arange(len(unique))[None, :]
        loss = sigmoid_loss(vision.pooler_output[:len(pairs)], text_embeds, positive, model.logit_scale,
                            model.logit_bias)
        if dense:
            tokens = vision.hidden_states[FEATURE_LAYER]
            tokens = torch.cat([tokens[:recipe.caption_batch], tokens[len(pairs):]])  # scenes and views
            names = torch.unique(objects[objects >= 0])
            slot = torch.full((len(data["texts"]),), -1)
            slot[names] = torch.arange(len(names))
            target = torch.zeros(len(tokens), tokens.shape[1], len(names), dtype=torch.bool)
            rows, ks = torch.nonzero(objects >= 0, as_tuple=True)
            target[rows, :, slot[objects[rows, ks]]] |= touched[rows, ks]
            loss = loss + recipe.dense_weight * dense_loss(
                _project_patches(model, tokens), text_embeds[column[names]], target, model.logit_scale,
                model.logit_bias)
        history.append(take_step(loss, params, optimizer, schedule))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(history[-20:]) / len(history[-20:]):.3f}")
    model.eval()
    return model, processor, history


# ----- embeddings and the per-patch text similarity ------------------------------------------------------
def text_embeddings(model: SiglipModel, processor: SiglipProcessor, texts: list[str]) -> torch.Tensor:
    """[T, D] L2-normalised SigLIP text embeddings (padded to max length, as in training)."""
    ids = processor(text=texts, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
    return F.normalize(model.get_text_features(input_ids=ids).pooler_output, dim=-1)


def image_embeddings(model: SiglipModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """[N, D] L2-normalised SigLIP image embeddings (the attention-pooling head's output)."""
    return F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)


def patch_embeddings(model: SiglipModel, pixel_values: torch.Tensor, layer: int = FEATURE_LAYER) -> torch.Tensor:
    """[N, grid*grid, D] L2-normalised patch tokens of ``hidden_states[layer]`` projected into the text space.

    SigLIP has no per-patch projection (its text space lies after the attention-pooling head), so each token
    goes through what the head would do to an image made of that token alone: ``post_layernorm``, the
    head's value and output projections (attention over a single key is 1), then the head's residual MLP.
    That is the head's own map, applied per patch (the MaskCLIP construction for a MAP head). Default
    ``hidden_states[-2]``: the tokens LaViDa hands on, which chapter 5 selects from.
    """
    tokens = model.vision_model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[layer]
    return F.normalize(_project_patches(model, tokens), dim=-1)


def _project_patches(model: SiglipModel, tokens: torch.Tensor) -> torch.Tensor:
    """The attention-pooling head applied to each token alone (not normalised)."""
    vision = model.vision_model
    head = vision.head
    width = tokens.shape[-1]
    values = F.linear(vision.post_layernorm(tokens), head.attention.in_proj_weight[2 * width:],
                      head.attention.in_proj_bias[2 * width:])
    pooled = head.attention.out_proj(values)
    return pooled + head.mlp(head.layernorm(pooled))


@torch.no_grad()
def patch_similarity(model: SiglipModel, processor: SiglipProcessor, image, text: str,
                     layer: int = FEATURE_LAYER) -> np.ndarray:
    """Cosine similarity between ``text``'s embedding and every patch (:func:`patch_embeddings`):
    ``[grid, grid]`` for one PIL image, ``[n, grid, grid]`` for a list (e.g. ``encoder_views``' images)."""
    images = image if isinstance(image, (list, tuple)) else [image]
    pixels = processor(images=list(images), return_tensors="pt")["pixel_values"]
    patches = patch_embeddings(model, pixels, layer)
    sims = (patches @ text_embeddings(model, processor, [text])[0]).numpy()
    grid = int(round(math.sqrt(sims.shape[1])))
    sims = sims.reshape(len(images), grid, grid)
    return sims if isinstance(image, (list, tuple)) else sims[0]


def plot_patch_similarity(image, similarity: np.ndarray, text: str | None = None, ax=None, alpha: float = 0.55):
    """Draw a ``[grid, grid]`` similarity map over ``image`` (nearest-neighbour, one cell per patch) with the
    best patch outlined; returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    width, height = image.size
    ax.imshow(image)
    ax.imshow(similarity, cmap="magma", alpha=alpha, extent=(0, width, height, 0), interpolation="nearest")
    row, col = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    cell_w, cell_h = width / similarity.shape[1], height / similarity.shape[0]
    ax.add_patch(Rectangle((col * cell_w, row * cell_h), cell_w, cell_h, fill=False, edgecolor="cyan", linewidth=2))
    if text:
        ax.set_title(text, fontsize=9)
    ax.set_axis_off()
    return ax


# ----- evaluation ------------------------------------------------------------------------------------------
def _patch_coverage(mask: np.ndarray, grid: int = GRID) -> np.ndarray:
    """[grid*grid] fraction of each patch's pixels inside ``mask`` (the canvas divided into grid x grid cells)."""
    h, w = mask.shape
    return mask.reshape(grid, h // grid, grid, w // grid).mean(axis=(1, 3)).ravel()


@torch.no_grad()
def evaluate_siglip(model: SiglipModel, processor: SiglipProcessor, n_scenes: int = 200, seed: int = HELDOUT_SEED,
                    layer: int = FEATURE_LAYER) -> dict:
    """Held-out retrieval and the patch-level check, each next to its chance level.

    - ``i2t_r1`` / ``t2i_r1``: zero-shot recall@1 among the ``n_scenes`` held-out scenes and their captions
      (``retrieval_candidates`` = n_scenes, ``retrieval_chance`` = 1 / n_scenes); a retrieved caption counts
      when its text equals the true one (one-shape scenes can share a caption).
    - ``patch_hit``: for each visible object of the held-out shapes-world scenes (64 px view) and its name
      ("the red triangle"), does the patch most similar to the text (:func:`patch_embeddings`, layer
      ``layer``) touch the object's visible mask? ``patch_chance``: the share of patches that touch it.
      Stricter, ``patch_inside``: the mean fraction of that patch inside the mask; ``patch_inside_chance``:
      the object's share of the image (what a random patch scores).
    - ``highres_hit``: the same over the 320 tokens of ``encoder_views`` (global view + 4 tiles) of
      ``n_scenes // 4`` held-out high-res scenes, for each small target ("the small red square"), a hit when
      the best token touches the target's box; ``highres_chance``: the share of the 320 tokens touching it.
    """
    model.eval()
    scenes = generate_scenes(n_scenes, seed=seed)
    images = [s.render() for s in scenes]
    captions = [s.caption() for s in scenes]
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    image_embeds = image_embeddings(model, pixels)
    caption_embeds = text_embeddings(model, processor, captions)
    sims = image_embeds @ caption_embeds.T
    same = np.array([[a == b for b in captions] for a in captions])
    i2t = same[np.arange(n_scenes), sims.argmax(1).numpy()].mean()
    t2i = same[sims.argmax(0).numpy(), np.arange(n_scenes)].mean()

    names = sorted({f"the {o.name}" for s in scenes for o in s.objects})
    name_embeds = dict(zip(names, text_embeddings(model, processor, names)))
    patches = patch_embeddings(model, pixels, layer)
    hits, chance, inside, area = [], [], [], []
    for scene, tokens in zip(scenes, patches):
        for obj, mask in zip(scene.objects, scene.visible_masks()):
            if not mask.any():
                continue
            coverage = _patch_coverage(mask)
            best = int(torch.argmax(tokens @ name_embeds[f"the {obj.name}"]))
            hits.append(coverage[best] > 0)
            chance.append((coverage > 0).mean())
            inside.append(coverage[best])
            area.append(coverage.mean())

    hr_hits, hr_chance = [], []
    for scene in generate_highres_scenes(max(n_scenes // 4, 1), seed=seed):
        views = encoder_views(scene, IMAGE_SIZE, PATCH)
        view_pixels = processor(images=[v.image for v in views], return_tensors="pt")["pixel_values"]
        tokens = patch_embeddings(model, view_pixels, layer).flatten(0, 1)  # [5 * 64, D], views in order
        queries = text_embeddings(model, processor, [f"the {scene.target_name(t)}" for t in scene.targets])
        for i, query in enumerate(queries):
            touched = np.zeros(len(tokens), bool)
            for v, view in enumerate(views):
                touched[[v * GRID * GRID + p for p in view.patches[i]]] = True
            hr_hits.append(touched[int(torch.argmax(tokens @ query))])
            hr_chance.append(touched.mean())
    r = lambda v: round(float(np.mean(v)), 4)  # noqa: E731
    return {"i2t_r1": r(i2t), "t2i_r1": r(t2i), "retrieval_chance": round(1 / n_scenes, 4),
            "retrieval_candidates": n_scenes, "patch_hit": r(hits), "patch_chance": r(chance), "patch_n": len(hits),
            "patch_inside": r(inside), "patch_inside_chance": r(area),
            "highres_hit": r(hr_hits), "highres_chance": r(hr_chance), "highres_n": len(hr_hits)}
