"""Do the tokens carry the detail? A linear probe per question type, at three resolutions.

Recall says a selector *kept* the target's tokens; it does not say those tokens *show* the digit or the
stripe. A logistic-regression probe, fitted on training scenes and scored on val scenes, reads the answer
from one feature vector: the tile token that overlaps the target most (what selection keeps), the mean of
its 2 x 2 block (what LaViDa's pooling blends it into; bilinear x0.5 is exactly that mean), or the global
view's best token. A probe at chance means no model downstream can read the detail from those features.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lisalib.shirg.data import EncodedScenes, box_overlaps, view_grid

PROBED = ("digit", "stripe")


def detail_features(data: EncodedScenes, kind: str, features: torch.Tensor | None = None) -> dict:
    """``{"token", "pooled", "global": [n, C] arrays, "answers": [n]}`` for the val/train questions of ``kind``."""
    features = data.features if features is None else features
    rows = {"token": [], "pooled": [], "global": [], "answers": []}
    for sample in data.samples:
        if sample.type != kind:
            continue
        views = data.views[sample.scene_index]
        grid, cell = view_grid(views), views[0].patch_size
        tiles = np.stack([box_overlaps(sample.boxes[0], v, cell) for v in views[1:]])
        v, t = np.unravel_index(int(tiles.argmax()), tiles.shape)
        r, c = divmod(int(t), grid)
        block = [(r // 2 * 2 + i) * grid + c // 2 * 2 + j for i in range(2) for j in range(2)]
        scene = features[sample.scene_index]
        rows["token"].append(scene[1 + v, t].numpy())
        rows["pooled"].append(scene[1 + v, block].mean(0).numpy())
        rows["global"].append(scene[0, int(box_overlaps(sample.boxes[0], views[0], cell).argmax())].numpy())
        rows["answers"].append(sample.answer)
    return {k: np.asarray(v) for k, v in rows.items()}


def fit_probe(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 200):
    """Multinomial logistic regression (standardised inputs, L-BFGS); returns a ``predict(x)`` function."""
    classes = sorted(set(y.tolist()))
    target = torch.tensor([classes.index(v) for v in y])
    x = torch.as_tensor(x, dtype=torch.float32)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    bias = torch.zeros(len(classes), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight + bias, target) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)

    def predict(inputs: np.ndarray) -> list:
        with torch.no_grad():
            scores = ((torch.as_tensor(inputs, dtype=torch.float32) - mean) / std) @ weight + bias
        return [classes[i] for i in scores.argmax(1).tolist()]

    return predict


def detail_probe(train: EncodedScenes, val: EncodedScenes, train_features=None, val_features=None) -> dict:
    """Per probed question type: val accuracy of a probe on the kept token, its pooled block and the global
    view, next to the most frequent training answer's accuracy (``chance``) and the counts."""
    result = {}
    for kind in PROBED:
        fit, test = detail_features(train, kind, train_features), detail_features(val, kind, val_features)
        answers = fit["answers"].tolist()
        majority = max(sorted(set(answers)), key=answers.count)
        row = {"n_train": len(answers), "n_val": len(test["answers"]),
               "chance": round(float(np.mean(test["answers"] == majority)), 4)}
        for where in ("token", "pooled", "global"):
            predict = fit_probe(fit[where], fit["answers"])
            row[where] = round(float(np.mean(np.asarray(predict(test[where])) == test["answers"])), 4)
        result[kind] = row
    return result
