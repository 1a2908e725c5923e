"""What the notebooks show and how they are run: plots, mask widgets, flow diagrams, the figures summary,
and the main job that executes the whole sequence (``python -m lisalib.notebook``)."""
