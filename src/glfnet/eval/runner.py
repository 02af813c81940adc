"""Run a protocol (LOSO or LODO) over seeds: leak-free, resumable, atomically written.

For each (seed, fold): :func:`glfnet.train.trainer.train_folds` gets the fold's training
samples only; the trained model then predicts the test samples once. With ``oracle`` the
test fold is also scored after every epoch by an observer that cannot influence training,
and the per-fold best epoch on the test data gives the separately labelled oracle figures.

What is written where: :mod:`glfnet.eval.rundir` (the run directory, its typed
:class:`~glfnet.eval.rundir.FoldRecord` and :class:`~glfnet.eval.rundir.Metrics`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from glfnet import checkpoint, removed
from glfnet._version import __version__
from glfnet.config import Config, dump_yaml
from glfnet.data.digest import data_digest
from glfnet.data.flowsets import FlowSet
from glfnet.errors import ConfigError
from glfnet.eval.backends import Unit, run_units
from glfnet.eval.rundir import (
    ANOTHER_OUT,
    LABELS,
    NESTED_LABEL,
    FoldRecord,
    Metrics,
    RunDir,
    SeedScores,
    SubsetScores,
    Throughput,
)
from glfnet.eval.splits import Fold, make_folds
from glfnet.metrics import scores
from glfnet.models.registry import preset_revision
from glfnet.train.trainer import (
    FoldInput,
    TrainedFold,
    determinism,
    fold_seed,
    one_thread_on_cpu,
    train_folds,
)

Progress = Callable[[int, int, str], None]
Log = Callable[[str], None]


def machine_info(device: str) -> dict[str, Any]:
    """Platform, processor, threads, Python and PyTorch versions, device (and GPU name)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- run directory


def config_diff(out: Path, cfg: Config, digest: str) -> list[str]:
    """How the run in ``out`` differs from a run of ``cfg`` on the data whose
    :func:`~glfnet.data.digest.data_digest` is ``digest``, one line per setting (and one if
    the input data differ); empty when there is no run there or it matches, so its finished
    folds would be reused."""
    rd = RunDir(Path(out))
    if not rd.config_path.exists():
        return []
    old = removed.config_options(rd.read_config(), str(rd.config_path))
    diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in cfg.fingerprint().items() if old.get(k) != v]
    # a revised preset builds another network under the same name; runs written before
    # config.yaml recorded the revision were made with revision 1 (or, for glfnet_t, 2)
    revision = preset_revision(cfg.model)
    if old.get("model_revision", 1) != revision:
        diff.append(
            f"model revision: {cfg.model} {old.get('model_revision', 'not recorded')} -> {revision} "
            "(the preset's network changed since that run)"
        )
    if old.get("data_digest") not in (None, digest):
        diff.append("the input data differ")
    if old.get("tune"):  # its folds are the chosen recipes', not this configuration's
        diff.insert(0, "it is a `glfnet tune` run")
    return diff


def _prepare_out(rd: RunDir, cfg: Config, fs: FlowSet, overwrite: bool) -> None:
    """Refuse a directory that holds another run (unless ``overwrite``: then forget its
    folds); write this run's ``config.yaml``."""
    digest = data_digest(fs)
    if not overwrite:
        diff = config_diff(rd.path, cfg, digest)
        if diff:
            raise ConfigError(
                f"{rd.path} holds a run with a different configuration "
                f"({'; '.join(diff)}). Use another `out`, or `overwrite` to "
                "discard the old results."
            )
    if overwrite and rd.path.exists():
        rd.discard_progress()
    rd.write_config(
        dump_yaml(
            cfg,
            {
                "data": fs.source,
                "labels": fs.labels_path,
                "data_digest": digest,
                "model_revision": preset_revision(cfg.model),
                "glfnet_version": __version__,
            },
        )
    )


class _Clock:
    """The run's wall-clock time over all its invocations (a resumed run adds to the time of
    the killed one), saved after every finished fold."""

    def __init__(self, rd: RunDir) -> None:
        self.rd = rd
        self.before = rd.read_elapsed()
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def save(self) -> None:
        self.rd.write_elapsed(self.seconds())


def _load_done(rd: RunDir, seed: int, fold: Fold, fs: FlowSet, cfg: Config) -> FoldRecord | None:
    """The fold's record if an earlier invocation finished it for these samples and settings."""
    rec = rd.read_fold(seed, fold.name)
    if rec is None or rec.test_ids != fs.samples["sample_id"].iloc[fold.test_idx].tolist():
        return None
    if cfg.oracle and rec.oracle_epoch_preds is None:
        return None
    if cfg.save_checkpoints and not rd.checkpoint_path(seed, fold.name).exists():
        return None
    return rec


# --------------------------------------------------------------------------- one fold


def run_fold(
    fs: FlowSet,
    fold: Fold,
    cfg: Config,
    seed: int,
    oracle: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[FoldRecord, TrainedFold]:
    """Train on the fold's training samples, then predict its test samples once."""
    return run_folds(fs, [(seed, fold)], cfg, oracle, on_epoch)[0]


def run_folds(
    fs: FlowSet,
    unit: Unit,
    cfg: Config,
    oracle: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[tuple[FoldRecord, TrainedFold]]:
    """Train each (seed, fold) of ``unit`` on its fold's training samples -- with
    ``cfg.fold_batch`` > 1 all of them at once as one batched network -- then predict each
    fold's test samples once. Training sees only :class:`FoldInput` (training rows); the
    test rows are read here, after training, and by the oracle's observer."""
    t0 = time.perf_counter()
    db = fs.samples["database"].to_numpy().astype(str)
    subjects = fs.samples["subject"].to_numpy()
    inputs, observers, epoch_probs = [], [], []
    for seed, fold in unit:
        tr, te = fold.train_idx, fold.test_idx
        inputs.append(
            FoldInput(
                fs.X[tr],
                fs.y[tr],
                subjects[tr],
                len(fs.classes),
                fs.encoding,
                fold_seed(seed, fold.name),
                db[tr],
            )
        )
        probs_by_epoch: dict[int, np.ndarray] = {}
        epoch_probs.append(probs_by_epoch)

        def observe(epoch, predict, member, te=te, store=probs_by_epoch):
            # oracle only: sees the test fold after each epoch, cannot touch training
            store[epoch] = store.get(epoch, 0) + predict(fs.X[te], groups=db[te])

        observers.append(observe if oracle else None)
    batch = cfg.fold_batch_size() * cfg.ensemble if len(unit) > 1 else cfg.fold_batch_size()
    trained = train_folds(inputs, cfg, observers, on_epoch, batch)
    seconds = (time.perf_counter() - t0) / len(unit)
    return [
        (_fold_record(fs, seed, fold, t, probs, oracle, seconds, db[fold.test_idx]), t)
        for (seed, fold), t, probs in zip(unit, trained, epoch_probs)
    ]


def _fold_record(
    fs: FlowSet,
    seed: int,
    fold: Fold,
    trained: TrainedFold,
    epoch_probs: dict[int, np.ndarray],
    oracle: bool,
    seconds: float,
    g_test: np.ndarray,
) -> FoldRecord:
    """Predict the fold's test samples (of databases ``g_test``) once with the trained model;
    its record."""
    tr, te = fold.train_idx, fold.test_idx
    probs = trained.predict_proba(fs.X[te], groups=g_test)
    rec = FoldRecord(
        seed=seed,
        fold=fold.name,
        database=fold.database,
        subject=fold.subject,
        n_train=int(len(tr)),
        train_subjects=sorted(set(fs.samples["subject"].iloc[tr])),
        test_ids=fs.samples["sample_id"].iloc[te].tolist(),
        y_true=fs.y[te].tolist(),
        probs=np.round(probs, 6).tolist(),
        pred=probs.argmax(1).tolist(),
        pipeline=trained.pipeline.state(),
        history=trained.history,
        selected_epoch=trained.selected_epoch,
        val_subjects=trained.val_subjects,
        oracle_epoch_preds=[epoch_probs[e].argmax(1).tolist() for e in sorted(epoch_probs)]
        if oracle
        else None,
        maps=explain(trained, fs.X[te], g_test),
    )
    rec.seconds = seconds
    return rec


@torch.no_grad()
def explain(
    trained: TrainedFold, X_test: np.ndarray, groups: np.ndarray | None = None
) -> dict[str, list] | None:
    """The finished model's ``attention_maps`` on the test samples (after training, so nothing
    flows back; without test-time flip: the maps of the image as it is), rounded to 5 decimals,
    as lists. For GLFNet: ``global`` (N, h, w), ``regions`` (N, 4) and ``fusion`` (N, 2); an
    ensemble shows its first member's. None for models without attention."""
    model, pipeline = trained.model, trained.pipeline
    attention_maps = getattr(model, "attention_maps", None)  # a registry model has it
    if not len(X_test) or attention_maps is None:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        xs = pipeline.prepare(torch.tensor(np.asarray(X_test), dtype=torch.float32).to(device))
        maps = attention_maps(pipeline(xs, groups=groups))
    finally:
        model.train(was_training)
    return {k: np.round(v.cpu().numpy(), 5).tolist() for k, v in maps.items()} or None


def oracle_pick(rec: FoldRecord) -> tuple[int, list[int]]:
    """HTNet-style: the epoch with the best accuracy on this fold's own test samples (first
    best on ties) and its predictions. Optimistic by construction."""
    y = np.asarray(rec.y_true)
    preds = rec.oracle_epoch_preds or []
    accs = [float(np.mean(np.asarray(p) == y)) for p in preds]
    best = int(np.argmax(accs))
    return best + 1, preds[best]


# --------------------------------------------------------------------------- aggregation


def _prediction_frame(fs: FlowSet, records: list[FoldRecord], oracle: bool) -> pd.DataFrame:
    meta = fs.samples.set_index("sample_id")
    rows = []
    for rec in records:
        preds = oracle_pick(rec)[1] if oracle else rec.pred
        for i, sid in enumerate(rec.test_ids):
            m = meta.loc[sid]
            row = {
                "database": m["database"],
                "subject": m["subject"],
                "clip": m["clip"],
                "sample_id": sid,
                "label": fs.classes[rec.y_true[i]],
                "prediction": fs.classes[preds[i]],
            }
            if not oracle:
                row.update({f"prob_{c}": rec.probs[i][k] for k, c in enumerate(fs.classes)})
            row.update({"seed": rec.seed, "fold": rec.fold})
            if rec.selection:  # glfnet tune: the recipe chosen for the fold
                row["recipe"] = rec.selection["chosen"]
            rows.append(row)
    return pd.DataFrame(rows)


def _subset_scores(part: pd.DataFrame, classes: Sequence[str], seeds: Sequence[int]) -> SubsetScores:
    """Pooled scores of one subset's predictions per seed; means, sample std (ddof=1; None
    for one seed), per-class means and the confusion matrix summed over seeds."""
    index = {c: i for i, c in enumerate(classes)}
    per_seed = []
    for seed in seeds:
        p = part[part["seed"] == seed]
        per_seed.append(scores(p["label"].map(index), p["prediction"].map(index), len(classes)))

    def mean(key):
        return float(np.mean([r[key] for r in per_seed]))

    def std(key):
        return float(np.std([r[key] for r in per_seed], ddof=1)) if len(per_seed) > 1 else None

    def class_mean(key):
        cols = list(zip(*[r[key] for r in per_seed]))
        return [None if any(v is None for v in col) else float(np.mean(col)) for col in cols]

    return SubsetScores(
        uf1=mean("uf1"),
        uar=mean("uar"),
        acc=mean("acc"),
        n=per_seed[0]["n"],
        uf1_std=std("uf1"),
        uar_std=std("uar"),
        acc_std=std("acc"),
        f1=class_mean("f1"),
        recall=class_mean("recall"),
        confusion=np.sum([r["confusion"] for r in per_seed], axis=0).tolist(),
        per_seed=[SeedScores(int(seed), r["uf1"], r["uar"], r["acc"]) for seed, r in zip(seeds, per_seed)],
    )


def summarise(pred: pd.DataFrame, classes: Sequence[str], seeds: Sequence[int]) -> dict[str, SubsetScores]:
    """Scores per subset ("full" and each database) on pooled predictions, mean +- std over
    seeds (sample std, ddof=1; None for one seed)."""
    subsets = ["full"] + sorted(pred["database"].unique())
    return {
        s: _subset_scores(pred if s == "full" else pred[pred["database"] == s], classes, seeds)
        for s in subsets
    }


def _megc_log(pred: pd.DataFrame, classes: Sequence[str], seed: int) -> str:
    index = {c: i for i, c in enumerate(classes)}
    lines = []
    p = pred[pred["seed"] == seed]
    for (db, subject), part in p.groupby(["database", "subject"], sort=True):
        lines.append(f"{db} {subject}")
        for _, r in part.iterrows():
            lines.append(f"{r['clip']} {index[r['label']]} {index[r['prediction']]}")
    return "\n".join(lines) + "\n"


def _train_log(records: list[FoldRecord]) -> pd.DataFrame:
    rows = [{"seed": r.seed, "fold": r.fold, **h} for r in records for h in r.history]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the run


@dataclass
class FoldResult:
    """What a unit of work sends back: the fold's record and, with ``save_checkpoints``, its
    weights (CPU tensors). The process that runs the protocol writes both, so a worker on
    another machine needs no access to the run directory and never leaves half a file."""

    record: FoldRecord
    weights: dict[str, torch.Tensor] | None = None


def train_unit(fs: FlowSet, cfg: Config, unit: Unit) -> list[FoldResult]:
    """Train one unit of work -- (seed, fold) pairs -- in this process, single-threaded on CPU,
    and return its results. What every backend runs (this process, worker processes, Ray
    tasks); it reads nothing but its arguments and writes nothing."""
    results = []
    with one_thread_on_cpu(cfg.device), determinism(cfg.device):
        for rec, trained in run_folds(fs, unit, cfg, oracle=cfg.oracle):
            weights = None
            if cfg.save_checkpoints:
                weights = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
            results.append(FoldResult(rec, weights))
    return results


def _save_result(rd: RunDir, fs: FlowSet, cfg: Config, result: FoldResult) -> None:
    """The fold's checkpoint (if kept), then its record: a record on disk means a finished
    fold, so the checkpoint is written first."""
    rec = result.record
    if result.weights is not None:
        checkpoint.save_state(
            rd.checkpoint_path(rec.seed, rec.fold),
            result.weights,
            {
                "config": cfg.to_dict(),
                "classes": list(fs.classes),
                "pipeline": rec.pipeline,
                "fold": rec.fold,
                "seed": rec.seed,
            },
        )
    rd.write_fold(rec)


def make_units(todo: list[tuple[int, Fold]], size: int) -> list[Unit]:
    """The ``todo`` (seed, fold) pairs in units of ``size``, in order."""
    return [todo[i : i + size] for i in range(0, len(todo), size)]


def _train_folds(
    fs: FlowSet, cfg: Config, out: Path, todo: list[tuple[int, Fold]], finished: Callable[[FoldRecord], None]
) -> int:
    """Train the ``todo`` (seed, fold) pairs on ``cfg``'s backend; save each fold's results
    here as they arrive and call ``finished(record)``. Returns the workers that trained at once."""
    rd = RunDir(out)

    def save(result: FoldResult) -> None:
        _save_result(rd, fs, cfg, result)
        finished(result.record)

    return run_units(fs, cfg, make_units(todo, cfg.fold_batch_size()), train_unit, save)


def run_protocol(
    fs: FlowSet,
    cfg: Config,
    out: str | Path,
    overwrite: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Metrics:
    """Run ``cfg.protocol`` for every seed, skipping finished folds; write the run directory
    and return its metrics. ``progress(done, total, label)`` and ``log(text)`` are optional:
    ``progress`` is called once with ``label`` ``"starting"``, where ``done`` counts the folds
    an earlier invocation finished (reused, not retrained), then after every fold trained;
    ``log`` gets one line per fold trained.

    On CPU every fold trains single-threaded, in ``n_workers`` processes at once: small
    models train faster as parallel single-threaded folds than as one multi-threaded fold,
    and a fold's result does not depend on ``jobs``. The run holds ``out``'s lock
    (:meth:`RunDir.hold`) throughout: a second writer gets :class:`~glfnet.errors.RunLockedError`.
    """
    rd = RunDir(out)
    cfg.validate()  # the device included
    with rd.hold(ANOTHER_OUT):  # one writer: a second run into ``out`` is refused at once
        return _run_protocol(fs, cfg, rd, overwrite, progress, log)


def _run_protocol(
    fs: FlowSet, cfg: Config, rd: RunDir, overwrite: bool, progress: Progress | None, log: Log | None
) -> Metrics:
    folds = make_folds(fs.samples, cfg.protocol)
    _prepare_out(rd, cfg, fs, overwrite)
    clock = _Clock(rd)
    jobs = [(seed, fold) for seed in cfg.seeds for fold in folds]
    records: dict[tuple[int, str], FoldRecord] = {}
    for seed, fold in jobs:
        rec = _load_done(rd, seed, fold, fs, cfg)
        if rec is not None:
            records[(seed, fold.name)] = rec
    if progress:  # done = the folds an earlier invocation finished (reused)
        progress(len(records), len(jobs), "starting")

    trained: list[FoldRecord] = []  # by this invocation

    def finished(rec: FoldRecord) -> None:
        records[(rec.seed, rec.fold)] = rec
        trained.append(rec)
        clock.save()
        label = f"seed {rec.seed} fold {rec.fold}"
        if log:
            n = len(rec.test_ids)
            log(
                f"{label}: {n} test {'sample' if n == 1 else 'samples'}, accuracy "
                f"{rec.accuracy:.2f}, {rec.seconds:.1f} s"
            )
        if progress:
            progress(len(records), len(jobs), label)

    todo = [(seed, fold) for seed, fold in jobs if (seed, fold.name) not in records]
    workers = _train_folds(fs, cfg, rd.path, todo, finished)
    ordered = [records[(seed, fold.name)] for seed, fold in jobs]
    throughput = _throughput(fs, cfg, folds, trained, workers, time.perf_counter() - clock.t0)
    return write_results(fs, cfg, rd, ordered, folds, clock, throughput)


def _throughput(
    fs: FlowSet, cfg: Config, folds: list[Fold], trained: list[FoldRecord], workers: int, seconds: float
) -> Throughput:
    """This invocation's training: the folds it trained, in ``seconds``, and their sample-steps
    (rows fitted -- the training rows less the validation subjects' -- x epochs x ensemble
    members: the fold's ``history`` has one row per epoch per member)."""
    subjects = fs.samples["subject"].to_numpy()
    train_idx = {f.name: f.train_idx for f in folds}
    steps = 0
    for rec in trained:
        held_out = int(np.isin(subjects[train_idx[rec.fold]], rec.val_subjects).sum())
        steps += (rec.n_train - held_out) * len(rec.history)
    return Throughput(cfg.backend, workers, len(trained), seconds, steps)


def write_results(
    fs: FlowSet,
    cfg: Config,
    rd: RunDir,
    records: list[FoldRecord],
    folds: list[Fold],
    clock: _Clock,
    throughput: Throughput | None = None,
    model: str | None = None,
    selection: dict[str, Any] | None = None,
) -> Metrics:
    """Predictions, MEGC logs, training log and metrics of the finished folds (``model`` names
    what was evaluated when it is not ``cfg.model``; ``selection``: what ``glfnet tune``
    chose)."""
    pred = _prediction_frame(fs, records, oracle=False)
    rd.write_predictions(pred)
    oracle = None
    if cfg.oracle:
        opred = _prediction_frame(fs, records, oracle=True)
        rd.write_predictions(opred, oracle=True)
        oracle = summarise(opred, fs.classes, cfg.seeds)
    else:
        rd.remove_oracle_predictions()
    for i, seed in enumerate(cfg.seeds):
        rd.write_megc_log(seed, i == 0, _megc_log(pred, fs.classes, seed))
    rd.write_train_log(_train_log(records))
    metrics = Metrics(
        protocol=cfg.protocol,
        model=model or cfg.model,
        seeds=list(cfg.seeds),
        classes=list(fs.classes),
        honest=summarise(pred, fs.classes, cfg.seeds),
        oracle=oracle,
        n_samples=int(len(fs)),
        n_folds=len(folds),
        wall_seconds=clock.seconds(),
        fold_seconds=float(sum(r.seconds for r in records)),
        throughput=throughput,
        labels={**LABELS, "honest": NESTED_LABEL} if selection else dict(LABELS),
        databases=sorted(fs.samples["database"].unique().tolist()),
        data=fs.source,
        config=cfg.to_dict(),
        machine=machine_info(cfg.device),
        glfnet_version=__version__,
        selection=selection,
    )
    rd.write_metrics(metrics)
    return metrics
