"""Final training: one model on **all** samples of a flow set, for use (``glfnet train``).

:func:`train_final` trains with :func:`glfnet.train.trainer.train_fold` (the same defaults as
``glfnet loso``, single-threaded on the CPU like a LOSO fold) and writes a model directory
(:mod:`glfnet.train.modeldir`). Such a model is for **use**, not for evaluation: every sample it
could be scored on was in its training set. Quote ``glfnet loso`` results for how well the
method works (docs/predict.md).

Every option is checked before the data are touched or anything is written
(:func:`check_options`), and nothing is written until training has succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glfnet.config import Config
from glfnet.data import cache
from glfnet.data.digest import data_digest
from glfnet.data.flowsets import FlowSet
from glfnet.errors import ConfigError, DataError
from glfnet.models.registry import preset_revision
from glfnet.preprocess.pipeline import PrepParams
from glfnet.train.fold import input_size
from glfnet.train.modeldir import CONFIG_FILE, WEIGHTS_FILE, check_out_dir, write_model_dir
from glfnet.train.trainer import TrainedFold, determinism, one_thread_on_cpu, train_fold

PURPOSE = (
    "final model for use (predicting new clips), trained on all {n} samples of {source}. "
    "It is NOT an evaluation: every sample of that set was seen in training, so scoring "
    "it there measures memory, not recognition. Quote `glfnet loso` results instead."
)
RELEASE_NOTE = (
    "trained on the STSTNet/HTNet PNG release: its flows came from the release's own "
    "preprocessing (its face crops, IPOL TV-L1), not from glfnet. At prediction glfnet "
    "computes flow with its default PrepParams (size = the release's {size} px) and "
    "encodes it like the release (each channel min-max scaled per image to [0, 1], "
    "8-bit quantised); expect a domain shift."
)


def train_final(
    flowset: FlowSet,
    cfg: Config,
    out_dir: str | Path,
    seed: int = 0,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train one model on **all** samples of ``flowset`` and write ``out_dir`` (module doc).

    ``cfg`` is a :class:`glfnet.config.Config` (``glfnet loso``'s defaults); ``cfg.seeds`` is
    ignored in favour of ``seed``. With ``cfg.val_subjects > 0`` that fraction of subjects is
    held out of fitting to choose the epoch (recorded). No evaluation is made. Returns the
    ``config.json`` dict. ``log(text)`` gets progress lines (warnings start with
    ``"warning: "``); ``on_epoch(record)`` the epoch rows.
    """
    log = log or (lambda text: None)
    out = check_options(cfg, out_dir, overwrite)
    counts = _check_flowset(flowset, log)
    preprocessing, encode = _preprocessing_record(flowset)
    log(
        f"training ONE final model on all {len(flowset)} samples of {flowset.source} for use. "
        "This is not an evaluation (every sample is in training); use `glfnet loso` for results."
    )
    t0 = time.perf_counter()
    trained = _fit(flowset, cfg, int(seed), on_epoch)
    seconds = time.perf_counter() - t0
    record = {
        "purpose": PURPOSE.format(n=len(flowset), source=flowset.source),
        "classes": list(flowset.classes),
        "model": {
            "name": cfg.model,
            "args": dict(cfg.model_args),
            "input_size": input_size(cfg),
            "num_classes": len(flowset.classes),
            "ensemble": int(cfg.ensemble),
            "revision": preset_revision(cfg.model),
        },
        "pipeline": trained.pipeline.state(),
        "prediction_encoding": encode,
        "preprocessing": preprocessing,
        "training": _training_record(trained, cfg, int(seed), seconds),
        "data": _data_record(flowset, counts),
    }
    config = write_model_dir(out, trained.model, record, overwrite)
    log(f"model written to {out} ({WEIGHTS_FILE}, {CONFIG_FILE}) in {seconds:.1f} s")
    return config


def check_options(cfg: Config, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Everything :func:`train_final` can check without the data, checked before anything is
    read or written: the configuration (its device and model options included, see
    :meth:`glfnet.config.Config.validate`) and ``out_dir`` (returned, not created)."""
    cfg.validate()
    if cfg.bn_per_database:
        raise ConfigError(
            "`bn_per_database` keeps BatchNorm statistics per database, which a model directory "
            "does not store (a clip to predict has no database); train without it."
        )
    return check_out_dir(out_dir, overwrite)


def _fit(fs: FlowSet, cfg: Config, seed: int, on_epoch: Callable[[dict], None] | None) -> TrainedFold:
    with one_thread_on_cpu(cfg.device), determinism(cfg.device):
        return train_fold(
            fs.X,
            fs.y,
            fs.samples["subject"].to_numpy(),
            cfg,
            len(fs.classes),
            fs.encoding,
            seed,
            on_epoch=on_epoch,
            groups=fs.samples["database"].to_numpy(),
        )


def _check_flowset(fs: FlowSet, log: Callable[[str], None]) -> dict[str, int]:
    """Samples per class; at least two samples, a warning for a class without any."""
    if len(fs) < 2:
        raise DataError(f"{fs.source} holds {len(fs)} usable sample(s); training needs at least two.")
    counts = {c: int((fs.y == i).sum()) for i, c in enumerate(fs.classes)}
    absent = [c for c, n in counts.items() if n == 0]
    if absent:
        log(f"warning: no training sample of class {', '.join(absent)}; the model can hardly predict it.")
    return counts


def _preprocessing_record(fs: FlowSet) -> tuple[dict[str, Any], str]:
    """(``config.json["preprocessing"]``, prediction encoding) for a flow set: a cache's
    recorded ``PrepParams`` (raw flow), or glfnet's defaults at the release's size with the
    release's min-max 8-bit encoding."""
    if fs.kind == "cache":
        meta = cache.read_meta(fs.source)
        params = meta.get("params")
        if not isinstance(params, dict):
            raise DataError(
                f"{Path(fs.source) / cache.META_FILE} records no preprocessing "
                "`params`; re-create the cache with `glfnet prepare`."
            )
        return (
            {
                "source": "glfnet prepare",
                "cache": str(fs.source),
                "params": params,
                "flow_settings": meta.get("flow_settings"),
                "protocol": meta.get("protocol"),
                "cache_glfnet_version": meta.get("glfnet_version"),
            },
            "raw",
        )
    size = int(fs.image_shape[-1])
    return (
        {
            "source": "ststnet-release",
            "params": PrepParams(size=size).to_dict(),
            "note": RELEASE_NOTE.format(size=size),
        },
        "minmax8",
    )


def _training_record(trained: TrainedFold, cfg: Config, seed: int, seconds: float) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "seed": seed,
        "epochs": cfg.epochs,
        "selected_epoch": trained.selected_epoch,
        "val_subjects": list(trained.val_subjects),
        "seconds": round(seconds, 2),
        "history": trained.history,
        "evaluation": "none: a final model is trained on all samples",
    }


def _data_record(fs: FlowSet, counts: dict[str, int]) -> dict[str, Any]:
    databases = fs.samples["database"].value_counts().sort_index()
    return {
        "source": str(fs.source),
        "kind": fs.kind,
        "encoding": fs.encoding,
        "labels": fs.labels_path,
        "digest": data_digest(fs),
        "n_samples": len(fs),
        "n_subjects": int(fs.samples["subject"].nunique()),
        "classes": counts,
        "databases": {str(k): int(v) for k, v in databases.items()},
        "image_shape": list(fs.image_shape),
        "excluded": [str(p) for p in fs.problems],
    }


def summary(config: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """A short machine-readable account of a model directory's training (``glfnet train
    --json``): where it is, on what and how it was trained, how long it took."""
    t, d = config["training"], config["data"]
    return {
        "model_dir": str(out_dir),
        "model_id": config["model_id"],
        "model": config["model"]["name"],
        "model_args": config["model"]["args"],
        "ensemble": config["model"].get("ensemble", 1),
        "classes": config["classes"],
        "data": d["source"],
        "samples": d["n_samples"],
        "subjects": d["n_subjects"],
        "class_counts": d["classes"],
        "excluded": len(d["excluded"]),
        "epochs": t["epochs"],
        "selected_epoch": t["selected_epoch"],
        "val_subjects": t["val_subjects"],
        "seed": t["seed"],
        "train_seconds": t["seconds"],
        "preprocessing": config["preprocessing"]["source"],
        "evaluation": t["evaluation"],
    }
