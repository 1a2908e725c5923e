"""``python -m lisalib.notebook``: the main job (every notebook, headless, plus the figures summary)."""
import sys

from lisalib.notebook.main_job import main

sys.exit(main())
