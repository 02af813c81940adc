"""Train one fold's model. By construction it receives **training data only**.

:func:`train_fold` is given the training inputs, labels and subjects of a fold and nothing
else: normalisation statistics, class weights and (optional) early stopping on an inner split
of *training subjects* all come from them. The test subject never enters this module. The
optional ``observer`` (used for the labelled oracle figures) is called after each epoch with a
frozen predictor; it cannot change training: predictions run in eval mode without gradients
and draw no random numbers, so a run's honest predictions are identical with or without it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from glfnet.config import Config
from glfnet.data.pipeline import InputPipeline
from glfnet.metrics import scores
from glfnet.models import create_model, model_defaults
from glfnet.models.ensemble import Ensemble
from glfnet.models.inference import predict_proba
from glfnet.train.losses import build_loss, row_weights


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
        pooled = {k: v.clone() for k, v in self.model.state_dict().items() if k in _bn_keys(self.model)}
        try:
            for g, stats in self.bn_groups.items():
                rows = np.flatnonzero(groups == g)
                if len(rows):
                    self.model.load_state_dict(stats, strict=False)
                    out[rows] = predict_proba(self.model, self.pipeline, X[rows], batch_size, groups[rows])
        finally:
            self.model.load_state_dict(pooled, strict=False)
        return out


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
    database of each training sample) gives per-database input statistics when
    ``cfg.db_norm``.
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
        data = _fold_data(f.X, f.y, fit_mask, f.groups, cfg, f.num_classes, f.encoding, device)
        val_subjects.append(val)
        for k in range(cfg.ensemble):
            mseed = member_seed(f.seed, k)
            observer = observers[i]
            jobs.append(
                MemberJob(
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


@dataclass
class MemberJob:
    """One network to train: its fold (index), the fold's data, its seed, its random
    generator (batch order), the observer of its epochs and its ensemble index."""

    fold: int
    data: _FoldData
    seed: int
    rng: np.random.Generator
    observer: Callable | None
    member: int | None


def _train_jobs(
    jobs: list[MemberJob], cfg: Config, on_epoch: Callable | None, batch: int
) -> list[tuple[torch.nn.Module, list[dict], int | None]]:
    """(model, history, selected epoch) per job: one at a time, or ``batch`` at a time as
    one batched network."""
    if batch <= 1 or len(jobs) == 1:
        return [_train_member(j.data, cfg, j.seed, j.rng, j.observer, on_epoch, j.member) for j in jobs]
    from glfnet.train.batched import train_batched

    out: list[tuple[torch.nn.Module, list[dict], int | None]] = []
    for i in range(0, len(jobs), batch):
        out.extend(train_batched(jobs[i : i + batch], cfg, on_epoch))
    return out


@dataclass
class _FoldData:
    """What every member of a fold trains on: prepared inputs, labels, the fit/validation
    split, the fitted input pipeline and the class-balanced loss."""

    Xs: torch.Tensor  # prepared (signed domain, model size), all training rows
    y_t: torch.Tensor
    X: np.ndarray  # stored inputs (validation predictions go through the pipeline again)
    y: np.ndarray
    groups: np.ndarray | None  # database of each row, with per-database statistics only
    fit_idx: np.ndarray
    val_idx: np.ndarray
    pipeline: InputPipeline
    loss_fn: torch.nn.Module
    num_classes: int
    device: torch.device
    # each row's loss weight with ``cb_per_database`` (None: the loss's class weights)
    row_weight: torch.Tensor | None = None

    def groups_of(self, idx: np.ndarray) -> np.ndarray | None:
        return None if self.groups is None else self.groups[idx]

    def row_weight_of(self, idx) -> torch.Tensor | None:
        return None if self.row_weight is None else self.row_weight[idx]


def _fold_data(
    X: np.ndarray,
    y: np.ndarray,
    fit_mask: np.ndarray,
    groups: np.ndarray | None,
    cfg: Config,
    num_classes: int,
    encoding: str,
    device: torch.device,
) -> _FoldData:
    """Prepare the inputs and fit the pipeline's statistics and the loss's class weights on
    the fit rows. ``groups``: the database of each row (per-database input statistics with
    ``db_norm``, per-database class weights with ``cb_per_database``)."""
    pipeline = InputPipeline(encoding, cfg.input_norm, input_size(cfg))
    Xs = pipeline.prepare(torch.tensor(np.asarray(X), dtype=torch.float32, device=device))
    fit_idx, val_idx = np.flatnonzero(fit_mask), np.flatnonzero(~fit_mask)
    db = None if groups is None else np.asarray(groups).astype(str)
    groups = db if cfg.db_norm else None
    pipeline.fit(Xs[fit_idx], None if groups is None else groups[fit_idx])
    counts = np.bincount(np.asarray(y)[fit_idx], minlength=num_classes)
    y_t = torch.tensor(np.asarray(y), dtype=torch.long, device=device)
    loss_fn = build_loss(cfg, counts).to(device)
    row_weight = None
    if cfg.cb_per_database and db is not None:  # counted on the fit rows, zero on the others
        w = np.zeros(len(y), dtype=np.float32)
        beta = cfg.cb_beta if cfg.loss == "cb" else None
        w[fit_idx] = row_weights(np.asarray(y)[fit_idx], db[fit_idx], num_classes, beta)
        row_weight = torch.tensor(w, device=device)
    return _FoldData(
        Xs,
        y_t,
        X,
        np.asarray(y),
        groups,
        fit_idx,
        val_idx,
        pipeline,
        loss_fn,
        num_classes,
        device,
        row_weight,
    )


def _train_member(
    data: _FoldData,
    cfg: Config,
    seed: int,
    rng: np.random.Generator,
    observer: Callable | None,
    on_epoch: Callable | None,
    member: int | None,
) -> tuple[torch.nn.Module, list[dict], int | None]:
    """One network on the fit samples: AdamW, warm-up + cosine and epoch selection on the
    validation subjects. Returns (model, history, selected epoch)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # (Module.to takes memory_format, which PyTorch's type stubs do not show)
    model = build_model(cfg, data.num_classes).to(data.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    n_batches = max(1, math.ceil(len(data.fit_idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, n_batches))

    history, best, selected = [], (-1.0, None), None
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        loss = _fit_epoch(model, opt, sched, data, cfg, rng, gen, n_batches)
        record = {
            "epoch": epoch,
            "loss": loss,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        if len(data.val_idx):
            record["val_uf1"] = val_uf1(model, data)
            if record["val_uf1"] > best[0]:
                best, selected = (record["val_uf1"], copy.deepcopy(model.state_dict())), epoch
        if member is not None:
            record["member"] = member
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if observer is not None:
            observer(epoch, lambda Xo, groups=None: predict_proba(model, data.pipeline, Xo, groups=groups))
    if best[1] is not None:
        model.load_state_dict(best[1])
    if cfg.bn_refresh:
        fit = data.fit_idx
        refresh_batchnorm(model, data.pipeline, data.Xs[fit], cfg.batch_size, data.groups_of(fit))
    model.eval()
    return model, history, selected


def _fit_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    data: _FoldData,
    cfg: Config,
    rng: np.random.Generator,
    gen: torch.Generator,
    n_batches: int,
) -> float:
    """One pass over the fit rows in a fresh order; returns the mean training loss."""
    augment = augment_args(cfg)
    amp = cfg.amp  # bfloat16 autocast (CUDA, or a CPU with AVX-512 BF16 / AMX)
    model.train()
    order = rng.permutation(data.fit_idx)
    total_loss, seen = torch.zeros((), dtype=torch.float64, device=data.device), 0
    for b in np.array_split(order, n_batches):  # near-equal batches: never a 1-sample batch
        xb = data.pipeline(data.Xs[b], augment, gen, data.groups_of(b))
        yb, wb = data.y_t[b], data.row_weight_of(b)
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = data.loss_fn(model(xb), yb, row_weight=wb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.detach().double() * len(b)  # no GPU sync per step
        seen += len(b)
    return float(total_loss) / max(seen, 1)


def augment_args(cfg: Config) -> dict:
    """The pipeline's random augmentation arguments (flip, rotation, zoom, shift) of ``cfg``."""
    return {"hflip_p": cfg.hflip, "rotate": cfg.rotate, "scale": cfg.scale, "translate": cfg.translate}


def val_uf1(model: torch.nn.Module, data: _FoldData) -> float:
    """UF1 on the validation subjects (training subjects held out of fitting)."""
    v = data.val_idx
    pred = predict_proba(model, data.pipeline, data.X[v], groups=data.groups_of(v)).argmax(1)
    return float(scores(data.y[v], pred, data.num_classes)["uf1"])


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


@torch.no_grad()
def refresh_batchnorm(
    model: torch.nn.Module, pipeline: InputPipeline, Xs: torch.Tensor, batch_size: int, groups=None
) -> None:
    """Recompute BatchNorm running statistics with one pass over (training) inputs, without
    augmentation and with dropout off, as at test time: the final weights get exact ones
    (``bn_refresh``) instead
    of the running average over the last augmented training batches, which were computed
    with earlier weights (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021: precise
    BatchNorm)."""
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


def _bn_keys(model: torch.nn.Module) -> set[str]:
    """The state-dict names of ``model``'s BatchNorm running statistics."""
    keys: set[str] = set()
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            keys.update(f"{name}.{b}" if name else b for b, _ in m.named_buffers())
    return keys


def batchnorm_per_group(
    model: torch.nn.Module, data: _FoldData, groups: np.ndarray, batch_size: int
) -> dict[str, dict[str, torch.Tensor]]:
    """``bn_per_database``: for each database of the fit rows, the BatchNorm statistics of
    the trained ``model`` recomputed on that database's fit rows alone (as
    :func:`refresh_batchnorm`: no augmentation, dropout off), so a test sample is normalised
    with the statistics of its own database's training samples (AdaBN: Li, Wang, Shi, Liu,
    Hou, "Revisiting Batch Normalization for Practical Domain Adaptation", ICLR-W 2017). The
    model keeps the pooled statistics it had."""
    keys = _bn_keys(model)
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
