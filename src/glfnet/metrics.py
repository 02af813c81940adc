"""MEGC2019 metrics on pooled predictions (reference section 2).

UF1 = (1/K) sum_c 2TP_c / (2TP_c + FP_c + FN_c); UAR = (1/K) sum_c TP_c / N_c; both over the K
classes present in the ground truth of the samples scored (as the challenge's evaluation code
does: a class with no true sample in a subset has no recall and is left out of both means).
Predictions are pooled over all folds first; averaging per fold is wrong (many subjects have
one class only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def confusion(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def scores(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> dict[str, Any]:
    """UF1, UAR, accuracy, per-class F1 and recall (None for classes absent from y_true),
    the confusion matrix and the sample count."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    cm = confusion(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    n_true = cm.sum(axis=1).astype(float)
    n_pred = cm.sum(axis=0).astype(float)
    present = n_true > 0
    f1 = [float(2 * tp[c] / (n_true[c] + n_pred[c])) if present[c] else None for c in range(num_classes)]
    rec = [float(tp[c] / n_true[c]) if present[c] else None for c in range(num_classes)]
    n = int(len(y_true))
    return {
        "uf1": float(np.mean([v for v in f1 if v is not None])) if n else float("nan"),
        "uar": float(np.mean([v for v in rec if v is not None])) if n else float("nan"),
        "acc": float(tp.sum() / n) if n else float("nan"),
        "f1": f1,
        "recall": rec,
        "confusion": cm.tolist(),
        "n": n,
    }


def uf1_uar(cm: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """UF1 and UAR of confusion matrices ``cm`` (..., K, K), vectorised over the leading
    dimensions (bootstrap draws): the definitions of :func:`scores`, classes without a true
    sample left out of both means."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    n_true, n_pred = cm.sum(-1), cm.sum(-2)
    present = n_true > 0
    f1 = np.where(present, 2 * tp / np.maximum(n_true + n_pred, 1e-12), 0.0)
    rec = np.where(present, tp / np.maximum(n_true, 1e-12), 0.0)
    k = np.maximum(present.sum(-1), 1)
    return f1.sum(-1) / k, rec.sum(-1) / k
