"""Chapter 6's pictures: the two architectures, the loss curves, captions next to their references."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

COLOURS = {"frozen": "#b8c4d6", "trained": "#8cc084", "io": "#eeeeee", "lora": "#f4a259"}


def _box(ax, x, y, text, kind, width=1.9):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - 0.32), width, 0.64, boxstyle="round,pad=0.05",
                                facecolor=COLOURS[kind], edgecolor="black", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, a, b, label=""):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", lw=1))
    if label:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, label, ha="center", fontsize=7, color="#444")


def draw_architectures(prefix_tokens: int, pooled_tokens: int, d_vision: int, d_text: int, names: dict):
    """Prefix conditioning (top) and cross-attention (bottom), with the token counts on the arrows."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.2))
    ax = axes[0]
    _box(ax, 0.9, 1, "image", "io", 1.2)
    _box(ax, 3.0, 1, f"{names['vision']}\n(frozen)", "frozen", 2.2)
    _box(ax, 5.5, 1, "pixel shuffle 2x2\n(pooled only)", "io", 1.8)
    _box(ax, 7.6, 1, "Linear\nprojection", "trained", 1.5)
    _box(ax, 10.0, 1, f"{names['lm']}\n+ LoRA (q,k,v,o)", "lora", 2.4)
    _box(ax, 12.4, 1, "caption", "io", 1.2)
    _arrow(ax, (1.5, 1), (1.9, 1))
    _arrow(ax, (4.1, 1), (4.6, 1), f"{prefix_tokens} x {d_vision}")
    _arrow(ax, (6.4, 1), (6.85, 1), f"{pooled_tokens} x {4 * d_vision}")
    _arrow(ax, (8.35, 1), (8.8, 1), f"prefix x {d_text}")
    _arrow(ax, (11.2, 1), (11.8, 1))
    ax.set_title("prefix conditioning: image tokens are the first tokens of the LM's own sequence", fontsize=9)
    ax = axes[1]
    _box(ax, 0.9, 1, "image", "io", 1.2)
    _box(ax, 3.0, 1, f"{names['vision']}\n(frozen or trained)", "frozen", 2.2)
    _box(ax, 7.0, 1, f"{names['ved_lm']} decoder\n+ new cross-attention per block", "trained", 3.4)
    _box(ax, 12.4, 1, "caption", "io", 1.2)
    _arrow(ax, (1.5, 1), (1.9, 1))
    _arrow(ax, (4.1, 1), (5.3, 1), f"{prefix_tokens} x {d_vision} (keys, values)")
    _arrow(ax, (8.7, 1), (11.8, 1))
    ax.set_title("cross-attention (VisionEncoderDecoderModel): text tokens attend to the image in every block",
                 fontsize=9)
    for ax in axes:
        ax.set_xlim(0, 13.2)
        ax.set_ylim(0.4, 1.6)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_losses(records: dict, window: int = 25, ax=None):
    """Training loss (moving average over ``window`` steps) of every variant on one plot."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for name, losses in records.items():
        values = np.asarray(losses, dtype=float)
        if len(values) >= window:
            values = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(values)) + (window - 1 if len(losses) >= window else 0), values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("caption loss (nats / token)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def show_captions(images, references: list[str], captions: dict, columns: int = 3):
    """Held-out images with their first reference and each variant's caption."""
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows))
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k])
        lines = [f"ref: {references[k]}"] + [f"{name}: {caps[k]}" for name, caps in captions.items()]
        ax.set_title("\n".join(_wrap(line) for line in lines), fontsize=6.5, loc="left")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 62) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = "  " + w
        else:
            line = f"{line} {w}".strip() if line else w
    return "\n".join(lines + [line])


__all__ = ["draw_architectures", "plot_losses", "show_captions"]
