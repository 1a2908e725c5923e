"""Chapter 5's pictures: the views with their token grids, a selection drawn on them, curves against K."""
from __future__ import annotations

import numpy as np

SELECTOR_COLOURS = {"pooled": "tab:gray", "uniform": "tab:blue", "random": "tab:orange", "saliency": "tab:green",
                    "text": "tab:red"}


def draw_views(views, mask: np.ndarray | None = None, target: np.ndarray | None = None, axes=None,
               title: str | None = None, patch_size: int = 8):
    """One row of panels, global view then tiles: unkept tokens dimmed, target tokens outlined in cyan.

    ``mask`` / ``target``: [n_views, tokens] bool (None: everything kept / nothing outlined).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if axes is None:
        _, axes = plt.subplots(1, len(views), figsize=(2.0 * len(views), 2.3))
    for v, (ax, view) in enumerate(zip(axes, views)):
        image = np.asarray(view.image, dtype=np.float32) / 255
        grid = image.shape[0] // patch_size
        if mask is not None:
            keep = np.zeros(image.shape[:2])  # pixels past the grid (so400m: the last 6 px) are never a token
            keep[:grid * patch_size, :grid * patch_size] = np.kron(mask[v].reshape(grid, grid),
                                                                   np.ones((patch_size, patch_size)))
            image = image * (0.25 + 0.75 * keep[..., None])
        ax.imshow(image, interpolation="nearest")
        for line in range(1, grid):
            ax.axhline(line * patch_size - 0.5, color="white", lw=0.3, alpha=0.5)
            ax.axvline(line * patch_size - 0.5, color="white", lw=0.3, alpha=0.5)
        if target is not None:
            for index in np.flatnonzero(target[v]):
                r, c = divmod(int(index), grid)
                ax.add_patch(Rectangle((c * patch_size - 0.5, r * patch_size - 0.5), patch_size, patch_size,
                                       fill=False, edgecolor="cyan", lw=1.2))
        name = "global" if view.kind == "global" else f"tile ({view.row}, {view.col})"
        if mask is not None:
            name += f": {int(mask[v].sum())} kept"
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    if title:
        axes[0].figure.suptitle(title, fontsize=9)
    return axes


def plot_against_budget(curves: dict, budgets, ylabel: str, ax=None, reference: float | None = None,
                        pooled_budget: int | None = None):
    """``curves``: selector -> values per budget; a vertical line at pooling's budget."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    for name, values in curves.items():
        ax.plot(budgets, values, marker="o", label=name, color=SELECTOR_COLOURS.get(name))
    if pooled_budget is not None:
        ax.axvline(pooled_budget, color="gray", ls=":", lw=1)
    if reference is not None:
        ax.axhline(reference, color="black", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(list(budgets))
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("tokens kept (K)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax
