"""The run directory of :func:`glfnet.eval.runner.run_protocol`, for its writer and its readers.

Every file name is spelled here, once; the runner writes through :class:`RunDir`, reports and
comparisons (:mod:`glfnet.report`) read through it. Writes are atomic (:mod:`glfnet.io`)::

    config.yaml                 resolved configuration (+ data, labels, data_digest,
                                model_revision, glfnet_version)
    folds/seed<S>/<fold>.json   one finished fold (FoldRecord); a resumed run skips these
    checkpoints/seed<S>/<fold>.safetensors   with ``save_checkpoints``
    elapsed.json                the run's wall-clock seconds over all its invocations
    predictions.csv             database, subject, clip, sample_id, label, prediction, prob_*, seed, fold
    oracle_predictions.csv      the same for the oracle (only with ``oracle``)
    metrics.json                headline ("honest") and oracle scores, training throughput (Metrics)
    megc_log.txt                challenge format, first seed (megc_log_seed<S>.txt for the others)
    train_log.csv               seed, fold, epoch, loss, lr, seconds[, val_uf1][, member]
    selection.csv               ``glfnet tune``: seed, fold, recipe, inner scores, chosen
    inner/seed<S>/<recipe>/<training>.json   ``glfnet tune``: one finished inner training's
                                predictions; inner/seed<S>/parts/ the parts of an averaged
                                recipe's final model
    report.md, report.html, figures/   written by ``glfnet report``
    .glfnet.lock                while a process writes the folder: its pid, host, start time
                                and command (:mod:`glfnet.eval.runlock`); removed at its end

:class:`FoldRecord` and :class:`Metrics` read the JSON of earlier versions unchanged
(``from_dict``) and write the same JSON (``to_dict``), with two changes: a spread over a single
seed is ``null`` (none can be given), where earlier versions wrote ``0.0``; either reads as
``None``. ``metrics.json`` gained ``throughput`` (:class:`Throughput`), ``null`` for a file
that has none.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from glfnet import io
from glfnet.data.cache import is_cache
from glfnet.errors import GlfnetError
from glfnet.eval import runlock
from glfnet.eval.runlock import RunLock

CONFIG = "config.yaml"
FOLDS = "folds"
CHECKPOINTS = "checkpoints"
ELAPSED = "elapsed.json"
PREDICTIONS = "predictions.csv"
ORACLE_PREDICTIONS = "oracle_predictions.csv"
METRICS = "metrics.json"
TRAIN_LOG = "train_log.csv"
SELECTION = "selection.csv"
INNER = "inner"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES = "figures"
LOCK = ".glfnet.lock"  # a dot file: no glob or listing of results takes it for content

HONEST_LABEL = "leak-free: fixed schedule from the configuration; held-out data unseen until training ends"
NESTED_LABEL = (
    "leak-free: each fold's recipe chosen on its training subjects only (nested); held-out data "
    "unseen until training ends"
)
ORACLE_LABEL = "oracle (test-selected, optimistic)"
LABELS = {"honest": HONEST_LABEL, "oracle": ORACLE_LABEL}

# what a run refused by another writer of its folder can do besides waiting (RunDir.hold)
ANOTHER_OUT = "or write this run to another `out`"

SCORE_KEYS = ("uf1", "uar", "acc")
_REQUIRED = ("model", "protocol", "seeds", "honest", "classes")
_CSV_DTYPES = {"subject": str, "clip": str, "sample_id": str, "fold": str}


class RunDirError(GlfnetError):
    """A path that is not (or no longer) a complete glfnet run directory."""


# --------------------------------------------------------------------------- typed records


@dataclass
class FoldRecord:
    """One finished fold of one seed: what was trained on, what was predicted, how training
    went. ``oracle_epoch_preds`` (the test predictions after every epoch) only with an oracle;
    ``maps`` the model's attention on the test samples (see :func:`glfnet.eval.runner.explain`)."""

    seed: int
    fold: str
    database: str
    subject: str | None
    n_train: int
    train_subjects: list[str]
    test_ids: list[str]
    y_true: list[int]
    probs: list[list[float]]
    pred: list[int]
    pipeline: dict[str, Any]
    history: list[dict[str, Any]]
    selected_epoch: int | list[int | None] | None = None
    val_subjects: list[str] = field(default_factory=list)
    oracle_epoch_preds: list[list[int]] | None = None
    maps: dict[str, list] | None = None
    seconds: float = 0.0
    # ``glfnet tune``: the recipe chosen for this fold and the inner scores it was chosen on
    selection: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoldRecord:
        oracle = d.get("oracle")
        return cls(
            seed=int(d["seed"]),
            fold=str(d["fold"]),
            database=d.get("database", ""),
            subject=d.get("subject"),
            n_train=int(d.get("n_train", 0)),
            train_subjects=list(d.get("train_subjects", [])),
            test_ids=list(d["test_ids"]),
            y_true=list(d["y_true"]),
            probs=list(d.get("probs", [])),
            pred=list(d["pred"]),
            pipeline=dict(d.get("pipeline") or {}),
            history=list(d.get("history", [])),
            selected_epoch=d.get("selected_epoch"),
            val_subjects=list(d.get("val_subjects") or []),
            oracle_epoch_preds=None if oracle is None else list(oracle["epoch_preds"]),
            maps=d.get("maps"),
            seconds=float(d.get("seconds", 0.0)),
            selection=d.get("selection"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fold file's JSON: the fields in order, the oracle's predictions as ``oracle``
        (``{"epoch_preds": ...}``; null without an oracle)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "oracle_epoch_preds":
                out["oracle"] = None if value is None else {"epoch_preds": value}
            else:
                out[f.name] = value
        return out

    @property
    def accuracy(self) -> float:
        """The share of this fold's test samples predicted right."""
        return sum(p == t for p, t in zip(self.pred, self.y_true)) / max(len(self.y_true), 1)


@dataclass
class SeedScores:
    """One seed's pooled scores on one subset."""

    seed: int
    uf1: float
    uar: float
    acc: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedScores:
        return cls(int(d["seed"]), d["uf1"], d["uar"], d.get("acc"))

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "uf1": self.uf1, "uar": self.uar, "acc": self.acc}

    def get(self, metric: str) -> float | None:
        """The score named ``metric`` (``uf1``, ``uar`` or ``acc``)."""
        return {"uf1": self.uf1, "uar": self.uar, "acc": self.acc}[metric]


@dataclass
class SubsetScores:
    """Scores of one subset ("full" or a database) over seeds: means, sample standard
    deviations (None with fewer than two seeds), per-class F1 and recall (None where the class
    has no sample), the confusion matrix summed over seeds, and each seed's scores."""

    uf1: float
    uar: float
    acc: float
    n: int
    per_seed: list[SeedScores]
    uf1_std: float | None = None
    uar_std: float | None = None
    acc_std: float | None = None
    f1: list[float | None] = field(default_factory=list)
    recall: list[float | None] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubsetScores:
        per_seed = [SeedScores.from_dict(r) for r in d.get("per_seed", [])]
        spread = len(per_seed) > 1  # earlier versions wrote 0.0 for a single seed
        std = {f"{k}_std": d.get(f"{k}_std") if spread else None for k in SCORE_KEYS}
        return cls(
            uf1=d["uf1"],
            uar=d["uar"],
            acc=d.get("acc", float("nan")),
            n=int(d.get("n", 0)),
            per_seed=per_seed,
            f1=list(d.get("f1", [])),
            recall=list(d.get("recall", [])),
            confusion=list(d.get("confusion", [])),
            **std,
        )

    def to_dict(self) -> dict[str, Any]:
        """The subset's JSON: means, spreads, n, per-class scores, confusion, per seed."""
        means = {k: getattr(self, k) for k in SCORE_KEYS}
        spreads = {f"{k}_std": getattr(self, f"{k}_std") for k in SCORE_KEYS}
        per_class = {"n": self.n, "f1": self.f1, "recall": self.recall, "confusion": self.confusion}
        return {**means, **spreads, **per_class, "per_seed": [r.to_dict() for r in self.per_seed]}

    def mean_std(self, metric: str) -> tuple[float, float | None]:
        """(mean, sample std or None) of ``metric`` (``uf1``, ``uar`` or ``acc``)."""
        return getattr(self, metric), getattr(self, f"{metric}_std")


@dataclass
class Throughput:
    """The training done by the invocation that wrote ``metrics.json`` (not by earlier
    invocations of a resumed run): where it ran (``backend``, ``workers`` training at once),
    the folds it trained (reused ones not counted), its wall-clock seconds and the training
    sample-steps of those folds (rows fitted x epochs x ensemble members, summed)."""

    backend: str
    workers: int
    folds_trained: int
    seconds: float
    sample_steps: int

    @property
    def samples_per_second(self) -> float:
        """Training sample-steps per wall-clock second (0 when nothing was trained)."""
        return self.sample_steps / self.seconds if self.folds_trained and self.seconds > 0 else 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Throughput:
        return cls(
            backend=str(d["backend"]),
            workers=int(d["workers"]),
            folds_trained=int(d["folds_trained"]),
            seconds=float(d["seconds"]),
            sample_steps=int(d["sample_steps"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields, and ``samples_per_second``."""
        return {
            "backend": self.backend,
            "workers": self.workers,
            "folds_trained": self.folds_trained,
            "seconds": self.seconds,
            "sample_steps": self.sample_steps,
            "samples_per_second": self.samples_per_second,
        }


Section = dict[str, SubsetScores]


def _section(d: dict[str, Any] | None) -> Section | None:
    return None if not d else {k: SubsetScores.from_dict(v) for k, v in d.items()}


def _section_dict(s: Section | None) -> dict[str, Any] | None:
    return None if s is None else {k: v.to_dict() for k, v in s.items()}


@dataclass
class Metrics:
    """``metrics.json``: the headline ("honest") scores per subset, the oracle's (None unless
    the run had an oracle), and what was run where. ``extra`` keeps keys this version does not
    know, so a file read and written back loses nothing."""

    protocol: str
    model: str
    seeds: list[int]
    classes: list[str]
    honest: Section
    oracle: Section | None = None
    n_samples: int | None = None
    n_folds: int | None = None
    wall_seconds: float | None = None  # this run, all invocations, folds in parallel
    fold_seconds: float | None = None  # summed over folds
    throughput: Throughput | None = None  # the last invocation's training (None in older files)
    labels: dict[str, str] = field(default_factory=lambda: dict(LABELS))
    databases: list[str] = field(default_factory=list)
    data: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    glfnet_version: str | None = None
    # ``glfnet tune``: the rule, the menu and how often each recipe was chosen (None otherwise)
    selection: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = (
        "protocol",
        "model",
        "seeds",
        "n_samples",
        "n_folds",
        "wall_seconds",
        "fold_seconds",
        "throughput",
        "honest",
        "oracle",
        "labels",
        "classes",
        "databases",
        "data",
        "config",
        "machine",
        "glfnet_version",
        "selection",
    )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        """Metrics from a ``metrics.json`` dict; KeyError naming a missing required key."""
        for key in _REQUIRED:
            if key not in d:
                raise KeyError(key)
        known = {k: d[k] for k in cls._KEYS if k in d and d[k] is not None}
        known.update(
            honest=_section(d["honest"]),
            oracle=_section(d.get("oracle")),
            seeds=[int(s) for s in d["seeds"]],
            classes=list(d["classes"]),
            throughput=Throughput.from_dict(d["throughput"]) if d.get("throughput") else None,
        )
        return cls(**known, extra={k: v for k, v in d.items() if k not in cls._KEYS})

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._KEYS}
        out.update(honest=_section_dict(self.honest), oracle=_section_dict(self.oracle))
        out.update(throughput=self.throughput.to_dict() if self.throughput else None)
        return {**out, **self.extra}

    def section(self, which: str) -> Section | None:
        """The ``honest`` or ``oracle`` scores."""
        return {"honest": self.honest, "oracle": self.oracle}[which]

    def label(self, which: str) -> str:
        """How the ``honest`` or ``oracle`` section is labelled wherever it is shown."""
        return self.labels.get(which) or LABELS[which]


# --------------------------------------------------------------------------- the directory


def _read_csv(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p, dtype=_CSV_DTYPES)
    except FileNotFoundError:
        raise RunDirError(
            f"{p} is missing: the run directory is incomplete. Run the same "
            "`glfnet loso` command again to finish it."
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p} is not a readable CSV ({e}).") from None


class _Entry:
    """A file or folder of the run directory, by name: ``RunDir(p).metrics_path`` is
    ``p / "metrics.json"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, rd: RunDir, owner: type | None = None) -> Path:
        return rd.path / self.name


class RunDir:
    """A run directory by path: where each file is, and typed, atomic reads and writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- paths
    config_path = _Entry(CONFIG)
    metrics_path = _Entry(METRICS)
    predictions_path = _Entry(PREDICTIONS)
    oracle_predictions_path = _Entry(ORACLE_PREDICTIONS)
    train_log_path = _Entry(TRAIN_LOG)
    elapsed_path = _Entry(ELAPSED)
    figures_dir = _Entry(FIGURES)
    checkpoints_dir = _Entry(CHECKPOINTS)  # where ``save_checkpoints`` keeps each fold's network
    selection_path = _Entry(SELECTION)
    inner_dir = _Entry(INNER)
    lock_path = _Entry(LOCK)

    @property
    def report_paths(self) -> tuple[Path, Path]:
        """``report.md`` and ``report.html``."""
        return self.path / REPORT_MD, self.path / REPORT_HTML

    def megc_log_path(self, seed: int, first: bool) -> Path:
        """The first seed's log is ``megc_log.txt``, the others' ``megc_log_seed<S>.txt``."""
        return self.path / ("megc_log.txt" if first else f"megc_log_seed{seed}.txt")

    def fold_path(self, seed: int, fold: str) -> Path:
        return self.path / FOLDS / f"seed{seed}" / f"{fold}.json"

    def checkpoint_path(self, seed: int, fold: str) -> Path:
        return self.checkpoints_dir / f"seed{seed}" / f"{fold}.safetensors"

    def holds_run(self) -> bool:
        """Whether the folder holds a run, finished or not: its ``config.yaml`` and a result
        (finished folds, predictions or metrics)."""
        results = (self.path / FOLDS, self.predictions_path, self.metrics_path)
        return self.config_path.is_file() and any(p.exists() for p in results)

    def hold(self, what: str = "", create: bool = True) -> AbstractContextManager[RunLock | None]:
        """The folder's writer lock for the block (:func:`glfnet.eval.runlock.hold`): a second
        writer gets :class:`~glfnet.errors.RunLockedError`; re-entrant in this process."""
        return runlock.hold(self.lock_path, what, create)

    # ---- configuration and elapsed time
    def read_config(self) -> dict[str, Any]:
        """``config.yaml`` as a dict; {} when it is missing or not YAML."""
        try:
            return yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return {}

    def write_config(self, text: str) -> Path:
        return io.write_text(self.config_path, text)

    def read_elapsed(self) -> float:
        """Seconds recorded by earlier invocations (0 when none)."""
        try:
            return float(json.loads(self.elapsed_path.read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def write_elapsed(self, seconds: float) -> Path:
        return io.write_json(self.elapsed_path, {"seconds": seconds})

    def discard_progress(self) -> None:
        """Forget finished folds, checkpoints and elapsed time (to start the run afresh)."""
        import shutil

        for name in (FOLDS, CHECKPOINTS, INNER):
            shutil.rmtree(self.path / name, ignore_errors=True)
        self.elapsed_path.unlink(missing_ok=True)

    # ---- folds
    def write_fold(self, rec: FoldRecord) -> Path:
        return io.write_json(self.fold_path(rec.seed, rec.fold), rec.to_dict())

    def read_fold(self, seed: int, fold: str) -> FoldRecord | None:
        """The finished fold, or None when it is missing or unreadable."""
        return self._fold(self.fold_path(seed, fold))

    def fold_records(self, seed: int) -> list[FoldRecord]:
        """The finished folds of one seed, by file name (skipping unreadable files)."""
        recs = (self._fold(p) for p in sorted((self.path / FOLDS / f"seed{seed}").glob("*.json")))
        return [r for r in recs if r is not None]

    @staticmethod
    def _fold(p: Path) -> FoldRecord | None:
        try:
            return FoldRecord.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ---- results
    def write_predictions(self, frame: pd.DataFrame, oracle: bool = False) -> Path:
        return io.write_csv(self.oracle_predictions_path if oracle else self.predictions_path, frame)

    def remove_oracle_predictions(self) -> None:
        self.oracle_predictions_path.unlink(missing_ok=True)

    def read_predictions(self) -> pd.DataFrame:
        return _read_csv(self.predictions_path)

    def write_megc_log(self, seed: int, first: bool, text: str) -> Path:
        return io.write_text(self.megc_log_path(seed, first), text)

    def write_train_log(self, frame: pd.DataFrame) -> Path:
        return io.write_csv(self.train_log_path, frame)

    def read_train_log(self) -> pd.DataFrame | None:
        """The training log, or None when there is none with loss rows."""
        p = self.train_log_path
        if not p.exists() or p.stat().st_size == 0:
            return None
        try:
            log = _read_csv(p)
        except RunDirError:
            return None
        return log if {"seed", "fold", "epoch", "loss"} <= set(log.columns) and len(log) else None

    def write_metrics(self, metrics: Metrics) -> Path:
        return io.write_json(self.metrics_path, metrics.to_dict())

    def read_metrics(self) -> Metrics:
        """``metrics.json``; :class:`RunDirError` when the folder holds no finished run."""
        if not self.path.is_dir():
            raise RunDirError(
                f"not a glfnet run directory: {self.path} does not exist or is not "
                "a folder. Give the `out` folder of a `glfnet loso` run."
            )
        p = self.metrics_path
        if not p.exists() and is_cache(self.path):
            raise RunDirError(
                f"{self.path} is a flow cache made by `glfnet prepare`, not a run directory: "
                f"evaluate it first (`glfnet loso {self.path} --out RUN`), then report RUN."
            )
        if not p.exists():
            raise RunDirError(
                f"not a glfnet run directory: {self.path} has no {METRICS}; run "
                f"`glfnet loso` into it first (re-running with the same `out` "
                "resumes an unfinished run)."
            )
        redo = "re-run `glfnet loso` with the same `out` to rewrite it."
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(f"{p} is not valid JSON ({e}); {redo}") from None
        missing = [k for k in _REQUIRED if k not in d]
        if missing or not isinstance(d.get("honest"), dict) or "full" not in d["honest"]:
            raise RunDirError(
                f"{p} lacks {', '.join(missing) or 'honest.full'}: not a metrics "
                f"file of this glfnet version; {redo}"
            )
        return Metrics.from_dict(d)

    # ---- report
    def write_report(self, markdown: str, html: str, files: dict[str, bytes]) -> list[Path]:
        """Write ``files`` ({path relative to the run: bytes}, figures), then the two report
        pages; drop figures of an earlier build that ``files`` lacks. Returns the pages."""
        for rel, data in files.items():
            io.write_bytes(self.path / rel, data)
        if self.figures_dir.is_dir():  # e.g. the figures of an oracle section now gone
            keep = {Path(rel).name for rel in files}
            for p in self.figures_dir.iterdir():
                if p.is_file() and p.suffix in (".png", ".csv") and p.name not in keep:
                    p.unlink()
        md, page = self.report_paths
        return [io.write_text(md, markdown), io.write_text(page, html)]


# --------------------------------------------------------------------------- a finished run


@dataclass
class Run:
    """A finished run as readers see it: its directory, metrics and configuration."""

    dir: RunDir
    metrics: Metrics
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seeds(self) -> list[int]:
        return self.metrics.seeds

    @property
    def has_oracle(self) -> bool:
        return bool(self.metrics.oracle)

    @property
    def data_path(self) -> str | None:
        return self.config.get("data") or self.metrics.data

    @property
    def data_digest(self) -> str | None:
        return self.config.get("data_digest")

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return self.dir.read_predictions()

    @cached_property
    def train_log(self) -> pd.DataFrame | None:
        return self.dir.read_train_log()

    def fold_records(self, seed: int) -> list[FoldRecord]:
        return self.dir.fold_records(seed)


def load_run(path: str | Path) -> Run:
    """Open a finished run directory; :class:`RunDirError` if it is not one."""
    rd = RunDir(path)
    metrics = rd.read_metrics()
    return Run(rd, metrics, rd.read_config() or dict(metrics.config))
