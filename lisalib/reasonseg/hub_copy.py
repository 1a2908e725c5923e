"""Hub copies of ReasonSeg (e.g. ``Ricky06662/ReasonSeg_val``, 200 samples) written as LISA's own release.

Those copies are parquet tables with columns ``image`` (PIL), ``text`` (one query), ``mask`` (a list of
rows of booleans), ``image_id``, ``ann_id``, ``img_height``, ``img_width``, and a single ``test`` split.
:func:`write_samples` turns each row into the image plus a LabelMe-style JSON with the mask's outer
contours as ``target`` polygons (OpenCV), so :class:`lisalib.reasonseg.dataset.ReasonSegDataset` reads
both sources alike. Two things the copies lack are reconstructed and recorded in the JSON: polygons of
the mask (holes are lost; :func:`polygon_iou` says how much that costs per sample) and ``is_sentence``,
taken to be a query ending in "?" or "." (:func:`lisalib.reasonseg.dataset.user_query`'s rule).

``python -m lisalib.reasonseg.hub_copy --repo Ricky06662/ReasonSeg_val --out data/reasonseg_real`` (needs the
``datasets`` package and network; run it on Colab, then set ``LISALIB_REASONSEG=data/reasonseg_real``).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from lisalib.reasonseg.raster import paint_shapes  # LISA's fill + outline of int32 points


def mask_polygons(mask: np.ndarray) -> list[list[list[int]]]:
    """Outer contours of a boolean mask as LabelMe point lists (at least 3 points each)."""
    contours, _ = cv2.findContours(np.asarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c[:, 0, :].tolist() for c in contours if len(c) >= 3]


def polygon_iou(mask: np.ndarray, polygons: list[list[list[int]]]) -> float:
    """IoU between a mask and what LISA's rasteriser paints from ``polygons``."""
    mask = np.asarray(mask, dtype=bool)
    painted = paint_shapes([("target", np.asarray(p, dtype=np.float64)) for p in polygons], *mask.shape) == 1
    union = np.logical_or(mask, painted).sum()
    return float(np.logical_and(mask, painted).sum() / union) if union else 1.0


def write_samples(rows: Iterable[dict], out: str | Path, split: str = "val") -> dict:
    """Write rows of a hub copy into ``out/split/`` as image + JSON; returns counts and the polygon IoUs."""
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    ious, skipped = [], 0
    for index, row in enumerate(rows):
        mask = np.asarray(row["mask"], dtype=bool)
        polygons = mask_polygons(mask)
        if not polygons:
            skipped += 1  # an empty mask: nothing to segment
            continue
        stem = f"{row.get('image_id', index)}_{row.get('ann_id', index)}".replace("/", "_")
        image = row["image"].convert("RGB")
        if image.size != (mask.shape[1], mask.shape[0]):
            raise ValueError(f"row {index}: image {image.size} but mask {mask.shape[::-1]} (width, height)")
        image.save(folder / f"{stem}.jpg", quality=95)
        text = " ".join(str(row["text"]).split())
        iou = polygon_iou(mask, polygons)
        ious.append(iou)
        annotation = {"text": [text], "is_sentence": text.endswith(("?", ".")),
                      "shapes": [{"label": "target", "points": p} for p in polygons],
                      "source": {"hub_copy": True, "polygon_iou": round(iou, 4)}}
        (folder / f"{stem}.json").write_text(json.dumps(annotation), encoding="utf-8")
    return {"written": len(ious), "skipped_empty": skipped, "min_polygon_iou": min(ious, default=None),
            "mean_polygon_iou": float(np.mean(ious)) if ious else None}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lisalib.reasonseg.hub_copy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default="Ricky06662/ReasonSeg_val", help="hub dataset id")
    parser.add_argument("--hub_split", default="test", help="the copy's split name")
    parser.add_argument("--out", default="data/reasonseg_real", help="dataset root to write")
    parser.add_argument("--split", default="val", help="sub-folder of --out")
    args = parser.parse_args(argv)
    try:
        from datasets import load_dataset
    except ImportError:
        print("error: this needs the datasets package (pip install datasets) and network", file=sys.stderr)
        return 2
    summary = write_samples(load_dataset(args.repo, split=args.hub_split), args.out, args.split)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
