"""What the networks of one fold train on, prepared once per fold, and the configured network.

:func:`fold_data` turns a fold's training samples into :class:`FoldData`: inputs in the
signed domain at the model's size, the fit/validation split, the input pipeline with its
statistics and the class-balanced loss with its weights -- all fitted on the fit rows only.
Every network of the fold (ensemble members, one at a time or batched) trains on the same
FoldData; :func:`build_model` builds each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from glfnet.config import Config
from glfnet.data.pipeline import InputPipeline
from glfnet.models import create_model, model_defaults
from glfnet.models.ensemble import Ensemble
from glfnet.train.losses import ClassBalancedLoss, build_loss, row_weights


def input_size(cfg: Config) -> int:
    return int(cfg.input_size or model_defaults(cfg.model)["input_size"])


def build_model(cfg: Config, num_classes: int, ensemble: int = 1) -> torch.nn.Module:
    """The configured network at its input size; ``ensemble`` > 1 gives an :class:`Ensemble`
    of that many (the shape a saved ensemble's weights load into)."""
    args = dict(cfg.model_args)
    args.setdefault("img_size", input_size(cfg))
    if ensemble > 1:
        return Ensemble([create_model(cfg.model, num_classes=num_classes, **args) for _ in range(ensemble)])
    return create_model(cfg.model, num_classes=num_classes, **args)


def augment_args(cfg: Config) -> dict:
    """The pipeline's random augmentation arguments (flip, rotation, zoom, shift) of ``cfg``."""
    return {"hflip_p": cfg.hflip, "rotate": cfg.rotate, "scale": cfg.scale, "translate": cfg.translate}


@dataclass
class FoldData:
    """What every network of a fold trains on: prepared inputs, labels, the fit/validation
    split, the fitted input pipeline and the class-balanced loss."""

    Xs: torch.Tensor  # prepared (signed domain, model size), all training rows
    y_t: torch.Tensor
    X: np.ndarray  # stored inputs (validation predictions go through the pipeline again)
    y: np.ndarray
    groups: np.ndarray | None  # database of each row, with per-database statistics only
    fit_idx: np.ndarray
    val_idx: np.ndarray
    pipeline: InputPipeline
    loss_fn: ClassBalancedLoss
    num_classes: int
    device: torch.device
    # each row's loss weight with ``cb_per_database`` (None: the loss's class weights)
    row_weight: torch.Tensor | None = None

    def groups_of(self, idx: np.ndarray) -> np.ndarray | None:
        return None if self.groups is None else self.groups[idx]

    def row_weight_of(self, idx) -> torch.Tensor | None:
        return None if self.row_weight is None else self.row_weight[idx]


def fold_data(
    X: np.ndarray,
    y: np.ndarray,
    fit_mask: np.ndarray,
    groups: np.ndarray | None,
    cfg: Config,
    num_classes: int,
    encoding: str,
    device: torch.device,
) -> FoldData:
    """Prepare the inputs and fit the pipeline's statistics and the loss's class weights on
    the fit rows. ``groups``: the database of each row (per-database input statistics with
    ``db_norm``, per-database class weights with ``cb_per_database``)."""
    pipeline = InputPipeline(encoding, cfg.input_norm, input_size(cfg))
    Xs = pipeline.prepare(torch.tensor(np.asarray(X), dtype=torch.float32, device=device))
    y = np.asarray(y)
    fit_idx, val_idx = np.flatnonzero(fit_mask), np.flatnonzero(~fit_mask)
    db = None if groups is None else np.asarray(groups).astype(str)
    groups = db if cfg.db_norm else None
    pipeline.fit(Xs[fit_idx], None if groups is None else groups[fit_idx])
    y_t = torch.tensor(y, dtype=torch.long, device=device)
    loss_fn = build_loss(cfg, np.bincount(y[fit_idx], minlength=num_classes)).to(device)
    row_weight = None
    if cfg.cb_per_database and db is not None:  # counted on the fit rows, zero on the others
        w = np.zeros(len(y), dtype=np.float32)
        beta = cfg.cb_beta if cfg.loss == "cb" else None
        w[fit_idx] = row_weights(y[fit_idx], db[fit_idx], num_classes, beta)
        row_weight = torch.tensor(w, device=device)
    return FoldData(
        Xs, y_t, X, y, groups, fit_idx, val_idx, pipeline, loss_fn, num_classes, device, row_weight
    )
