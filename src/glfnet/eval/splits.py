"""Subject-independent splits: leave-one-subject-out and leave-one-database-out.

A fold's test subjects never appear in its training indices (checked here, and in tests).
Subjects are keyed by (database, subject), so equal names in two databases stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glfnet.errors import DataError


@dataclass(frozen=True)
class Fold:
    """A test set and the training set that excludes its subjects (indices into the samples)."""

    name: str  # e.g. "casme2-sub01" (loso) or "samm" (lodo)
    database: str  # the test database
    subject: str | None  # the test subject (loso)
    train_idx: np.ndarray
    test_idx: np.ndarray


def subject_keys(samples: pd.DataFrame) -> np.ndarray:
    """Each sample's subject as ``database/subject`` (equal names in two databases differ)."""
    return (samples["database"].astype(str) + "/" + samples["subject"].astype(str)).to_numpy()


def loso_folds(samples: pd.DataFrame) -> list[Fold]:
    """One fold per (database, subject): that subject's samples are the test set."""
    keys = subject_keys(samples)
    folds = []
    for key in sorted(set(keys)):
        db, subject = key.split("/", 1)
        test = np.flatnonzero(keys == key)
        train = np.flatnonzero(keys != key)
        folds.append(Fold(f"{db}-{subject}", db, subject, train, test))
    if len(folds) < 2:
        raise DataError(f"leave-one-subject-out needs at least 2 subjects; this set has {len(folds)}.")
    return _checked(samples, folds)


def lodo_folds(samples: pd.DataFrame) -> list[Fold]:
    """One fold per database: that database's samples are the test set."""
    dbs = samples["database"].astype(str).to_numpy()
    names = sorted(set(dbs))
    if len(names) < 2:
        raise DataError(
            f"leave-one-database-out needs at least 2 databases; this set has "
            f"{', '.join(names) or 'none'}. Use `protocol` loso."
        )
    folds = [Fold(db, db, None, np.flatnonzero(dbs != db), np.flatnonzero(dbs == db)) for db in names]
    return _checked(samples, folds)


def make_folds(samples: pd.DataFrame, protocol: str) -> list[Fold]:
    """The folds of ``protocol`` ("loso" or "lodo"), checked subject-disjoint."""
    return {"loso": loso_folds, "lodo": lodo_folds}[protocol](samples)


def _checked(samples: pd.DataFrame, folds: list[Fold]) -> list[Fold]:
    keys = subject_keys(samples)
    for f in folds:
        overlap = set(keys[f.train_idx]) & set(keys[f.test_idx])
        if overlap or len(np.intersect1d(f.train_idx, f.test_idx)):
            raise AssertionError(f"fold {f.name}: test subjects {sorted(overlap)} in training")
    return folds
