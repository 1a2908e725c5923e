"""Pretraining recipes of the tiny zoo: ``vlm`` (tiny-llava) and ``sam`` (tiny-sam) on the shapes world."""
