"""``python -m lisalib.train``: chapter 3's training command (:mod:`lisalib.lisa.train`), under a short name."""
import sys

from lisalib.lisa.train import main

if __name__ == "__main__":
    sys.exit(main())
