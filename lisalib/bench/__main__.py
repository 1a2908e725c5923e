"""``python -m lisalib.bench``: the vision benchmark."""
import sys

from lisalib.bench.vision import main

sys.exit(main())
