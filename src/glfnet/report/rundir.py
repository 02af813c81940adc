"""Read a run directory written by :func:`glfnet.eval.runner.run_protocol`.

Reports and comparisons read only what a run wrote (``metrics.json``, ``config.yaml``,
``predictions.csv``, ``train_log.csv``, ``folds/seed<S>/<fold>.json``), never the oracle files
unless ``metrics.json`` has an oracle section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import yaml

from glfnet.errors import GlfnetError


class RunDirError(GlfnetError):
    """A path that is not (or no longer) a complete glfnet run directory."""


@dataclass
class Run:
    """A finished run: its folder, ``metrics.json`` and ``config.yaml`` contents."""

    path: Path
    metrics: dict
    config: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.metrics.get("seeds", [])]

    @property
    def has_oracle(self) -> bool:
        return bool(self.metrics.get("oracle"))

    @property
    def data_path(self) -> str | None:
        return self.config.get("data") or self.metrics.get("data")

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return _read_csv(self.path / "predictions.csv")

    @cached_property
    def train_log(self) -> pd.DataFrame | None:
        p = self.path / "train_log.csv"
        if not p.exists() or p.stat().st_size == 0:
            return None
        try:
            log = _read_csv(p)
        except RunDirError:
            return None
        return log if {"seed", "fold", "epoch", "loss"} <= set(log.columns) and len(log) else None

    def fold_records(self, seed: int) -> list[dict]:
        """The finished fold records of one seed (skipping unreadable files)."""
        out = []
        for p in sorted((self.path / "folds" / f"seed{seed}").glob("*.json")):
            try:
                out.append(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
        return out


def _read_csv(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p, dtype={"subject": str, "clip": str, "sample_id": str, "fold": str})
    except FileNotFoundError:
        raise RunDirError(f"{p} is missing: the run directory is incomplete. Run the same "
                          "`glfnet loso` command again to finish it.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p} is not a readable CSV ({e}).") from None


def load_run(path: str | Path) -> Run:
    """Open a run directory; :class:`RunDirError` if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"not a glfnet run directory: {path} does not exist or is not a folder. "
                          "Give the --out folder of a `glfnet loso` run.")
    mfile = path / "metrics.json"
    if not mfile.exists():
        raise RunDirError(f"not a glfnet run directory: {path} has no metrics.json; run "
                          f"`glfnet loso DATA --out {path}` first (re-running resumes an "
                          "unfinished run).")
    try:
        metrics = json.loads(mfile.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{mfile} is not valid JSON ({e}); re-run `glfnet loso` with the same "
                          "--out to rewrite it.") from None
    missing = [k for k in ("model", "protocol", "seeds", "honest", "classes") if k not in metrics]
    if missing or not isinstance(metrics.get("honest"), dict) or "full" not in metrics["honest"]:
        raise RunDirError(f"{mfile} lacks {', '.join(missing) or 'honest.full'}: not a metrics "
                          "file of this glfnet version; re-run `glfnet loso` with the same --out.")
    config = {}
    cfile = path / "config.yaml"
    if cfile.exists():
        try:
            config = yaml.safe_load(cfile.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            config = {}
    if not config:
        config = dict(metrics.get("config") or {})
    return Run(path=path, metrics=metrics, config=config)
