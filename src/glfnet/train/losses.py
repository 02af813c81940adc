"""Class-balanced loss: Cui, Jia, Lin, Song, Belongie, "Class-Balanced Loss Based on
Effective Number of Samples", CVPR 2019 -- GLFNet's replacement for cross-entropy.

Effective number E_n = (1 - beta^n) / (1 - beta); class weight w_c = (1 - beta) / (1 - beta^n_c),
normalised so the weights of the classes present sum to their number; loss = w_y * softmax
cross-entropy (with label smoothing). Counts come from the fold's training labels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
import torch.nn as nn
import torch.nn.functional as F

from glfnet.config import Config


def class_balanced_weights(counts: npt.ArrayLike, beta: float) -> np.ndarray:
    """Per-class weights; a class absent from training gets weight 0 (it has no samples)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    w = np.zeros_like(counts)
    w[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    w[present] *= present.sum() / w[present].sum()
    return w


class ClassBalancedLoss(nn.Module):
    """``beta=None`` gives equal weights: plain cross-entropy (the ``loss: ce`` ablation)."""

    weight: torch.Tensor  # per-class weights (a buffer)

    def __init__(
        self,
        counts: npt.ArrayLike,
        beta: float | None = 0.999,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        counts = np.asarray(counts)
        w = class_balanced_weights(counts, beta) if beta is not None else (counts > 0).astype(float)
        self.register_buffer("weight", torch.tensor(w, dtype=torch.float32))
        self.label_smoothing = label_smoothing

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        row_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return class_balanced_loss(logits, target, self.weight, self.label_smoothing, mask, row_weight)


def class_balanced_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    label_smoothing: float = 0.0,
    mask: torch.Tensor | None = None,
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss as a function (what :class:`ClassBalancedLoss` computes, and what the
    fold-batched engine calls per network): weighted cross-entropy summed over the batch / batch
    size, as Cui et al. ``mask`` (B,) of 0/1 marks the real rows of a padded batch: the mean is
    over those. ``row_weight`` (B,), when given, replaces the class weight of each row
    (:func:`row_weights`: weights counted within each row's database)."""
    ce = F.cross_entropy(logits.float(), target, reduction="none", label_smoothing=label_smoothing)
    per_row = (weight[target] if row_weight is None else row_weight) * ce
    if mask is None:
        return per_row.mean()
    return (per_row * mask).sum() / mask.sum().clamp_min(1)


def row_weights(y: npt.ArrayLike, groups: npt.ArrayLike, num_classes: int, beta: float | None) -> np.ndarray:
    """Each row's weight when classes are balanced *within each group* (``cb_per_database``:
    the database, metadata known for every sample): the class-balanced weight of the row's
    class counted over its group's rows only (equal weights with ``beta`` None). The databases
    differ in their class mix (SAMM 69 % negative, SMIC 43 %), which one pooled count hides."""
    y, groups = np.asarray(y), np.asarray(groups).astype(str)
    out = np.zeros(len(y), dtype=np.float32)
    for g in np.unique(groups):
        rows = groups == g
        counts = np.bincount(y[rows], minlength=num_classes)
        w = class_balanced_weights(counts, beta) if beta is not None else (counts > 0).astype(float)
        out[rows] = w[y[rows]]
    return out


def build_loss(cfg: Config, counts: npt.ArrayLike) -> ClassBalancedLoss:
    """``cfg.loss``: cb -> class-balanced weights (``cb_beta``); ce -> equal weights."""
    beta = cfg.cb_beta if cfg.loss == "cb" else None
    return ClassBalancedLoss(counts, beta=beta, label_smoothing=cfg.label_smoothing)
