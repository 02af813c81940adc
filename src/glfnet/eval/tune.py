"""Nested leak-free selection (``glfnet tune``): for every outer fold, a recipe of a menu
(:mod:`glfnet.eval.menu`) is chosen by an inner cross-validation over that fold's *training
subjects only*; the chosen recipe then trains on all of them and predicts the held-out subject
once. Scikit-learn users know the shape: ``GridSearchCV`` inside ``cross_val_score``
(Varma & Simon, "Bias in error estimation when using cross-validation for model selection",
BMC Bioinformatics 2006). The outer predictions are scored like any ``glfnet loso`` run.

**Inner folds.** For each seed the subjects are dealt, database by database in a seeded order,
into K groups P_1..P_K (every database is in every group where it has K subjects or more).
For an outer fold whose held-out subjects are S, inner fold k trains on every subject except
S and P_k and is scored on P_k minus S. Under LOSO the held-out subject lies in one group P_j,
so inner fold j trains on all subjects but P_j: the same training for every outer fold whose
subject is in P_j, trained once and shared (``g<j>``); the other K-1 inner trainings are the
fold's own (``<fold>.g<k>``). S is in no inner training set, by construction and by check;
the inner scores use no sample of S.

**Scoring and the rule.** A recipe's inner predictions are pooled over the inner folds and
scored (UF1, UAR); an averaging recipe averages its parts' inner probabilities. Rule
``one-se`` (the default): the best inner UF1 and every recipe below it by no more than the
standard error of the difference (a paired bootstrap over the training subjects,
:data:`BOOTSTRAP_DRAWS` draws) are near-ties; of them the cheapest to train
(:func:`~glfnet.eval.menu.training_cost`) is chosen, menu order breaking exact ties (the
one-standard-error rule of Breiman, Friedman, Olshen & Stone, with a paired error). Rule
``best``: the highest inner UF1, menu order breaking exact ties.

**Final.** The chosen recipe -- its networks as configured, ensemble included -- trains on all
of the fold's training subjects with the fold's own seed (so its predictions equal that
recipe's ``glfnet loso`` fold) and predicts the held-out subject once.

Every training is a unit of work for :func:`glfnet.eval.backends.run_units` (local workers or
Ray); each finished one is written at once, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import time
import typing
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from glfnet import io, removed
from glfnet._version import __version__
from glfnet.config import Config, Rule, dump_yaml
from glfnet.data.digest import data_digest
from glfnet.data.flowsets import FlowSet
from glfnet.errors import ConfigError, DataError
from glfnet.eval.backends import n_workers, run_units
from glfnet.eval.menu import Menu, training_cost
from glfnet.eval.rundir import ANOTHER_OUT, FoldRecord, Metrics, RunDir, Throughput
from glfnet.eval.runner import _Clock, run_folds, write_results
from glfnet.eval.splits import Fold, make_folds, subject_keys
from glfnet.metrics import scores, uf1_uar
from glfnet.models.registry import preset_revision
from glfnet.train.fold import fold_data
from glfnet.train.loop import Job
from glfnet.train.single import SingleStepper
from glfnet.train.trainer import FoldInput, determinism, fold_seed, one_thread_on_cpu, train_folds

RULES: tuple[str, ...] = typing.get_args(Rule)
BOOTSTRAP_DRAWS = 1000
TUNE_MODEL = "tune"  # what metrics.json names as the model of a tune run

Progress = Callable[[int, int, str], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class TuneSettings:
    """How recipes are chosen: ``inner_folds`` K, networks per inner training
    (``inner_ensemble``; 0 = as the recipe says) and the ``rule``."""

    inner_folds: int = 2
    inner_ensemble: int = 1
    rule: Rule = "one-se"

    def validate(self) -> TuneSettings:
        if self.rule not in RULES:
            raise ConfigError(f"`rule`: {self.rule!r} is not allowed; choose {' | '.join(RULES)}")
        if int(self.inner_folds) < 2:
            raise ConfigError(f"`inner_folds` must be at least 2, got {self.inner_folds}")
        if int(self.inner_ensemble) < 0:
            raise ConfigError(
                "`inner_ensemble` must be 0 (each recipe's own) or a number of networks, "
                f"got {self.inner_ensemble}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"inner_folds": self.inner_folds, "inner_ensemble": self.inner_ensemble, "rule": self.rule}

    def inner_config(self, cfg: Config) -> Config:
        """A recipe's configuration for its inner trainings (fewer networks where asked)."""
        if self.inner_ensemble and cfg.ensemble > self.inner_ensemble:
            return cfg.replace(ensemble=int(self.inner_ensemble))
        return cfg


# --------------------------------------------------------------------------- inner folds


def inner_groups(samples: pd.DataFrame, k: int, seed: int) -> dict[str, int]:
    """Every subject's inner group (0..k-1): each database's subjects in a seeded order, dealt
    in turn, the turn carried from one database to the next so the groups stay even. A
    function of the subject names and the seed only."""
    keys = subject_keys(samples)
    db = samples["database"].astype(str).to_numpy()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E57]))
    out: dict[str, int] = {}
    turn = 0
    for name in sorted(set(db)):
        for s in rng.permutation(sorted(set(keys[db == name]))):
            out[str(s)] = turn % k
            turn += 1
    return out


@dataclass(frozen=True, eq=False)
class InnerSplit:
    """One inner fold of an outer fold: the training rows, the rows that training predicts
    (``test_idx``) and the rows of them this outer fold scores (``use_idx``: never a held-out
    row). ``name`` is ``g<k>`` for a training shared by every outer fold whose held-out
    subjects all lie in group k, ``<fold>.g<k>`` for the fold's own."""

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    use_idx: np.ndarray


def inner_splits(samples: pd.DataFrame, fold: Fold, groups: dict[str, int], k: int) -> list[InnerSplit]:
    """The inner folds of ``fold`` (module docstring); checked: no held-out row in any
    training or scored set."""
    keys = subject_keys(samples)
    held = np.zeros(len(keys), bool)
    held[fold.test_idx] = True
    gid = np.array([groups[s] for s in keys])
    out = []
    for g in range(k):
        in_g = gid == g
        use = np.flatnonzero(in_g & ~held)
        if not len(use):
            continue
        train = np.flatnonzero(~in_g & ~held)
        if not (held & ~in_g).any():  # every held-out row in this group: the shared training
            out.append(InnerSplit(f"g{g}", train, np.flatnonzero(in_g), use))
        else:
            out.append(InnerSplit(f"{fold.name}.g{g}", train, use, use))
    if len(out) < 2:
        raise DataError(
            f"fold {fold.name}: its training subjects fill {len(out)} inner fold(s); nested selection "
            f"needs at least 2 (the set has too few subjects for `inner_folds` {k})"
        )
    for s in out:
        if held[s.train_idx].any() or held[s.use_idx].any():
            raise AssertionError(f"fold {fold.name}: held-out rows in inner fold {s.name}")
        if len(s.train_idx) < 2:
            raise DataError(
                f"fold {fold.name}: inner fold {s.name} has {len(s.train_idx)} training sample(s); "
                f"the set has too few subjects for `inner_folds` {k}"
            )
    return out


# --------------------------------------------------------------------------- units of work


@dataclass(frozen=True, eq=False)
class InnerJob:
    """One inner training: a trained recipe on an inner fold's training rows."""

    seed: int
    recipe: str
    split: InnerSplit
    cfg: Config

    @property
    def key(self) -> tuple[int, str, str]:
        return self.seed, self.recipe, self.split.name

    @property
    def label(self) -> str:
        return f"seed {self.seed} {self.recipe} inner {self.split.name}"


@dataclass(frozen=True, eq=False)
class FinalJob:
    """One final training: a trained recipe (the chosen one, or a part of it) on all of the
    outer fold's training subjects."""

    seed: int
    recipe: str
    fold: Fold
    cfg: Config

    @property
    def label(self) -> str:
        return f"seed {self.seed} fold {self.fold.name} {self.recipe}"


@dataclass
class InnerResult:
    """What an inner training predicts: its test rows' ids and class probabilities."""

    seed: int
    recipe: str
    name: str
    train_subjects: list[str]
    test_ids: list[str]
    probs: list[list[float]]
    seconds: float = 0.0
    sample_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InnerResult:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class FinalResult:
    job: FinalJob
    record: FoldRecord


def train_tune_unit(fs: FlowSet, cfg: Config, unit: Sequence[InnerJob | FinalJob]) -> list[Any]:
    """Train a unit of ``glfnet tune``'s work in this process, single-threaded on CPU; what
    every backend runs. Reads nothing but its arguments, writes nothing."""
    out: list[Any] = []
    with one_thread_on_cpu(cfg.device), determinism(cfg.device):
        for job in unit:
            out.append(train_inner(fs, job) if isinstance(job, InnerJob) else train_final(fs, job))
    return out


def train_inner(fs: FlowSet, job: InnerJob) -> InnerResult:
    """Train ``job``'s recipe on its inner training rows only; predict its test rows."""
    t0 = time.perf_counter()
    db = fs.samples["database"].to_numpy().astype(str)
    subjects = fs.samples["subject"].to_numpy()
    tr, te = job.split.train_idx, job.split.test_idx
    seed = fold_seed(job.seed, f"inner/{job.split.name}")  # the same for every recipe
    f = FoldInput(fs.X[tr], fs.y[tr], subjects[tr], len(fs.classes), fs.encoding, seed, db[tr])
    (trained,) = train_folds([f], job.cfg)
    probs = trained.predict_proba(fs.X[te], groups=db[te])
    return InnerResult(
        seed=job.seed,
        recipe=job.recipe,
        name=job.split.name,
        train_subjects=sorted(set(subject_keys(fs.samples)[tr])),
        test_ids=fs.samples["sample_id"].iloc[te].tolist(),
        probs=np.round(probs, 6).tolist(),
        seconds=time.perf_counter() - t0,
        sample_steps=len(tr) * job.cfg.epochs * job.cfg.ensemble,
    )


def train_final(fs: FlowSet, job: FinalJob) -> FinalResult:
    """Train ``job``'s recipe on the outer fold's training rows; predict its held-out rows once."""
    ((rec, _),) = run_folds(fs, [(job.seed, job.fold)], job.cfg)
    return FinalResult(job, rec)


# --------------------------------------------------------------------------- scoring, choosing


def inner_table(
    fs: FlowSet,
    fold: Fold,
    splits: list[InnerSplit],
    results: dict[tuple[str, str], InnerResult],
    menu: Menu,
    settings: TuneSettings,
    seed: int,
) -> list[dict[str, Any]]:
    """Every recipe's pooled inner scores for ``fold`` and the rule's choice: one row per
    recipe (menu order) with ``uf1``, ``uar``, ``gap`` (to the best), ``se`` (of that gap),
    ``cost``, ``near_tie`` and ``chosen``. ``results`` are keyed (recipe, inner fold name)."""
    rows = np.concatenate([s.use_idx for s in splits])
    ids = fs.samples["sample_id"].to_numpy()
    probs: dict[str, np.ndarray] = {}
    for r in menu.trained():
        p = np.zeros((len(rows), len(fs.classes)))
        at = 0
        for s in splits:
            res = results[(r.name, s.name)]
            pos = {sid: i for i, sid in enumerate(res.test_ids)}
            block = np.asarray(res.probs)
            p[at : at + len(s.use_idx)] = block[[pos[sid] for sid in ids[s.use_idx]]]
            at += len(s.use_idx)
        probs[r.name] = p
    for r in menu.recipes:
        if not r.trained:
            probs[r.name] = np.mean([probs[p] for p in r.average], axis=0)
    y = fs.y[rows]
    preds = {name: p.argmax(1) for name, p in probs.items()}
    table = []
    for r in menu.recipes:
        sc = scores(y, preds[r.name], len(fs.classes))
        cost = sum(training_cost(p.config) for p in menu.parts(r.name) if p.config is not None)
        table.append({"recipe": r.name, "uf1": sc["uf1"], "uar": sc["uar"], "cost": round(cost, 6)})
    best = max(table, key=lambda t: t["uf1"])  # the first best in menu order
    draw_seed = np.random.SeedSequence([int(seed), zlib.crc32(fold.name.encode()), 0xB007])
    rng = np.random.default_rng(draw_seed)
    se = paired_se(y, preds, subject_keys(fs.samples)[rows], best["recipe"], len(fs.classes), rng)
    for t in table:
        t["gap"] = best["uf1"] - t["uf1"]
        t["se"] = se[t["recipe"]]
        t["near_tie"] = t["gap"] <= t["se"]
    chosen = choose(table, settings.rule)
    for t in table:
        t["chosen"] = t["recipe"] == chosen
    return table


def paired_se(
    y: np.ndarray,
    preds: dict[str, np.ndarray],
    subjects: np.ndarray,
    best: str,
    num_classes: int,
    rng: np.random.Generator,
    draws: int = BOOTSTRAP_DRAWS,
) -> dict[str, float]:
    """The standard error of UF1(best) - UF1(r) for every recipe r, from a paired bootstrap
    over subjects (the unit that is sampled: a subject's samples move together); 0 for the
    best itself."""
    subs, inv = np.unique(subjects, return_inverse=True)
    n = len(subs)
    weights = np.zeros((draws, n))
    np.add.at(weights, (np.repeat(np.arange(draws), n), rng.integers(0, n, draws * n)), 1)

    def boot(pred: np.ndarray) -> np.ndarray:
        per_subject = np.zeros((n, num_classes, num_classes))
        np.add.at(per_subject, (inv, y, pred), 1)
        cm = (weights @ per_subject.reshape(n, -1)).reshape(draws, num_classes, num_classes)
        return uf1_uar(cm)[0]

    top = boot(preds[best])
    return {name: float(np.std(top - boot(p), ddof=1)) if name != best else 0.0 for name, p in preds.items()}


def choose(table: list[dict[str, Any]], rule: str) -> str:
    """The recipe ``rule`` picks from an :func:`inner_table` (module docstring)."""
    if rule == "best":
        return max(table, key=lambda t: t["uf1"])["recipe"]  # max keeps the first of equals
    ties = [t for t in table if t["near_tie"]]
    return min(ties, key=lambda t: t["cost"])["recipe"]  # min keeps the first of equals


def merge_parts(records: list[FoldRecord], recipes: list[str]) -> FoldRecord:
    """One fold record from the final records of an averaged recipe's parts: probabilities
    averaged, histories joined (each row marked with its ``recipe``), the first part's
    statistics and attention maps."""
    first = records[0]
    mean: np.ndarray = np.mean([np.asarray(r.probs) for r in records], axis=0)
    history = [{**h, "recipe": name} for r, name in zip(records, recipes) for h in r.history]
    rec = FoldRecord(**{**first.__dict__, "history": history})
    rec.probs = np.round(mean, 6).tolist()
    rec.pred = mean.argmax(1).tolist()
    rec.seconds = sum(r.seconds for r in records)
    return rec


def _chosen(table: list[dict[str, Any]]) -> str:
    return next(row["recipe"] for row in table if row["chosen"])


def selection_record(
    table: list[dict[str, Any]], settings: TuneSettings, splits: list[InnerSplit]
) -> dict[str, Any]:
    """What a tune fold's record keeps of its selection: the chosen recipe, the rule, the
    inner folds and the inner table."""
    return {
        "chosen": _chosen(table),
        "rule": settings.rule,
        "inner_folds": [s.name for s in splits],
        "inner": [{k: _plain(v) for k, v in row.items()} for row in table],
    }


# --------------------------------------------------------------------------- the run


def _inner_path(rd: RunDir, seed: int, recipe: str, name: str) -> Path:
    return rd.inner_dir / f"seed{seed}" / recipe / f"{name}.json"


def _part_path(rd: RunDir, seed: int, fold: str, recipe: str) -> Path:
    return rd.inner_dir / f"seed{seed}" / "parts" / f"{fold}.{recipe}.json"


def _read_json(p: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tune_record(settings: TuneSettings, menu: Menu) -> dict[str, Any]:
    """What config.yaml records of a tune run beside the base configuration: the settings,
    the menu and each trained recipe's preset revision."""
    revisions = {r.name: preset_revision(r.config.model) for r in menu.trained() if r.config is not None}
    return {**settings.to_dict(), "menu": menu.to_dict()["recipes"], "revisions": revisions}


def _prepare_out(
    rd: RunDir, base: Config, menu: Menu, settings: TuneSettings, fs: FlowSet, overwrite: bool
) -> None:
    """Refuse a folder holding another run (unless ``overwrite``: then forget its progress);
    write config.yaml."""
    digest = data_digest(fs)
    tune = tune_record(settings, menu)
    old = None
    if rd.config_path.exists() and not overwrite:
        old = removed.config_options(rd.read_config(), str(rd.config_path))
    if old is not None:
        diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in base.fingerprint().items() if old.get(k) != v]
        if old.get("tune") != tune:
            diff.append("the menu or the tune settings differ" if old.get("tune") else "it is not a tune run")
        if old.get("data_digest") not in (None, digest):
            diff.append("the input data differ")
        if diff:
            raise ConfigError(
                f"{rd.path} holds a run with a different configuration ({'; '.join(diff)}). "
                "Use another `out`, or `overwrite` to discard the old results."
            )
    if overwrite and rd.path.exists():
        rd.discard_progress()
    extra = {
        "data": fs.source,
        "labels": fs.labels_path,
        "data_digest": digest,
        "glfnet_version": __version__,
    }
    rd.write_config(dump_yaml(base, {**extra, "tune": tune}))


@dataclass
class TunePlan:
    """What a tune run will train: per trained recipe its inner trainings (all, still to do),
    training sample-steps to do and estimated seconds; the final trainings still to do and the
    range of their estimated seconds (the choices decide); workers."""

    recipes: list[dict[str, Any]]
    finals_todo: int
    final_seconds: tuple[float, float]
    workers: int
    folds: int
    seeds: list[int] = field(default_factory=list)

    @property
    def inner_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.recipes))


class _Tune:
    """One ``glfnet tune`` run: its folds, inner splits, jobs and what is already on disk."""

    def __init__(self, fs: FlowSet, base: Config, menu: Menu, settings: TuneSettings, out: Path) -> None:
        self.fs, self.base, self.menu, self.settings = fs, base, menu, settings
        self.rd = RunDir(out)
        self.folds = make_folds(fs.samples, base.protocol)
        k = int(settings.inner_folds)
        self.splits: dict[tuple[int, str], list[InnerSplit]] = {}
        for seed in base.seeds:
            groups = inner_groups(fs.samples, k, seed)
            for fold in self.folds:
                self.splits[(seed, fold.name)] = inner_splits(fs.samples, fold, groups, k)
        self.configs = {r.name: r.config for r in menu.trained() if r.config is not None}

    def done_folds(self) -> dict[tuple[int, str], FoldRecord]:
        done = {}
        for seed in self.base.seeds:
            for fold in self.folds:
                rec = self.rd.read_fold(seed, fold.name)
                ids = self.fs.samples["sample_id"].iloc[fold.test_idx].tolist()
                if rec is not None and rec.selection and rec.test_ids == ids:
                    done[(seed, fold.name)] = rec
        return done

    def inner_jobs(self, folds: list[tuple[int, Fold]]) -> list[InnerJob]:
        """The inner trainings ``folds`` need, each once, in seed, recipe, fold order."""
        jobs: dict[tuple[int, str, str], InnerJob] = {}
        for seed, fold in folds:
            for r in self.menu.trained():
                cfg = self.settings.inner_config(self.configs[r.name])
                for s in self.splits[(seed, fold.name)]:
                    jobs.setdefault((seed, r.name, s.name), InnerJob(seed, r.name, s, cfg))
        return list(jobs.values())

    def read_inner(self, job: InnerJob) -> InnerResult | None:
        d = _read_json(_inner_path(self.rd, *job.key))
        if d is None:
            return None
        res = InnerResult.from_dict(d)
        ids = self.fs.samples["sample_id"].iloc[job.split.test_idx].tolist()
        return res if res.test_ids == ids and len(res.probs) == len(ids) else None

    def final_steps(self, recipe: str, fold: Fold) -> int:
        """Training sample-steps of a trained recipe's final training for ``fold``."""
        cfg = self.configs[recipe]
        return len(fold.train_idx) * cfg.epochs * cfg.ensemble


def plan_tune(fs: FlowSet, base: Config, menu: Menu, settings: TuneSettings, out: str | Path) -> TunePlan:
    """The work a tune run into ``out`` has left, and its estimated time on this machine
    (from timing a few training steps of each recipe's network: :func:`step_seconds`)."""
    t = _Tune(fs, base, menu, settings.validate(), Path(out))
    done = t.done_folds() if t.rd.config_path.exists() else {}
    todo = [(s, f) for s in base.seeds for f in t.folds if (s, f.name) not in done]
    jobs = t.inner_jobs(todo)
    left = [j for j in jobs if t.read_inner(j) is None] if t.rd.inner_dir.exists() else jobs
    left_keys = {j.key for j in left}
    workers = n_workers(base, max(len(left), 1))
    rate = {name: step_seconds(cfg, fs) for name, cfg in t.configs.items()}
    rows = []
    for r in menu.trained():
        mine = [j for j in jobs if j.recipe == r.name]
        steps = sum(
            len(j.split.train_idx) * j.cfg.epochs * j.cfg.ensemble for j in mine if j.key in left_keys
        )
        rows.append(
            {
                "recipe": r.name,
                "trainings": len(mine),
                "todo": sum(1 for j in mine if j.key in left_keys),
                "networks": mine[0].cfg.ensemble if mine else 0,
                "sample_steps": steps,
                "seconds": steps * rate[r.name] / workers,
            }
        )
    finals = [
        sum(t.final_steps(p.name, f) * rate[p.name] for p in menu.parts(r.name) for _, f in todo) / workers
        for r in menu.recipes
    ]
    return TunePlan(rows, len(todo), (min(finals), max(finals)), workers, len(t.folds), list(base.seeds))


# measured (composite, AMD EPYC, 2026-12-07): a fold takes 1.1-1.2x its steps' time for
# glfnet_t and 1.6x for ststnet (BatchNorm refresh, prediction: fixed costs of a small
# network), and two fold workers side by side each run about 1.15x slower than one alone
_OVERHEAD = 1.3


def step_seconds(cfg: Config, fs: FlowSet, steps: int = 5) -> float:
    """Seconds per training sample of ``cfg``'s network on this machine: the median of
    ``steps`` steps of the training loop's own stepper on one batch of ``fs`` (augmentation
    included; after two untimed), single-threaded on the CPU as a fold worker trains, times
    the overhead a real fold adds. For the cost plan only: it draws from a forked random state
    and changes nothing."""
    n = min(len(fs), cfg.batch_size)
    db = fs.samples["database"].to_numpy()[:n]
    with torch.random.fork_rng(devices=[]), one_thread_on_cpu(cfg.device):
        device = torch.device(cfg.device)
        data = fold_data(fs.X[:n], fs.y[:n], np.ones(n, bool), db, cfg, len(fs.classes), fs.encoding, device)
        stepper = SingleStepper(Job(0, data, 0, np.random.default_rng(0), None, None), cfg)
        rows: list[np.ndarray | None] = [np.arange(n)]
        times = []
        for _ in range(steps + 2):
            t0 = time.perf_counter()
            stepper.step(rows, [cfg.lr])
            times.append(time.perf_counter() - t0)
    return float(np.median(times[2:])) / n * _OVERHEAD


def run_tune(
    fs: FlowSet,
    base: Config,
    menu: Menu,
    settings: TuneSettings,
    out: str | Path,
    overwrite: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Metrics:
    """Nested selection over ``base.seeds`` (module docstring): write the run directory and
    return its metrics. ``progress(done, total, label)`` counts trainings (inner and final;
    ``label`` ``"starting"`` first, with the trainings an earlier invocation finished);
    ``log(text)`` gets one line per outer fold finished. The run holds ``out``'s lock
    (:meth:`~glfnet.eval.rundir.RunDir.hold`) throughout."""
    base.validate()
    settings.validate()
    unsupported = [k for k in ("oracle", "save_checkpoints") if getattr(base, k)]
    if unsupported:  # the finals train without them: refused rather than silently dropped
        raise ConfigError(
            f"the configuration sets {' and '.join(repr(k) for k in unsupported)}, which a tune run "
            "does not write (the oracle figure and checkpoints belong to `glfnet loso`): remove "
            "them from the --config file"
        )
    t = _Tune(fs, base, menu, settings, Path(out))
    with t.rd.hold(ANOTHER_OUT):  # one writer: a second run into ``out`` is refused at once
        return _run_tune(t, overwrite, progress, log)


def _run_tune(t: _Tune, overwrite: bool, progress: Progress | None, log: Log | None) -> Metrics:
    fs, base, menu, settings, rd = t.fs, t.base, t.menu, t.settings, t.rd
    _prepare_out(rd, base, menu, settings, fs, overwrite)
    clock = _Clock(rd)
    records = t.done_folds()
    todo = [(s, f) for s in base.seeds for f in t.folds if (s, f.name) not in records]
    jobs = t.inner_jobs(todo)
    inner: dict[tuple[int, str, str], InnerResult] = {}
    for job in jobs:
        res = t.read_inner(job)
        if res is not None:
            inner[job.key] = res
    total = len(jobs) + len(base.seeds) * len(t.folds)
    count = [len(inner) + len(records)]
    if progress:
        progress(count[0], total, "starting")
    trained: list[tuple[str, int]] = []  # (kind, sample-steps) of this invocation's trainings

    def tick(label: str) -> None:
        count[0] += 1
        clock.save()
        if progress:
            progress(count[0], total, label)

    def inner_done(res: InnerResult) -> None:
        io.write_json(_inner_path(rd, res.seed, res.recipe, res.name), res.to_dict())
        inner[(res.seed, res.recipe, res.name)] = res
        trained.append(("inner", res.sample_steps))
        tick(f"seed {res.seed} {res.recipe} inner {res.name}")

    left = [[j] for j in jobs if j.key not in inner]
    workers = run_units(fs, base, left, train_tune_unit, inner_done)

    # choices, then the chosen recipes' final trainings (an average's parts one by one)
    chosen: dict[tuple[int, str], str] = {}
    tables: dict[tuple[int, str], list[dict[str, Any]]] = {}
    parts: dict[tuple[int, str], dict[str, FoldRecord]] = {}
    finals: list[list[FinalJob]] = []
    for seed, fold in todo:
        key = (seed, fold.name)
        results = {(r, name): res for (s, r, name), res in inner.items() if s == seed}
        tables[key] = inner_table(fs, fold, t.splits[key], results, menu, settings, seed)
        chosen[key] = _chosen(tables[key])
        names = [p.name for p in menu.parts(chosen[key])]
        parts[key] = {}
        for name in names:
            d = _read_json(_part_path(rd, seed, fold.name, name)) if len(names) > 1 else None
            if d is not None:
                parts[key][name] = FoldRecord.from_dict(d)
            else:
                finals.append([FinalJob(seed, name, fold, t.configs[name])])

    def finish(key: tuple[int, str]) -> None:
        """The fold's record once every part of its chosen recipe has trained."""
        names = [p.name for p in menu.parts(chosen[key])]
        have = parts[key]
        if set(have) < set(names):
            return
        rec = merge_parts([have[n] for n in names], names) if len(names) > 1 else have[names[0]]
        rec.selection = selection_record(tables[key], settings, t.splits[key])
        rd.write_fold(rec)
        records[key] = rec
        if log:
            row = next(r for r in tables[key] if r["chosen"])
            log(
                f"seed {key[0]} fold {key[1]}: chose {chosen[key]} (inner UF1 {row['uf1']:.3f}), "
                f"accuracy {rec.accuracy:.2f}"
            )
        tick(f"seed {key[0]} fold {key[1]}")

    def final_done(res: FinalResult) -> None:
        job = res.job
        key = (job.seed, job.fold.name)
        trained.append(("final", t.final_steps(job.recipe, job.fold)))
        parts[key][job.recipe] = res.record
        if len(menu.parts(chosen[key])) > 1:
            io.write_json(_part_path(rd, job.seed, job.fold.name, job.recipe), res.record.to_dict())
        finish(key)

    for key in list(parts):  # folds whose parts an earlier invocation trained
        finish(key)
    workers = max(workers, run_units(fs, base, finals, train_tune_unit, final_done))
    ordered = [records[(s, f.name)] for s in base.seeds for f in t.folds]
    steps = sum(n for _, n in trained)
    throughput = Throughput(base.backend, workers, len(trained), time.perf_counter() - clock.t0, steps)
    write_selection(rd, ordered)
    summary = selection_summary(ordered, menu, settings)
    return write_results(fs, base, rd, ordered, t.folds, clock, throughput, TUNE_MODEL, summary)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def selection_frame(records: list[FoldRecord]) -> pd.DataFrame:
    """One row per (seed, fold, recipe): the inner scores and the choice (selection.csv)."""
    rows = [
        {"seed": r.seed, "fold": r.fold, "database": r.database, **row}
        for r in records
        if r.selection
        for row in r.selection["inner"]
    ]
    return pd.DataFrame(rows)


def write_selection(rd: RunDir, records: list[FoldRecord]) -> Path:
    return io.write_csv(rd.selection_path, selection_frame(records))


def selection_summary(records: list[FoldRecord], menu: Menu, settings: TuneSettings) -> dict[str, Any]:
    """metrics.json's ``selection``: the rule and settings, the menu, how often each recipe
    was chosen (all seeds; per seed; per held-out database) and its mean inner UF1."""
    chosen = [r.selection["chosen"] for r in records if r.selection]
    per_seed: dict[str, dict[str, int]] = {}
    per_db: dict[str, dict[str, int]] = {}
    for r in records:
        if r.selection:
            c = r.selection["chosen"]
            per_seed.setdefault(str(r.seed), dict.fromkeys(menu.names, 0))[c] += 1
            per_db.setdefault(r.database, dict.fromkeys(menu.names, 0))[c] += 1
    frame = selection_frame(records)
    inner_uf1 = frame.groupby("recipe")["uf1"].mean().to_dict() if len(frame) else {}
    counts = Counter(chosen)
    return {
        **settings.to_dict(),
        "menu": menu.names,
        "menu_file": menu.source,
        "choices": {n: counts.get(n, 0) for n in menu.names},
        "choices_per_seed": per_seed,
        "choices_per_database": per_db,
        "inner_uf1": {n: float(inner_uf1[n]) for n in menu.names if n in inner_uf1},
    }
