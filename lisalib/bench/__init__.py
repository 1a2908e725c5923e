"""FLOP counting and wall timing (chapter 2's vision benchmark; shared by chapters 5 and 6)."""
from lisalib.bench.vision import *  # noqa: F401,F403
