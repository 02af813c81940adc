"""Train one fold's model. By construction it receives **training data only**.

A fold's networks (``ensemble`` members) are :class:`~glfnet.train.loop.Job` s of the one
training loop (:mod:`glfnet.train.loop`), trained one at a time (:mod:`glfnet.train.single`)
or ``fold_batch`` at a time as one batched network (:mod:`glfnet.train.batched`).

:func:`train_fold` is given the training inputs, labels and subjects of a fold and nothing
else: normalisation statistics, class weights and (optional) early stopping on an inner split
of *training subjects* all come from them. The test subject never enters this module. The
optional ``observer`` (used for the labelled oracle figures) is called after each epoch with a
frozen predictor; it cannot change training: predictions run in eval mode without gradients
and draw no random numbers, so a run's honest predictions are identical with or without it.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from glfnet.config import Config
from glfnet.data.pipeline import InputPipeline
from glfnet.models.ensemble import Ensemble
from glfnet.models.inference import predict_proba
from glfnet.train.batched import BatchedStepper
from glfnet.train.bnstats import batchnorm_per_group, bn_keys
from glfnet.train.fold import fold_data
from glfnet.train.loop import Job, Trained, train_networks
from glfnet.train.single import SingleStepper


@contextlib.contextmanager
def determinism(device: str) -> Iterator[None]:
    """Deterministic kernels while training on the CPU (the same seed gives the same result);
    none asked for on CUDA, where some kernels used here (median) have no deterministic form.
    PyTorch's debugging aid of filling every new tensor with NaN in this mode is switched off:
    it changes no result and cost 10-20 % of glfnet_s's CPU training time (some 1,100 fills
    per step; the composite LOSO went from 15.7 to 14.0 minutes at 35 epochs). The process's
    previous settings are restored afterwards, so a CPU run does not break a later CUDA run in
    the same Python session."""
    # (the flag is a property of that module, which PyTorch's type stubs do not show)
    import torch.utils.deterministic as tud

    before = torch.are_deterministic_algorithms_enabled(), tud.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.use_deterministic_algorithms(device == "cpu")
    tud.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        tud.fill_uninitialized_memory = before[1]  # type: ignore[attr-defined]


@contextlib.contextmanager
def one_thread_on_cpu(device: str) -> Iterator[None]:
    """Train single-threaded on the CPU, as every LOSO fold and ``glfnet train`` do: small
    models train fastest so, and a machine under load is not oversubscribed (one epoch of the
    442-image release took 31.8 s with PyTorch's default threads under load, 0.5 s with
    one). The result then does not depend on the machine's core count. The previous thread
    count is restored afterwards."""
    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fold_seed(seed: int, fold_name: str) -> int:
    """A per-(seed, fold) seed: a fold's result does not depend on the order folds run in,
    so a resumed run equals an uninterrupted one."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(fold_name.encode())]).generate_state(1)[0])


@dataclass
class TrainedFold:
    model: torch.nn.Module
    pipeline: InputPipeline
    history: list[dict] = field(default_factory=list)
    selected_epoch: int | list | None = None  # set when early stopping chose an epoch (per member)
    val_subjects: list[str] = field(default_factory=list)
    # ``bn_per_database``: each database's BatchNorm statistics (buffers by name)
    bn_groups: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def predict_proba(self, X, batch_size: int = 256, groups=None) -> np.ndarray:
        """Class probabilities; with per-database BatchNorm statistics each sample is
        predicted with its database's (the pooled ones for a database training lacked)."""
        if not self.bn_groups or groups is None or not len(X):
            return predict_proba(self.model, self.pipeline, X, batch_size, groups)
        groups = np.asarray(groups).astype(str)
        out = predict_proba(self.model, self.pipeline, X, batch_size, groups)
        pooled = {k: v.clone() for k, v in self.model.state_dict().items() if k in bn_keys(self.model)}
        try:
            for g, stats in self.bn_groups.items():
                rows = np.flatnonzero(groups == g)
                if len(rows):
                    self.model.load_state_dict(stats, strict=False)
                    out[rows] = predict_proba(self.model, self.pipeline, X[rows], batch_size, groups[rows])
        finally:
            self.model.load_state_dict(pooled, strict=False)
        return out


def _split_val_subjects(subjects: np.ndarray, frac: float, rng: np.random.Generator):
    uniq = np.unique(subjects)
    n_val = max(1, int(round(frac * len(uniq))))
    if n_val >= len(uniq):
        return np.ones(len(subjects), bool), []
    val = set(rng.choice(uniq, size=n_val, replace=False).tolist())
    return np.array([s not in val for s in subjects]), sorted(val)


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member ``member`` of a fold: member 0 keeps the fold's seed, so an
    ensemble of one is exactly the single model."""
    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), 7919, int(member)]).generate_state(1)[0])


@dataclass
class FoldInput:
    """One fold's training samples -- and nothing else: inputs, labels, subjects (for the
    inner validation split), the database of each row (for per-database statistics), the
    class count, the stored encoding and the fold's seed."""

    X: np.ndarray
    y: np.ndarray
    subjects: np.ndarray
    num_classes: int
    encoding: str
    seed: int
    groups: np.ndarray | None = None


def train_fold(
    X: np.ndarray,
    y: np.ndarray,
    subjects: np.ndarray,
    cfg: Config,
    num_classes: int,
    encoding: str,
    seed: int,
    observer: Callable | None = None,
    on_epoch: Callable | None = None,
    groups: np.ndarray | None = None,
) -> TrainedFold:
    """Train on (X, y) -- a fold's training samples and nothing else.

    ``subjects`` serve the inner validation split (``cfg.val_subjects > 0``): that fraction of
    training subjects is held out of fitting and used to pick the epoch. With ``cfg.ensemble``
    = K > 1, K members are trained on the same samples (same split, same normalisation),
    differing in initialisation, batch order and augmentation; the fold's model is their
    :class:`~glfnet.models.ensemble.Ensemble` (mean of the members' probabilities), and
    ``cfg.fold_batch`` > 1 trains that many members at once as one batched network.
    ``observer(epoch, predict, member)`` sees a frozen predictor ``predict(X, groups=None)``
    of each member after each epoch; ``on_epoch(record)`` gets the log row. ``groups`` (the
    database of each sample) serves the per-database options: input statistics
    (``cfg.db_norm``), class weights (``cfg.cb_per_database``) and BatchNorm statistics
    (``cfg.bn_per_database``).
    """
    fold = FoldInput(X, y, subjects, num_classes, encoding, seed, groups)
    return train_folds([fold], cfg, [observer], on_epoch, cfg.fold_batch_size())[0]


def train_folds(
    folds: list[FoldInput],
    cfg: Config,
    observers: list[Callable | None] | None = None,
    on_epoch: Callable | None = None,
    batch: int = 1,
) -> list[TrainedFold]:
    """Train each fold of ``folds`` on its own samples (see :func:`train_fold`); ``batch`` > 1
    trains up to that many of the networks (folds x ensemble members) at once as one batched
    network (:mod:`glfnet.train.batched`), each with everything of its own."""
    device = torch.device(cfg.device)
    observers = observers or [None] * len(folds)
    jobs, val_subjects = [], []
    for i, f in enumerate(folds):
        rng = np.random.default_rng(f.seed)
        fit_mask, val = np.ones(len(f.y), bool), []
        if cfg.val_subjects > 0:
            fit_mask, val = _split_val_subjects(np.asarray(f.subjects), cfg.val_subjects, rng)
        data = fold_data(f.X, f.y, fit_mask, f.groups, cfg, f.num_classes, f.encoding, device)
        val_subjects.append(val)
        for k in range(cfg.ensemble):
            mseed = member_seed(f.seed, k)
            observer = observers[i]
            jobs.append(
                Job(
                    i,
                    data,
                    mseed,
                    rng if k == 0 else np.random.default_rng(mseed),
                    None if observer is None else (lambda e, p, k=k, o=observer: o(e, p, k)),
                    k if cfg.ensemble > 1 else None,
                )
            )
    trained = _train_jobs(jobs, cfg, on_epoch, batch)
    results = []
    for i in range(len(folds)):
        mine = [(job, out) for job, out in zip(jobs, trained) if job.fold == i]
        members = [out[0] for _, out in mine]
        history = [row for _, out in mine for row in out[1]]
        selected = [out[2] for _, out in mine]
        model = members[0] if cfg.ensemble == 1 else Ensemble(members).eval()
        data = mine[0][0].data
        result = TrainedFold(model, data.pipeline, history, val_subjects=val_subjects[i])
        if cfg.bn_per_database and folds[i].groups is not None:
            result.bn_groups = batchnorm_per_group(model, data, np.asarray(folds[i].groups), cfg.batch_size)
        if any(s is not None for s in selected):
            result.selected_epoch = selected[0] if cfg.ensemble == 1 else selected
        results.append(result)
    return results


def _train_jobs(jobs: list[Job], cfg: Config, on_epoch: Callable | None, batch: int) -> list[Trained]:
    """(model, history, selected epoch) per job: one network at a time, or ``batch`` at a
    time as one batched network -- the same loop, another stepper."""
    if batch <= 1 or len(jobs) == 1:
        return [train_networks([j], cfg, SingleStepper(j, cfg), on_epoch)[0] for j in jobs]
    out: list[Trained] = []
    for i in range(0, len(jobs), batch):
        chunk = jobs[i : i + batch]
        out.extend(train_networks(chunk, cfg, BatchedStepper(chunk, cfg), on_epoch))
    return out
