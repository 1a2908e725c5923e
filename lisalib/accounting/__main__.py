"""``python -m lisalib.accounting``: parameter counts and bytes of a preset."""
import sys

from lisalib.accounting.cli import main

sys.exit(main())
