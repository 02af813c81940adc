"""The training loop: every network glfnet trains goes through :func:`train_networks`.

The loop owns an epoch: each network's batch order (its own NumPy generator), its
learning-rate schedule (linear warm-up, then a cosine to 0: Loshchilov & Hutter, SGDR, ICLR
2017, without restarts) stepped per optimiser step, its mean training loss, the history rows,
the epoch choice on validation subjects (``val_subjects``: early stopping on training subjects
only), the observers (the oracle's) and, after the last epoch, the BatchNorm refresh
(``bn_refresh``). How a step is computed is a :class:`Stepper`'s: one network with an ordinary
forward and backward pass (:class:`glfnet.train.single.SingleStepper`) or K networks stacked
into one batched network (:class:`glfnet.train.batched.BatchedStepper`). So one network and K
batched networks see the same rows, in the same order, at the same learning rates.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from glfnet.config import Config
from glfnet.metrics import scores
from glfnet.models.inference import predict_proba
from glfnet.train.bnstats import refresh_batchnorm
from glfnet.train.fold import FoldData

Trained = tuple[torch.nn.Module, list[dict], int | None]  # (model, history, selected epoch)


@dataclass
class Job:
    """One network to train: its fold (index), the fold's data, its seed, its generator of
    batch order, the observer of its epochs and its ensemble index."""

    fold: int
    data: FoldData
    seed: int
    rng: np.random.Generator
    observer: Callable | None
    member: int | None


class Stepper(Protocol):
    """How the networks of one :func:`train_networks` call take their optimiser steps."""

    def step(self, rows: list[np.ndarray | None], lrs: list[float]) -> torch.Tensor:
        """One optimiser step of each network ``i`` on its fit rows ``rows[i]`` at learning
        rate ``lrs[i]`` (None: no batch left this epoch, no update); each network's mean loss
        on its rows, (K,)."""
        ...

    def network(self, i: int) -> torch.nn.Module:
        """Network ``i`` as a module holding its current weights."""
        ...


def lr_schedule(cfg: Config, n_batches: int) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up, then a cosine to 0."""
    total = cfg.epochs * n_batches
    warm = min(cfg.warmup_epochs * n_batches, total - 1)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / (warm + 1)
        if s >= total:
            return 0.0
        return 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    return factor


def val_uf1(model: torch.nn.Module, data: FoldData) -> float:
    """UF1 on the validation subjects (training subjects held out of fitting)."""
    v = data.val_idx
    pred = predict_proba(model, data.pipeline, data.X[v], groups=data.groups_of(v)).argmax(1)
    return float(scores(data.y[v], pred, data.num_classes)["uf1"])


class _Schedule:
    """Each network's learning rate for its next step: ``lr`` x its factor (its own number of
    steps per epoch) at the steps it has taken."""

    def __init__(self, jobs: list[Job], cfg: Config) -> None:
        self.lr = cfg.lr
        self.n_batches = [max(1, math.ceil(len(j.data.fit_idx) / cfg.batch_size)) for j in jobs]
        self.factors = [lr_schedule(cfg, n) for n in self.n_batches]
        self.steps = [0] * len(jobs)

    def __call__(self, i: int) -> float:
        return self.lr * self.factors[i](self.steps[i])


def _epoch(jobs: list[Job], stepper: Stepper, schedule: _Schedule) -> list[float]:
    """One pass of every network over its fit rows in a fresh order (near-equal batches:
    never a 1-sample batch); each network's mean training loss."""
    batches = [np.array_split(j.rng.permutation(j.data.fit_idx), n) for j, n in zip(jobs, schedule.n_batches)]
    device = jobs[0].data.device
    totals = torch.zeros(len(jobs), dtype=torch.float64, device=device)
    seen = np.zeros(len(jobs))
    for s in range(max(schedule.n_batches)):
        rows = [b[s] if s < len(b) else None for b in batches]
        sizes = np.array([0 if r is None else len(r) for r in rows])
        losses = stepper.step(rows, [0.0 if r is None else schedule(i) for i, r in enumerate(rows)])
        totals += losses.detach().double() * torch.from_numpy(sizes).to(device)  # no GPU sync per step
        seen += sizes
        for i in np.flatnonzero(sizes):
            schedule.steps[i] += 1
    return (totals.cpu().numpy() / np.maximum(seen, 1)).tolist()


def train_networks(
    jobs: list[Job], cfg: Config, stepper: Stepper, on_epoch: Callable | None = None
) -> list[Trained]:
    """Train ``jobs`` for ``cfg.epochs`` epochs, their steps computed by ``stepper``; per job
    (model in eval mode, history, selected epoch). After each epoch a network's row goes to
    ``on_epoch``, its validation UF1 (with validation subjects) picks the epoch whose weights
    it keeps, and its observer sees a frozen predictor; none of them draws random numbers or
    changes training."""
    schedule = _Schedule(jobs, cfg)
    histories: list[list[dict]] = [[] for _ in jobs]
    best: list[tuple[float, dict | None]] = [(-1.0, None)] * len(jobs)
    selected: list[int | None] = [None] * len(jobs)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        losses = _epoch(jobs, stepper, schedule)
        seconds = (time.perf_counter() - t0) / len(jobs)  # a batched epoch is shared
        for i, job in enumerate(jobs):
            record = {"epoch": epoch, "loss": losses[i], "lr": schedule(i), "seconds": seconds}
            data = job.data
            if len(data.val_idx) or job.observer:  # the module is filled only for what reads it
                model = stepper.network(i)
            if len(data.val_idx):
                record["val_uf1"] = val_uf1(model, data)
                if record["val_uf1"] > best[i][0]:
                    best[i], selected[i] = (record["val_uf1"], copy.deepcopy(model.state_dict())), epoch
            if job.member is not None:
                record["member"] = job.member
            histories[i].append(record)
            if on_epoch:
                on_epoch(record)
            if job.observer is not None:  # predict(X, groups=None): the network as it is now
                job.observer(epoch, functools.partial(predict_proba, model, data.pipeline))
    models = [_finish(stepper.network(i), job, best[i][1], cfg) for i, job in enumerate(jobs)]
    return list(zip(models, histories, selected))


def _finish(model: torch.nn.Module, job: Job, best: dict | None, cfg: Config) -> torch.nn.Module:
    """The network as trained: the chosen epoch's weights, BatchNorm statistics recomputed
    on the fit rows (``bn_refresh``), eval mode."""
    if best is not None:
        model.load_state_dict(best)
    if cfg.bn_refresh:
        fit = job.data.fit_idx
        refresh_batchnorm(model, job.data.pipeline, job.data.Xs[fit], cfg.batch_size, job.data.groups_of(fit))
    return model.eval()
