"""Data-flow diagrams of the three vision sources, drawn with matplotlib from a model's config.

A picture of which encoder feeds which head is the quickest way to see why "dual" runs two vision
passes and the single-pass designs one; the tensor shapes on the arrows come from the config, so the
same function draws the tiny models and the real ones.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from lisalib.lisa.configuration import LisaConfig

BOX_COLOURS = {"encoder": "#f4a259", "bridge": "#8cc084", "pretrained": "#b8c4d6", "io": "#eeeeee"}
TITLES = {"dual": "dual (original LISA): 2 vision passes",
          "vlm": "vlm (Modified LISA): 1 pass, CLIP feeds SAM",
          "sam": "sam (Modified LISA): 1 pass, SAM feeds the LLM"}


def _graph(config: LisaConfig, source: str) -> tuple[dict, list]:
    g, s, c = config.vlm_grid, config.sam_grid, config.sam_channels
    d_vis = config.vlm_config.vision_config.hidden_size
    d_llm = config.vlm_config.text_config.hidden_size
    seg = "h[<SEG>-1]" if config.seg_hidden_state == "preceding" else "h[<SEG>]"
    nodes = {
        "image": (0.6, 2.0, "image", "io"),
        "llm": (6.9, 3.2, "LLM", "pretrained"),
        "seg": (9.3, 3.2, config.seg_projection, "bridge"),
        "decoder": (9.3, 0.8, "SAM mask\ndecoder", "pretrained"),
        "mask": (11.4, 0.8, "mask", "io"),
    }
    edges = [("llm", "seg", seg), ("seg", "decoder", f"[1, {c}] prompt"), ("decoder", "mask", "")]
    if source in ("dual", "vlm"):
        nodes["clip"] = (2.5, 3.2, "CLIP ViT", "encoder")
        nodes["proj"] = (4.7, 3.2, "projector", "pretrained")
        edges += [("image", "clip", ""), ("clip", "proj", f"[{g * g}, {d_vis}]"), ("proj", "llm", f"[{g * g}, {d_llm}]")]
    if source == "dual":
        nodes["samvit"] = (2.5, 0.8, "SAM ViT", "encoder")
        edges += [("image", "samvit", ""), ("samvit", "decoder", f"[{c}, {s}, {s}]")]
    elif source == "vlm":
        nodes["bridge"] = (5.6, 0.8, "vision_to_sam", "bridge")
        edges += [("clip", "bridge", f"[{g * g}, {d_vis}]"), ("bridge", "decoder", f"[{c}, {g}->{s}, {s}]")]
    elif source == "sam":
        nodes["samvit"] = (2.5, 0.8, "SAM ViT", "encoder")
        nodes["bridge"] = (3.6, 2.0, "vision_to_vlm", "bridge")
        nodes["proj"] = (4.7, 3.2, "projector", "pretrained")
        edges += [("image", "samvit", ""), ("samvit", "decoder", f"[{c}, {s}, {s}]"),
                  ("samvit", "bridge", f"pool {s}->{g}"), ("bridge", "proj", f"[{g * g}, {d_vis}]"),
                  ("proj", "llm", f"[{g * g}, {d_llm}]")]
    return nodes, edges


def _box_width(label: str) -> float:
    return max(1.1, 0.105 * max(len(line) for line in label.split("\n")) + 0.3)


def _edge_point(center: tuple[float, float], towards: tuple[float, float], width: float,
                height: float) -> tuple[float, float]:
    """Where the line from ``center`` to ``towards`` leaves a box of the given size."""
    dx, dy = towards[0] - center[0], towards[1] - center[1]
    scale = min(width / 2 / abs(dx) if dx else float("inf"), height / 2 / abs(dy) if dy else float("inf"))
    return center[0] + dx * scale, center[1] + dy * scale


def draw_panel(ax, config: LisaConfig, source: str) -> None:
    """One design on one axes: boxes for modules (orange = an image encoder), arrows with tensor shapes."""
    nodes, edges = _graph(config, source)
    height = 0.62
    for x, y, label, kind in nodes.values():
        width = _box_width(label)
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.03,rounding_size=0.12", facecolor=BOX_COLOURS[kind],
                                    edgecolor="#333333", linewidth=1.0))
        ax.text(x, y, label, ha="center", va="center", fontsize=8)
    for start, end, label in edges:
        a, b = nodes[start][:2], nodes[end][:2]
        tail = _edge_point(a, b, _box_width(nodes[start][2]) + 0.1, height + 0.1)
        head = _edge_point(b, a, _box_width(nodes[end][2]) + 0.1, height + 0.1)
        ax.annotate("", xy=head, xytext=tail,
                    arrowprops=dict(arrowstyle="-|>", color="#333333", shrinkA=0, shrinkB=0, linewidth=1.0))
        if label:
            ax.text((tail[0] + head[0]) / 2, (tail[1] + head[1]) / 2 + 0.08, label, ha="center", va="bottom",
                    fontsize=7, color="#1f3b73", bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=0.4))
    ax.set_xlim(-0.2, 12.3)
    ax.set_ylim(0.2, 3.8)
    ax.set_title(TITLES[source], fontsize=10, loc="left")
    ax.axis("off")


def draw_vision_flow(config: LisaConfig, sources: Sequence[str] = ("dual", "vlm", "sam")):
    """A figure with one panel per vision source, shapes taken from ``config`` (tiny or real)."""
    fig, axes = plt.subplots(len(sources), 1, figsize=(11, 2.5 * len(sources)))
    axes = [axes] if len(sources) == 1 else list(axes)
    for ax, source in zip(axes, sources):
        draw_panel(ax, config, source)
    handles = [FancyBboxPatch((0, 0), 1, 1, facecolor=BOX_COLOURS[k], edgecolor="#333333") for k in
               ("encoder", "pretrained", "bridge")]
    fig.legend(handles, ["image encoder (one pass each)", "pretrained, reused", "new bridge (trained in ch. 3)"],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
