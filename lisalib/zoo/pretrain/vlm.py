"""Pretraining of ``tiny-llava``: a real LLaVA that learns to caption and answer questions about shapes.

Later chapters freeze this model and train only small projections around it, which is only a fair
miniature of LISA if the frozen VLM already understands its images. So the zoo builds it from scratch
here (vision tower, projector and language model all trainable) on shapes-world captions and
question/answer pairs, and measures held-out accuracy by exact match of greedy answers.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import (CLIPImageProcessorPil, LlavaForConditionalGeneration, LlavaProcessor,
                          get_cosine_schedule_with_warmup)

from lisalib.constants import FOLLOW_UP_PROMPT, IMAGE_TOKEN, LABEL_IGNORE_INDEX, chat_prompt
from lisalib.zoo.inference import answer_questions
from lisalib.world import CAPTION_QUESTION, COLOURS, SHAPE_KINDS, Scene, generate_scenes, vocabulary
from lisalib.training.steps import take_step
from lisalib.zoo.configs import TINY_IMAGE_SIZE, TINY_VLM_PATCH, tiny_llava_config
from lisalib.zoo.tokenizer import LOCATION_TOKENS, add_grounding_tokens, build_word_tokenizer

TRAIN_SEED = 1000  # scenes (1000, i) train the model ...
HELDOUT_SEED = 2000  # ... scenes (2000, i) are never seen in training
QA_TYPES = ("colour", "shape", "count", "position", "exists")
COLOUR_CLASSES = list(COLOURS)
KIND_CLASSES = list(SHAPE_KINDS)


@dataclass
class VlmRecipe:
    """Everything that determines the built checkpoint (with the code itself).

    Stage 1 teaches the vision tower to see (dense patch labels: colour, shape kind and position of the
    covering object, plus each object's kind from its pooled patches); stage 2 is LLaVA-style
    instruction tuning of the projector and language model on multi-turn conversations (each turn
    isolated from the others, see ``collate_conversations``), with every ``grounding_every``-th step a
    batch of single-turn position questions if asked for. What each default bought, measured, is in
    docs/results.md.
    """

    train_scenes: int = 4000
    position_std: float | None = 2.0  # re-draw the tower's position embeddings at this std (see build_tiny_llava)
    vision_steps: int = 3000
    vision_batch_size: int = 48
    vision_lr: float = 2e-3
    kind_weight: float = 2.0  # shape kind is the hardest fact to see from 16 px patches: weigh it up
    augment: bool = True  # random flips/transposes of the scene (labels follow) in stage 1
    steps: int = 2000
    batch_size: int = 12  # conversations (one scene each) per step
    max_turns: int = 16  # question/answer turns per conversation, as in LLaVA's multi-turn data
    reason_turns: int = 3  # at most this many reasoning queries per conversation (they outnumber QA pairs)
    lr: float = 1e-3
    isolated_turns: bool = True  # each answer sees the image and its own question only (see collate_conversations)
    grounding_every: int = 0  # every N-th step is a batch of single-turn "where is ...?" questions (0: none)
    grounding_batch_size: int = 32  # single-turn questions per grounding step (short sequences: cheap)
    train_projector: bool = True  # stage 2 trains the projector with the LM (LLaVA-1.5); False keeps stage 1's
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    # stage 3 (lisalib.zoo.pretrain.grounding): the stage-2 mixture plus referring-box turns
    rec_steps: int = 3000  # 0: no stage 3
    rec_turns: int = 6  # at most this many box turns per conversation (they outnumber the QA turns)
    rec_lr: float = 1e-3
    rec_train_tower: bool = True  # also train the tower (LLaVA-1.5 keeps CLIP frozen; box IoU 0.5: 0.68 vs 0.58)


def build_tiny_llava(seed: int = 0, position_std: float | None = None
                     ) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A randomly initialised tiny LLaVA with its word-level tokenizer and LlavaProcessor.

    ``position_std`` re-draws the vision tower's position embeddings at that scale. CLIP's default
    (std 0.02) is about 1/50 of a patch embedding (std 0.9), fine for hundreds of thousands of steps
    but not for this budget: the image tokens then carry almost no position (docs/results.md).
    """
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(vocabulary())
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = tiny_llava_config(len(tokenizer), image_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id,
                               tokenizer.eos_token_id)
    model = LlavaForConditionalGeneration(config)
    if position_std is not None:
        with torch.no_grad():
            model.model.vision_tower.embeddings.position_embedding.weight.normal_(0.0, position_std)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=TINY_VLM_PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, dropped by the "default" strategy
    )
    return model, processor


def scene_texts(scene: Scene) -> list[tuple[str, str, str]]:
    """(type, question, answer) triples for one scene: its QA pairs, its reasoning queries answered with
    the target's name (so the frozen VLM of later chapters already resolves them), and the caption."""
    triples = [(qa["type"], qa["question"], qa["answer"]) for qa in scene.questions()]
    triples += [("reason", q["text"], scene.objects[q["target"]].name) for q in scene.reasoning_queries()]
    triples.append(("caption", CAPTION_QUESTION, scene.caption()))
    return triples


def encode_images(processor: LlavaProcessor, scenes: list[Scene], chunk: int = 256) -> torch.Tensor:
    """Pixel values of every scene, computed once with the model's own image processor."""
    batches = []
    for start in range(0, len(scenes), chunk):
        images = [s.render() for s in scenes[start:start + chunk]]
        batches.append(processor.image_processor(images, return_tensors="pt")["pixel_values"])
    return torch.cat(batches)


def collate_conversations(processor: LlavaProcessor, conversations: list[list[tuple[str, str]]],
                          isolated: bool = False) -> dict:
    """Right-padded multi-turn sequences with labels on the answers and their ``</s>`` only.

    LLaVA-1.5's format: ``USER: <image>\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>...``. The first
    turn is exactly the single-question prompt used at inference. Segments are tokenized separately
    (the word-level tokenizer splits the same way either way) so each answer's span is known.

    ``isolated`` packs the turns instead: ``<s>USER: <image>\n`` once, then ``q ASSISTANT: a</s>`` per
    turn, where each turn attends to that image prefix and to itself only, with position ids restarting
    after the prefix. Every turn is then computed exactly as the single-question prompt at inference,
    at the cost of one sequence. Why: in a real conversation the shapes world's turns give each other
    away (the caption names every shape and its colour; "where is the red star?" tells "what color is
    the star?"), so the LM learns to copy from earlier turns rather than to read the image. The
    batch then carries ``position_ids`` and a boolean ``[batch, 1, length, length]`` attention mask.
    """
    tokenizer = processor.tokenizer
    image_tokens = _image_tokens(processor)
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    rows, label_rows, position_rows, segment_rows = [], [], [], []
    for turns in conversations:
        ids, labels, segments = [tokenizer.bos_token_id], [LABEL_IGNORE_INDEX], [0]  # segment 0: what every turn may see
        for t, (question, answer) in enumerate(turns):
            prompt = chat_prompt(question).replace(processor.image_token, image_tokens) if t == 0 or isolated \
                else FOLLOW_UP_PROMPT.format(question=question)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if isolated:  # "USER: <image>...<image>" is written once, by the first turn
                prefix = max(i for i, token in enumerate(prompt_ids) if token == image_token_id) + 1
                if t == 0:
                    ids += prompt_ids[:prefix]
                    labels += [LABEL_IGNORE_INDEX] * prefix
                    segments += [0] * prefix
                prompt_ids = prompt_ids[prefix:]
            answer_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids += prompt_ids + answer_ids
            labels += [LABEL_IGNORE_INDEX] * len(prompt_ids) + answer_ids
            segments += [t + 1] * (len(prompt_ids) + len(answer_ids))
        shared = segments.count(0)
        turn_start = {t: segments.index(t) for t in set(segments)}
        rows.append(ids)
        label_rows.append(labels)
        segment_rows.append(segments)
        position_rows.append([k if seg == 0 else shared + k - turn_start[seg] for k, seg in enumerate(segments)])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    label_ids = torch.full((len(rows), width), LABEL_IGNORE_INDEX)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labels) in enumerate(zip(rows, label_rows)):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        label_ids[i, :len(labels)] = torch.tensor(labels)
        attention[i, :len(ids)] = 1
    if not isolated:
        return {"input_ids": input_ids, "attention_mask": attention, "labels": label_ids}
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segment_ids = torch.full((len(rows), width), -1)
    for i, (positions, segments) in enumerate(zip(position_rows, segment_rows)):
        position_ids[i, :len(positions)] = torch.tensor(positions)
        segment_ids[i, :len(segments)] = torch.tensor(segments)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_turn = segment_ids[:, :, None] == segment_ids[:, None, :]
    sees_prefix = (segment_ids[:, None, :] == 0) & (segment_ids[:, :, None] >= 0)
    mask = causal & (same_turn | sees_prefix)  # padding (segment -1) attends to padding: no empty rows
    return {"input_ids": input_ids, "attention_mask": mask[:, None], "position_ids": position_ids,
            "labels": label_ids}


def _image_tokens(processor: LlavaProcessor) -> str:
    """``<image>`` repeated as often as LlavaProcessor expands it (patches, CLS dropped)."""
    patches = (TINY_IMAGE_SIZE // processor.patch_size) ** 2
    return processor.image_token * (patches + processor.num_additional_image_tokens - 1)


def patch_labels(scene: Scene, grid: int, min_cover: float = 0.15) -> torch.Tensor:
    """[4, grid * grid] labels per patch of a ``grid`` x ``grid`` split, from the object covering most of
    it: colour class, kind class, and the column and row third (1-3) its centre lies in (the facts
    position answers are made of). Class 0 where no object covers at least ``min_cover`` of the patch."""
    visible = scene.visible_masks()
    cell = scene.width // grid
    labels = torch.zeros(4, grid * grid, dtype=torch.long)
    if len(visible) == 0:
        return labels
    cover = visible.reshape(len(visible), grid, cell, grid, cell).mean(axis=(2, 4)).reshape(len(visible), -1)
    best = cover.argmax(axis=0)
    for patch, k in enumerate(best):
        if cover[k, patch] >= min_cover:
            obj = scene.objects[k]
            labels[0, patch] = COLOUR_CLASSES.index(obj.colour) + 1
            labels[1, patch] = KIND_CLASSES.index(obj.kind) + 1
            labels[2, patch] = min(int(obj.center[0] / scene.width * 3), 2) + 1
            labels[3, patch] = min(int(obj.center[1] / scene.height * 3), 2) + 1
    return labels


def object_pooling(scene: Scene, grid: int, max_objects: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """([max_objects, grid * grid] weights that average each object's patches by visible coverage,
    [max_objects] kind classes, -100 for absent objects)."""
    visible = scene.visible_masks()
    cell = scene.width // grid
    weights = torch.zeros(max_objects, grid * grid)
    kinds = torch.full((max_objects,), LABEL_IGNORE_INDEX, dtype=torch.long)
    if len(visible):
        cover = visible.reshape(len(visible), grid, cell, grid, cell).mean(axis=(2, 4)).reshape(len(visible), -1)
        cover = torch.tensor(cover, dtype=torch.float)
        weights[:len(visible)] = cover / cover.sum(1, keepdim=True).clamp_min(1e-6)
        kinds[:len(visible)] = torch.tensor([KIND_CLASSES.index(o.kind) for o in scene.objects])
    return weights, kinds


def _dihedral(generator: torch.Generator, pixels: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
              grid: int):
    """One random transpose/flip of a batch of scenes, applied to pixels, patch labels and pooling
    weights alike (a flip also mirrors the column/row thirds). Scenes are drawn symmetrically, so this
    is free extra data for the tower."""
    transpose, flip_x, flip_y = torch.randint(2, (3,), generator=generator).tolist()
    labels = labels.reshape(-1, 4, grid, grid).clone()
    weights = weights.reshape(len(weights), -1, grid, grid)
    if transpose:
        pixels, labels, weights = pixels.transpose(2, 3), labels.transpose(2, 3)[:, [0, 1, 3, 2]], weights.transpose(2, 3)
    if flip_x:
        pixels, labels, weights = pixels.flip(3), labels.flip(3), weights.flip(3)
        labels[:, 2] = torch.where(labels[:, 2] > 0, 4 - labels[:, 2], 0)
    if flip_y:
        pixels, labels, weights = pixels.flip(2), labels.flip(2), weights.flip(2)
        labels[:, 3] = torch.where(labels[:, 3] > 0, 4 - labels[:, 3], 0)
    return (pixels.contiguous(), labels.reshape(-1, 4, grid * grid),
            weights.reshape(len(weights), -1, grid * grid))


def pretrain_vision_tower(model: LlavaForConditionalGeneration, scenes: list[Scene], pixel_values: torch.Tensor,
                          recipe: VlmRecipe, progress: bool = True) -> list[float]:
    """Stage 1: dense supervision of the image tokens LLaVA's language model reads (the projector's
    output on the tower's ``vision_feature_layer``).

    Supervising the projector too (as LLaVA's stage 1 aligns its projector) means stage 2 starts from
    image tokens in which the facts are already readable (heads on the tower alone did worse:
    docs/results.md).

    Linear heads predict each patch's colour, shape kind and position (column and row third of the
    covering object's centre), each object's kind from its coverage-weighted mean patch feature, and
    the scene's object count; the heads are thrown away afterwards. This is what a pretrained CLIP
    brings to LLaVA: features in which the visual facts are linearly readable, so instruction tuning
    only has to learn where to look.
    """
    tower = model.model.vision_tower
    projector = model.model.multi_modal_projector
    width = model.config.text_config.hidden_size  # the heads read the projected image tokens
    grid = TINY_IMAGE_SIZE // TINY_VLM_PATCH
    heads = torch.nn.ModuleDict({"colour": torch.nn.Linear(width, len(COLOUR_CLASSES) + 1),
                                 "kind": torch.nn.Linear(width, len(KIND_CLASSES) + 1),
                                 "count": torch.nn.Linear(width, 7),
                                 "column": torch.nn.Linear(width, 4),
                                 "row": torch.nn.Linear(width, 4),
                                 "object_kind": torch.nn.Linear(width, len(KIND_CLASSES))})
    pooling = [object_pooling(s, grid) for s in scenes]
    pool_weights = torch.stack([w for w, _ in pooling])
    object_kinds = torch.stack([k for _, k in pooling])
    labels = torch.stack([patch_labels(s, grid) for s in scenes])
    counts = torch.tensor([len(s.objects) for s in scenes])
    params = list(tower.parameters()) + list(projector.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe.vision_lr, weight_decay=recipe.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.vision_steps)
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    layer = model.config.vision_feature_layer
    ce = torch.nn.functional.cross_entropy
    history = []
    bar = tqdm(range(recipe.vision_steps), desc="tiny-llava vision tower", disable=not progress)
    for step in bar:
        idx = torch.randint(len(scenes), (recipe.vision_batch_size,), generator=generator)
        pixels, patch, weights = pixel_values[idx], labels[idx], pool_weights[idx]
        if recipe.augment:
            pixels, patch, weights = _dihedral(generator, pixels, patch, weights, grid)
        patches = tower(pixels, output_hidden_states=True).hidden_states[layer][:, 1:]  # drop CLS
        features = projector(patches)  # what the LM will read
        pooled = weights @ features  # [batch, objects, width]: each object's mean patch feature
        loss = ce(heads["count"](features.mean(1)), counts[idx])
        loss = loss + recipe.kind_weight * ce(heads["object_kind"](pooled).flatten(0, 1), object_kinds[idx].flatten())
        loss = loss + ce(heads["colour"](features).flatten(0, 1), patch[:, 0].flatten())
        loss = loss + recipe.kind_weight * ce(heads["kind"](features).flatten(0, 1), patch[:, 1].flatten())
        loss = loss + ce(heads["column"](features).flatten(0, 1), patch[:, 2].flatten())
        loss = loss + ce(heads["row"](features).flatten(0, 1), patch[:, 3].flatten())
        history.append(take_step(loss, params, optimizer, schedule))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(history[-20:]) / len(history[-20:]):.3f}")
    return history


@torch.no_grad()
def vision_features(model: LlavaForConditionalGeneration, pixel_values: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The patch features LLaVA feeds its projector (``vision_feature_layer``, CLS dropped), for a frozen tower."""
    tower = model.model.vision_tower
    layer = model.config.vision_feature_layer
    return torch.cat([tower(pixel_values[i:i + chunk], output_hidden_states=True).hidden_states[layer][:, 1:]
                      for i in range(0, len(pixel_values), chunk)])


def embed_with_image_features(model: LlavaForConditionalGeneration, input_ids: torch.Tensor,
                              features: torch.Tensor) -> torch.Tensor:
    """Token embeddings with the projected image features written over the ``<image>`` positions.

    The same merge LlavaModel performs from ``pixel_values``; done here so stage 2 reuses the frozen
    tower's features instead of re-running the tower every step.
    """
    embeds = model.get_input_embeddings()(input_ids)
    image_embeds = model.model.multi_modal_projector(features).to(embeds.dtype)
    mask = (input_ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    return embeds.masked_scatter(mask, image_embeds)


def pretrain_vlm(recipe: VlmRecipe = VlmRecipe(), progress: bool = True, start_from: str | None = None):
    """Train tiny-llava from scratch; returns (model, processor, loss history of the last stage).

    Stage 1 trains the vision tower and the projector on dense patch labels. Stage 2 freezes the tower,
    as LLaVA freezes CLIP, and trains the projector (unless ``train_projector`` is off) and the language
    model on multi-turn conversations about each scene (captions, questions and reasoning queries),
    packed as isolated turns unless ``isolated_turns`` is off, with single-turn grounding batches if
    ``grounding_every``. Stage 3 (``rec_steps``) adds the location tokens and continues with the same
    conversations plus referring-box turns (:mod:`lisalib.zoo.pretrain.grounding`). ``start_from`` (a
    built checkpoint: zoo name or directory) skips stages 1 and 2 and starts stage 3 from its weights.
    """
    random.seed(recipe.seed)
    if start_from is None:
        model, processor = build_tiny_llava(recipe.seed, recipe.position_std)
    else:
        from lisalib.zoo import load_vlm

        model, processor = load_vlm(start_from, dtype=torch.float32)
    scenes = generate_scenes(recipe.train_scenes, seed=TRAIN_SEED)
    pixel_values = encode_images(processor, scenes)
    texts = [scene_texts(s) for s in scenes]
    model.train()
    history: list[float] = []
    if start_from is None:
        if recipe.vision_steps:
            pretrain_vision_tower(model, scenes, pixel_values, recipe, progress)
        model.model.vision_tower.requires_grad_(False)
        model.model.multi_modal_projector.requires_grad_(recipe.train_projector)
        history = instruction_tune(model, processor, texts, pixel_values, recipe, recipe.steps, recipe.lr,
                                   seed=recipe.seed, desc="tiny-llava", progress=progress)
    if recipe.rec_steps:
        from lisalib.zoo.pretrain.grounding import grounding_texts

        _add_location_rows(model, processor)
        model.model.vision_tower.requires_grad_(recipe.rec_train_tower)
        model.model.multi_modal_projector.requires_grad_(recipe.train_projector)
        texts = [t + grounding_texts(s) for t, s in zip(texts, scenes)]
        history = instruction_tune(model, processor, texts, pixel_values, recipe, recipe.rec_steps, recipe.rec_lr,
                                   seed=recipe.seed + 3, desc="tiny-llava grounding", progress=progress,
                                   train_tower=recipe.rec_train_tower, grounding=False)
    model.requires_grad_(True)
    model.eval()
    return model, processor, history


def _add_location_rows(model: LlavaForConditionalGeneration, processor: LlavaProcessor) -> None:
    """The grounding words and location tokens in the tokenizer, their rows in the embeddings and
    ``lm_head`` (started at the old rows' mean, as ``<SEG>`` is in chapter 3)."""
    if add_grounding_tokens(processor.tokenizer):
        model.resize_token_embeddings(len(processor.tokenizer), mean_resizing=True)


def instruction_tune(model: LlavaForConditionalGeneration, processor: LlavaProcessor,
                     texts: list[list[tuple[str, str, str]]], pixel_values: torch.Tensor, recipe: VlmRecipe,
                     steps: int, lr: float, seed: int, desc: str, progress: bool = True, train_tower: bool = False,
                     grounding: bool = True) -> list[float]:
    """Stages 2 and 3: isolated-turn conversations (one scene each) with cross-entropy on the answers.

    A frozen tower's features are computed once; ``train_tower`` re-runs it every step instead.
    """
    tower = model.model.vision_tower
    tower.train(train_tower)
    features = None if train_tower else vision_features(model, pixel_values)
    generator = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=recipe.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, steps)
    history = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    grounding_data = [grounding_turns(scene) for scene in texts]
    grounded = [i for i, turns in enumerate(grounding_data) if turns]
    layer = model.config.vision_feature_layer
    for step in bar:
        if grounding and recipe.grounding_every and step % recipe.grounding_every == recipe.grounding_every - 1:
            chosen = [grounded[k] for k in torch.randint(len(grounded), (recipe.grounding_batch_size,),
                                                             generator=generator).tolist()]
            conversations = [[grounding_data[i][int(torch.randint(len(grounding_data[i]), (1,), generator=generator))]]
                             for i in chosen]
        else:
            chosen = torch.randint(len(texts), (recipe.batch_size,), generator=generator).tolist()
            conversations = [_pick_turns(texts[i], recipe, generator) for i in chosen]
        batch = collate_conversations(processor, conversations, isolated=recipe.isolated_turns)
        if features is None:
            step_features = tower(pixel_values[chosen], output_hidden_states=True).hidden_states[layer][:, 1:]
        else:
            step_features = features[chosen]
        embeds = embed_with_image_features(model, batch["input_ids"], step_features)
        loss = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                     position_ids=batch.get("position_ids"), labels=batch["labels"]).loss
        history.append(take_step(loss, trainable, optimizer, schedule))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(history[-20:]) / len(history[-20:]):.3f}")
    tower.eval()
    return history


def grounding_turns(triples: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """A scene's "where is the <name>?" questions, the single-turn grounding data of stage 2.

    Batches of their own (``grounding_every``), as LLaVA-1.5 mixes region-level data into instruction
    tuning, are off by default: ``isolated_turns`` teaches position better without them and they broke
    yes/no answers (docs/results.md).
    """
    return [(question, answer) for kind, question, answer in triples if kind == "position"]


def _pick_turns(triples: list[tuple[str, str, str]], recipe: VlmRecipe, generator: torch.Generator):
    """A random order of a scene's turns, keeping at most ``reason_turns`` reasoning queries, cut to
    ``max_turns``."""
    order = torch.randperm(len(triples), generator=generator).tolist()
    reason = [k for k in order if triples[k][0] == "reason"][:recipe.reason_turns]
    boxes = [k for k in order if triples[k][0].startswith("box")][:recipe.rec_turns]
    order = [k for k in order if (triples[k][0] != "reason" or k in reason)
             and (not triples[k][0].startswith("box") or k in boxes)]
    return [(triples[k][1], triples[k][2]) for k in order[:recipe.max_turns + len(boxes)]]


def heldout_questions(n_scenes: int, seed: int = HELDOUT_SEED) -> list[dict]:
    """Held-out items, never seen in training: per scene one question of each available type (``exists``
    twice: the present shape, answered "yes", and an absent one, "no"), plus one reasoning query (type
    ``reason``, answered with the target's name)."""
    items = []
    for scene in generate_scenes(n_scenes, seed=seed):
        seen = set()
        for qa in scene.questions():
            key = (qa["type"], qa["answer"]) if qa["type"] == "exists" else qa["type"]
            if key not in seen:
                seen.add(key)
                items.append({"scene": scene, **qa})
        reasoning = scene.reasoning_queries()
        if reasoning:
            q = reasoning[len(items) % len(reasoning)]
            items.append({"scene": scene, "type": "reason", "question": q["text"],
                          "answer": scene.objects[q["target"]].name, "target": q["target"]})
    return items


def evaluate_vlm(model, processor, n_scenes: int = 100, seed: int = HELDOUT_SEED) -> dict:
    """Exact-match accuracy of greedy answers on held-out scenes: per type, ``qa`` (colour, shape, count,
    position, exists: the zoo's bar) and ``all`` (reasoning queries included); with location tokens in the
    tokenizer also referring-box accuracy (``rec``: IoU >= 0.5, :mod:`lisalib.zoo.pretrain.grounding`)."""
    items = heldout_questions(n_scenes, seed)
    predictions = answer_questions(model, processor, [it["scene"].render() for it in items],
                                   [it["question"] for it in items])
    correct = defaultdict(list)
    for item, prediction in zip(items, predictions):
        ok = prediction == item["answer"]
        correct[item["type"]].append(ok)
        correct["all"].append(ok)
        if item["type"] in QA_TYPES:
            correct["qa"].append(ok)
    metrics = {k: round(sum(v) / len(v), 4) for k, v in sorted(correct.items())} | {"n": len(items)}
    if LOCATION_TOKENS[0] in processor.tokenizer.get_vocab():
        from lisalib.zoo.pretrain.grounding import evaluate_grounding

        metrics |= evaluate_grounding(model, processor, n_scenes, seed)
    return metrics
