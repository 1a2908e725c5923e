"""Chapter 1: exact parameter counts, trainable counts per training mode, 4-bit storage and memory."""
from lisalib.accounting.core import *  # noqa: F401,F403
from lisalib.accounting.core import GiB, FOOTPRINT_TARGETS  # noqa: F401
