"""The flow cache: what ``glfnet prepare`` writes and ``glfnet loso``/``inspect`` read.

Layout of a cache folder::

    cache.json            {"format": "glfnet-flow-cache", "version": 1, "classes": [...],
                           "protocol": ..., "size": 28, "params": {...}, "glfnet_version": ...}
    manifest.csv          one row per expected sample (MANIFEST_COLUMNS), ids as strings
    flows/<sample_id>.npz key "flow": float32 array (3, H, W) = (u, v, strain)

Flow is stored raw (pixels of the stored grid, signed u and v, non-negative strain), so the
network-side normalisation is chosen at training time. ``status`` is ``ok`` (flow written),
``failed`` (could not be computed; the reason is in ``anomalies``) or ``missing`` (expected by
the protocol but not found on disk). ``anomalies`` joins per-sample notes with " | ".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from glfnet import io
from glfnet.errors import DataError

CACHE_FORMAT = "glfnet-flow-cache"
CACHE_VERSION = 1
META_FILE = "cache.json"
MANIFEST_FILE = "manifest.csv"
FLOW_DIR = "flows"
MANIFEST_COLUMNS = [
    "sample_id",
    "database",
    "subject",
    "clip",
    "label",
    "emotion",
    "onset",
    "apex",
    "offset",
    "apex_used",
    "apex_source",
    "n_frames",
    "action_units",
    "face",
    "status",
    "anomalies",
    "file",
]
STATUSES = ("ok", "failed", "missing")
ANOMALY_SEP = " | "


def is_cache(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / META_FILE).is_file()


def flow_relpath(sample_id: str) -> str:
    return f"{FLOW_DIR}/{sample_id}.npz"


def save_flow(cache_dir: str | Path, sample_id: str, flow: np.ndarray) -> str:
    """Write one sample's (3, H, W) float flow atomically; returns its path relative to the cache."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[0] != 3:
        raise ValueError(f"flow for {sample_id} must be (3, H, W), got {flow.shape}")
    rel = flow_relpath(sample_id)
    io.write_npz(Path(cache_dir) / rel, flow=flow)
    return rel


def load_flow(path: str | Path) -> np.ndarray:
    """Read one cached flow; a truncated or foreign file raises DataError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arr = np.asarray(z["flow"], dtype=np.float32)
    except FileNotFoundError:
        raise DataError(
            f"cached flow file is missing: {path}. Re-run `glfnet prepare` "
            "into the same folder to recompute it."
        ) from None
    except Exception as e:  # zipfile/np errors on truncated files
        raise DataError(
            f"cached flow file is unreadable: {path} ({e}). Delete it and re-run "
            "`glfnet prepare` into the same folder to recompute it."
        ) from None
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise DataError(f"cached flow {path} has shape {arr.shape}; expected (3, H, W).")
    return arr


def write_manifest(cache_dir: str | Path, manifest: pd.DataFrame, meta: dict) -> None:
    """Write manifest.csv and cache.json (atomically, manifest first)."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    cols = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    io.write_csv(Path(cache_dir) / MANIFEST_FILE, manifest[cols])
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, **meta}
    io.write_json(Path(cache_dir) / META_FILE, meta)


def read_meta(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{cache_dir} is not a glfnet cache: {META_FILE} is missing. Create one with `glfnet prepare`."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}). Re-run `glfnet prepare`.") from None
    if meta.get("format") != CACHE_FORMAT:
        raise DataError(f"{path} is not a glfnet flow cache (format={meta.get('format')!r}).")
    if int(meta.get("version", 0)) > CACHE_VERSION:
        raise DataError(
            f"{path} was written by a newer glfnet (cache version "
            f"{meta.get('version')}); upgrade glfnet to read it."
        )
    return meta


def read_manifest(cache_dir: str | Path) -> pd.DataFrame:
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"{path} is missing: the cache is incomplete. Re-run `glfnet prepare` "
            "into the same folder; finished samples are kept."
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(f"{path} is unreadable ({e}). Re-run `glfnet prepare`.") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{path} lacks the columns {missing}; it was not written by `glfnet prepare` or is damaged."
        )
    return df
