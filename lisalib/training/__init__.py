"""Machinery shared by every chapter that trains: the accelerate loop (``loop``), trainable-only
checkpoints (``checkpoints``), the loop's arguments (``arguments``), trainable groups and their peft configs
(``recipes``), and the plain optimizer step (``steps``)."""
