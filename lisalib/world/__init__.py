"""The shapes world: seeded scenes of coloured shapes with exact polygons, and the language about them
(captions, questions and answers, referring expressions, reasoning queries, the vocabulary)."""
