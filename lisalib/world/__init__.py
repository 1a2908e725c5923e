"""The shapes world: seeded scenes of coloured shapes with exact polygons (:mod:`.scenes`), and the language
about them (:mod:`.language`: captions, questions and answers, referring expressions, reasoning queries,
the vocabulary)."""
from lisalib.world.language import (
    CAPTION_QUESTION,
    NUMBER_WORDS,
    caption,
    position_words,
    questions,
    reasoning_queries,
    referring_expressions,
    split_words,
    vocabulary,
)
from lisalib.world.scenes import (
    COLOURS,
    SHAPE_KINDS,
    Scene,
    SceneConfig,
    ShapeKind,
    ShapeObject,
    generate_scene,
    generate_scenes,
    shape_polygon,
)

__all__ = [
    "CAPTION_QUESTION",
    "COLOURS",
    "NUMBER_WORDS",
    "SHAPE_KINDS",
    "Scene",
    "SceneConfig",
    "ShapeKind",
    "ShapeObject",
    "caption",
    "generate_scene",
    "generate_scenes",
    "position_words",
    "questions",
    "reasoning_queries",
    "referring_expressions",
    "shape_polygon",
    "split_words",
    "vocabulary",
]
