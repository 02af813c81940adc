"""BatchNorm statistics recomputed after training: on all fit rows (``bn_refresh``) or on each
database's fit rows (``bn_per_database``)."""

from __future__ import annotations

import numpy as np
import torch

from glfnet.data.pipeline import InputPipeline
from glfnet.train.fold import FoldData


@torch.no_grad()
def refresh_batchnorm(
    model: torch.nn.Module, pipeline: InputPipeline, Xs: torch.Tensor, batch_size: int, groups=None
) -> None:
    """Recompute BatchNorm running statistics with one pass over (training) inputs, without
    augmentation and with dropout off, as at test time: the final weights get exact statistics
    (``bn_refresh``) instead of the running average over the last augmented training batches,
    which were computed with earlier weights (Wu & Johnson, "Rethinking 'Batch' in BatchNorm",
    2021: precise BatchNorm)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    moments = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    was_training = model.training
    model.eval()
    for m in bns:
        m.train()  # only the BatchNorm layers collect statistics; dropout stays off
    for i in range(0, len(Xs), batch_size):
        g = None if groups is None else groups[i : i + batch_size]
        model(pipeline(Xs[i : i + batch_size], groups=g))
    for m, mom in zip(bns, moments):
        m.momentum = mom
    model.train(was_training)


def bn_keys(model: torch.nn.Module) -> set[str]:
    """The state-dict names of ``model``'s BatchNorm running statistics."""
    keys: set[str] = set()
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            keys.update(f"{name}.{b}" if name else b for b, _ in m.named_buffers())
    return keys


def batchnorm_per_group(
    model: torch.nn.Module, data: FoldData, groups: np.ndarray, batch_size: int
) -> dict[str, dict[str, torch.Tensor]]:
    """``bn_per_database``: for each database of the fit rows, the BatchNorm statistics of
    the trained ``model`` recomputed on that database's fit rows alone (as
    :func:`refresh_batchnorm`: no augmentation, dropout off), so a test sample is normalised
    with the statistics of its own database's training samples (AdaBN: Li, Wang, Shi, Liu,
    Hou, "Revisiting Batch Normalization for Practical Domain Adaptation", ICLR-W 2017). The
    model keeps the pooled statistics it had."""
    keys = bn_keys(model)
    if not keys:
        return {}
    pooled = {k: v.clone() for k, v in model.state_dict().items() if k in keys}
    groups = np.asarray(groups).astype(str)
    out = {}
    try:
        for g in np.unique(groups[data.fit_idx]):
            rows = data.fit_idx[groups[data.fit_idx] == g]
            if len(rows) < 2:  # no batch statistics from one sample
                continue
            refresh_batchnorm(model, data.pipeline, data.Xs[rows], batch_size, data.groups_of(rows))
            out[str(g)] = {k: v.clone() for k, v in model.state_dict().items() if k in keys}
    finally:
        model.load_state_dict(pooled, strict=False)
    model.eval()
    return out
