"""Machinery shared by every chapter that trains: the accelerate loop, trainable-only checkpoints,
trainable groups and their peft configs, optimizer steps."""
