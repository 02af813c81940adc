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
from glfnet.train.losses import build_loss


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

    def predict_proba(self, X, batch_size: int = 256, groups=None, tta: bool | None = None) -> np.ndarray:
        return predict_proba(self.model, self.pipeline, X, batch_size, groups, tta)


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
    :class:`~glfnet.models.ensemble.Ensemble` (mean of the members' probabilities).
    ``observer(epoch, predict, member)`` sees a frozen predictor ``predict(X, groups=None)``
    of each member after each epoch; ``on_epoch(record)`` gets the log row. ``groups`` (the
    database of each training sample) gives per-database input statistics when
    ``cfg.db_norm``.
    """
    device = torch.device(cfg.device)
    rng = np.random.default_rng(seed)
    fit_mask, val_subjects = np.ones(len(y), bool), []
    if cfg.val_subjects > 0:
        fit_mask, val_subjects = _split_val_subjects(np.asarray(subjects), cfg.val_subjects, rng)

    pipeline = InputPipeline(encoding, cfg.input_norm, input_size(cfg), tta=cfg.tta)
    Xs = pipeline.prepare(torch.tensor(np.asarray(X), dtype=torch.float32, device=device))
    y_t = torch.tensor(np.asarray(y), dtype=torch.long, device=device)
    fit_idx = np.flatnonzero(fit_mask)
    val_idx = np.flatnonzero(~fit_mask)
    groups = np.asarray(groups).astype(str) if cfg.db_norm and groups is not None else None
    pipeline.fit(Xs[fit_idx], None if groups is None else groups[fit_idx])
    counts = np.bincount(np.asarray(y)[fit_idx], minlength=num_classes)
    loss_fn = build_loss(cfg, counts).to(device)

    members, history, selected = [], [], []
    for k in range(cfg.ensemble):
        mseed = member_seed(seed, k)
        model, hist, sel = _train_member(
            Xs,
            y_t,
            X,
            np.asarray(y),
            groups,
            fit_idx,
            val_idx,
            pipeline,
            loss_fn,
            cfg,
            num_classes,
            mseed,
            rng if k == 0 else np.random.default_rng(mseed),
            device,
            None if observer is None else (lambda e, p, k=k: observer(e, p, k)),
            on_epoch,
            k if cfg.ensemble > 1 else None,
        )
        history.extend(hist)
        members.append(model)
        selected.append(sel)
    model = members[0] if cfg.ensemble == 1 else Ensemble(members).eval()
    result = TrainedFold(model, pipeline, history, val_subjects=val_subjects)
    if any(s is not None for s in selected):
        result.selected_epoch = selected[0] if cfg.ensemble == 1 else selected
    return result


def _train_member(
    Xs,
    y_t,
    X,
    y,
    groups,
    fit_idx,
    val_idx,
    pipeline,
    loss_fn,
    cfg: Config,
    num_classes,
    seed: int,
    rng: np.random.Generator,
    device,
    observer,
    on_epoch,
    member,
):
    """One network on the fit samples: AdamW, warm-up + cosine, optional mixup and epoch
    selection on the validation subjects. Returns (model, history, selected epoch)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # (Module.to takes memory_format, which PyTorch's type stubs do not show)
    model = build_model(cfg, num_classes).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    n_batches = max(1, math.ceil(len(fit_idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, n_batches))
    swa_from = cfg.epochs - cfg.swa_epochs + 1  # first epoch whose weights are averaged
    swa = torch.optim.swa_utils.AveragedModel(model) if cfg.swa_epochs else None
    augment = {"hflip_p": cfg.hflip, "rotate": cfg.rotate, "scale": cfg.scale, "translate": cfg.translate}
    amp = cfg.amp and device.type == "cuda"

    history, best, selected = [], (-1.0, None), None
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(fit_idx)
        # near-equal batches: never a 1-sample batch for BatchNorm
        total_loss, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        for b in np.array_split(order, n_batches):
            xb = pipeline(Xs[b], augment, gen, None if groups is None else groups[b])
            yb = y_t[b]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if cfg.mixup > 0:
                    lam = float(rng.beta(cfg.mixup, cfg.mixup))
                    perm = torch.from_numpy(rng.permutation(len(b))).to(device)
                    logits = model(lam * xb + (1 - lam) * xb[perm])
                    loss = lam * loss_fn(logits, yb) + (1 - lam) * loss_fn(logits, yb[perm])
                else:
                    loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach().double() * len(b)  # no GPU sync per step
            seen += len(b)
        record = {
            "epoch": epoch,
            "loss": float(total_loss) / max(seen, 1),
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        if len(val_idx):
            pred = predict_proba(
                model, pipeline, X[val_idx], groups=None if groups is None else groups[val_idx]
            ).argmax(1)
            record["val_uf1"] = scores(y[val_idx], pred, num_classes)["uf1"]
            if record["val_uf1"] > best[0]:
                best = (record["val_uf1"], copy.deepcopy(model.state_dict()))
                selected = epoch
        if swa is not None and epoch >= swa_from:
            swa.update_parameters(model)
        if member is not None:
            record["member"] = member
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if observer is not None:
            observer(epoch, lambda Xo, groups=None: predict_proba(model, pipeline, Xo, groups=groups))
    if best[1] is not None:
        model.load_state_dict(best[1])
    if swa is not None:  # the averaged weights, with BatchNorm statistics recomputed for them
        model.load_state_dict(swa.module.state_dict())
        refresh_batchnorm(
            model, pipeline, Xs[fit_idx], cfg.batch_size, None if groups is None else groups[fit_idx]
        )
    model.eval()
    return model, history, selected


def lr_schedule(cfg: Config, n_batches: int) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up, then a cosine to 0; with
    ``swa_epochs`` the cosine ends at ``swa_lr`` where the constant averaging tail starts."""
    total = (cfg.epochs - cfg.swa_epochs) * n_batches
    warm = min(cfg.warmup_epochs * n_batches, total - 1)
    floor = cfg.swa_lr if cfg.swa_epochs else 0.0

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / (warm + 1)
        if s >= total:
            return floor
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    return factor


@torch.no_grad()
def refresh_batchnorm(
    model: torch.nn.Module, pipeline: InputPipeline, Xs: torch.Tensor, batch_size: int, groups=None
) -> None:
    """Recompute BatchNorm running statistics with one pass over (training) inputs, without
    augmentation: averaged weights need statistics of their own."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    moments = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    for i in range(0, len(Xs), batch_size):
        g = None if groups is None else groups[i : i + batch_size]
        model(pipeline(Xs[i : i + batch_size], groups=g))
    for m, mom in zip(bns, moments):
        m.momentum = mom
