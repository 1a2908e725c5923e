"""``python -m lisalib.accounting``: parameter counts and bytes of a preset."""
import sys

from lisalib.accounting.core import main

sys.exit(main())
