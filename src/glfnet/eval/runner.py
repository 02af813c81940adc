"""Run a protocol (LOSO or LODO) over seeds: leak-free, resumable, atomically written.

For each (seed, fold): :func:`glfnet.train.trainer.train_fold` gets the fold's training
samples only; the trained model then predicts the test samples once. With ``oracle`` the
test fold is also scored after every epoch by an observer that cannot influence training,
and the per-fold best epoch on the test data gives the separately labelled oracle figures.

Run directory::

    config.yaml            resolved configuration (+ data source and digest)
    folds/seed<S>/<fold>.json   one finished fold (resume skips these)
    predictions.csv        database, subject, clip, sample_id, label, prediction, prob_*, seed, fold
    oracle_predictions.csv same for the oracle (only with --oracle)
    metrics.json           headline ("honest") and oracle scores, see METRICS_DOC
    megc_log.txt           challenge format, first seed (megc_log_seed<S>.txt for the others)
    train_log.csv          seed, fold, epoch, loss, lr, seconds[, val_uf1]
    checkpoints/seed<S>/<fold>.safetensors  with --save-checkpoints
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from glfnet import checkpoint, io
from glfnet._version import __version__
from glfnet.config import Config, dump_yaml
from glfnet.data.flowsets import FlowSet
from glfnet.errors import ConfigError
from glfnet.metrics import scores
from glfnet.eval.splits import Fold, make_folds
from glfnet.train.trainer import determinism, fold_seed, train_fold

HONEST_LABEL = ("leak-free: fixed schedule from the configuration; held-out data unseen until "
                "training ends")
ORACLE_LABEL = "oracle (test-selected, optimistic)"


def data_digest(fs: FlowSet) -> str:
    h = hashlib.sha1()
    h.update("\n".join(fs.samples["sample_id"] + "\t" + fs.samples["label"]).encode())
    h.update(np.ascontiguousarray(fs.X).tobytes())
    return h.hexdigest()[:16]


def machine_info(device: str) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "device": device}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- run directory

def _prepare_out(out: Path, cfg: Config, fs: FlowSet, overwrite: bool) -> None:
    digest = data_digest(fs)
    cfg_path = out / "config.yaml"
    if cfg_path.exists() and not overwrite:
        try:
            old = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            old = {}
        old_cfg = {k: old.get(k) for k in cfg.fingerprint()}
        diff = [f"{k}: {old_cfg[k]!r} -> {v!r}" for k, v in cfg.fingerprint().items() if old_cfg[k] != v]
        if old.get("data_digest") not in (None, digest):
            diff.append("the input data differ")
        if diff:
            raise ConfigError(f"{out} holds a run with a different configuration ({'; '.join(diff)}). "
                              "Use another --out, or --overwrite to discard the old results.")
    if overwrite and out.exists():
        import shutil

        for name in ("folds", "checkpoints"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / ELAPSED).unlink(missing_ok=True)
    io.write_text(cfg_path, dump_yaml(cfg, {"data": fs.source, "labels": fs.labels_path,
                                            "data_digest": digest, "glfnet_version": __version__}))


ELAPSED = "elapsed.json"


class _Clock:
    """The run's wall-clock time over all its invocations (a resumed run adds to the time of
    the killed one), saved after every finished fold."""

    def __init__(self, out: Path):
        self.path = out / ELAPSED
        try:
            self.before = float(json.loads(self.path.read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            self.before = 0.0
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def save(self) -> None:
        io.write_json(self.path, {"seconds": self.seconds()})


def _fold_path(out: Path, seed: int, fold: Fold) -> Path:
    return out / "folds" / f"seed{seed}" / f"{fold.name}.json"


def _ckpt_path(out: Path, seed: int, fold: Fold) -> Path:
    return out / "checkpoints" / f"seed{seed}" / f"{fold.name}.safetensors"


def _load_done(out: Path, seed: int, fold: Fold, fs: FlowSet, cfg: Config) -> dict | None:
    p = _fold_path(out, seed, fold)
    if not p.exists():
        return None
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if rec.get("test_ids") != fs.samples["sample_id"].iloc[fold.test_idx].tolist():
        return None
    if cfg.oracle and rec.get("oracle") is None:
        return None
    if cfg.save_checkpoints and not _ckpt_path(out, seed, fold).exists():
        return None
    return rec


# --------------------------------------------------------------------------- one fold

def run_fold(fs: FlowSet, fold: Fold, cfg: Config, seed: int, oracle: bool = False,
             on_epoch=None) -> tuple[dict, object]:
    """Train on the fold's training samples, then predict its test samples once."""
    t0 = time.perf_counter()
    tr, te = fold.train_idx, fold.test_idx
    X_test = fs.X[te]
    db = fs.samples["database"].to_numpy().astype(str)
    g_test = db[te]
    epoch_probs: dict[int, np.ndarray] = {}

    def observe(epoch, predict, member):  # oracle only: sees the test fold, cannot touch training
        epoch_probs[epoch] = epoch_probs.get(epoch, 0) + predict(X_test, groups=g_test)

    trained = train_fold(fs.X[tr], fs.y[tr], fs.samples["subject"].to_numpy()[tr], cfg,
                         len(fs.classes), fs.encoding, fold_seed(seed, fold.name),
                         observer=observe if oracle else None, on_epoch=on_epoch, groups=db[tr])
    probs = trained.predict_proba(X_test, groups=g_test)
    maps = explain(trained, X_test, g_test)
    rec = {
        "seed": seed, "fold": fold.name, "database": fold.database, "subject": fold.subject,
        "n_train": int(len(tr)),
        "train_subjects": sorted(set(fs.samples["subject"].iloc[tr])),
        "test_ids": fs.samples["sample_id"].iloc[te].tolist(),
        "y_true": fs.y[te].tolist(),
        "probs": np.round(probs, 6).tolist(),
        "pred": probs.argmax(1).tolist(),
        "pipeline": trained.pipeline.state(),
        "history": trained.history,
        "selected_epoch": trained.selected_epoch,
        "val_subjects": trained.val_subjects,
        "oracle": {"epoch_preds": [epoch_probs[e].argmax(1).tolist() for e in sorted(epoch_probs)]}
        if oracle else None,
        "maps": maps,
        "seconds": time.perf_counter() - t0,
    }
    return rec, trained


@torch.no_grad()
def explain(trained, X_test, groups=None) -> dict | None:
    """GLFNet's attention on the test samples, from the finished model (after training, so
    nothing flows back): the global attention map (N, h, w), the Local Block's region gates
    (N, 4: top-left, top-right, bottom-left, bottom-right) and the fusion's mean channel
    weight per branch (N, 2: global, local). None for models without these modules."""
    # an ensemble shows its first member's attention
    model = trained.model.members[0] if hasattr(trained.model, "members") else trained.model
    if not hasattr(model, "set_keep_maps") or not len(X_test):
        return None
    model.set_keep_maps(True)
    try:  # without test-time flip: the maps of the image as it is
        trained.predict_proba(X_test, batch_size=len(X_test), groups=groups, tta=False)
        out = {}
        att = getattr(model, "global_attn", None)
        if getattr(att, "last_map", None) is not None:
            out["global"] = np.round(att.last_map.cpu().numpy(), 5).tolist()
        if model.local is not None and model.local.last_gates is not None:
            out["regions"] = np.round(model.local.last_gates.cpu().numpy(), 5).tolist()
        fusion = getattr(model, "fusion", None)
        if getattr(fusion, "last_weights", None) is not None:
            w = fusion.last_weights.cpu().numpy()
            c = w.shape[1] // 2
            out["fusion"] = np.round(np.stack([w[:, :c].mean(1), w[:, c:].mean(1)], 1), 5).tolist()
        return out or None
    finally:
        model.set_keep_maps(False)


def oracle_pick(rec: dict) -> tuple[int, list[int]]:
    """HTNet-style: the epoch with the best accuracy on this fold's own test samples (first
    best on ties) and its predictions. Optimistic by construction."""
    y = np.asarray(rec["y_true"])
    accs = [float(np.mean(np.asarray(p) == y)) for p in rec["oracle"]["epoch_preds"]]
    best = int(np.argmax(accs))
    return best + 1, rec["oracle"]["epoch_preds"][best]


# --------------------------------------------------------------------------- aggregation

def _prediction_frame(fs: FlowSet, records: list[dict], oracle: bool) -> pd.DataFrame:
    meta = fs.samples.set_index("sample_id")
    rows = []
    for rec in records:
        preds = oracle_pick(rec)[1] if oracle else rec["pred"]
        for i, sid in enumerate(rec["test_ids"]):
            m = meta.loc[sid]
            row = {"database": m["database"], "subject": m["subject"], "clip": m["clip"],
                   "sample_id": sid, "label": fs.classes[rec["y_true"][i]],
                   "prediction": fs.classes[preds[i]]}
            if not oracle:
                row.update({f"prob_{c}": rec["probs"][i][k] for k, c in enumerate(fs.classes)})
            row.update({"seed": rec["seed"], "fold": rec["fold"]})
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(pred: pd.DataFrame, classes, seeds) -> dict:
    """Scores per subset ("full" and each database) on pooled predictions, mean +- std over
    seeds (sample std, ddof=1; 0 for one seed)."""
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    subsets = ["full"] + sorted(pred["database"].unique())
    for subset in subsets:
        part = pred if subset == "full" else pred[pred["database"] == subset]
        per_seed = []
        for seed in seeds:
            p = part[part["seed"] == seed]
            s = scores(p["label"].map(index), p["prediction"].map(index), len(classes))
            per_seed.append({"seed": int(seed), **s})
        def mean(key):
            return float(np.mean([r[key] for r in per_seed]))

        def std(key):
            vals = [r[key] for r in per_seed]
            return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0

        def class_mean(key):
            cols = list(zip(*[r[key] for r in per_seed]))
            return [None if any(v is None for v in col) else float(np.mean(col)) for col in cols]

        out[subset] = {
            "uf1": mean("uf1"), "uar": mean("uar"), "acc": mean("acc"),
            "uf1_std": std("uf1"), "uar_std": std("uar"), "acc_std": std("acc"),
            "n": per_seed[0]["n"],
            "f1": class_mean("f1"), "recall": class_mean("recall"),
            "confusion": np.sum([r["confusion"] for r in per_seed], axis=0).tolist(),
            "per_seed": [{k: r[k] for k in ("seed", "uf1", "uar", "acc")} for r in per_seed],
        }
    return out


def _megc_log(pred: pd.DataFrame, classes, seed: int) -> str:
    index = {c: i for i, c in enumerate(classes)}
    lines = []
    p = pred[pred["seed"] == seed]
    for (db, subject), part in p.groupby(["database", "subject"], sort=True):
        lines.append(f"{db} {subject}")
        for _, r in part.iterrows():
            lines.append(f"{r['clip']} {index[r['label']]} {index[r['prediction']]}")
    return "\n".join(lines) + "\n"


def _train_log(records: list[dict]) -> pd.DataFrame:
    rows = [{"seed": r["seed"], "fold": r["fold"], **h} for r in records for h in r["history"]]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the run

def _train_and_save(fs: FlowSet, fold: Fold, cfg: Config, seed: int, out: Path) -> dict:
    """One fold (in this process or a worker): train, predict, save; returns its record."""
    rec, trained = run_fold(fs, fold, cfg, seed, oracle=cfg.oracle)
    if cfg.save_checkpoints:
        checkpoint.save(_ckpt_path(out, seed, fold), trained.model,
                        {"config": cfg.to_dict(), "classes": list(fs.classes),
                         "pipeline": rec["pipeline"], "fold": fold.name, "seed": seed})
    io.write_json(_fold_path(out, seed, fold), rec)
    return rec


def _worker(fs: FlowSet, fold: Fold, cfg: Config, seed: int, out: str) -> dict:
    torch.set_num_threads(1)
    with determinism(cfg.device):
        return _train_and_save(fs, fold, cfg, seed, Path(out))


def n_workers(cfg: Config, n_todo: int) -> int:
    """Fold workers: ``cfg.jobs`` (0 = one per CPU core) on CPU, never more than the folds to
    run; 1 on a GPU."""
    if cfg.device == "cuda":
        return 1
    return max(1, min(cfg.jobs or os.cpu_count() or 1, n_todo))


def run_protocol(fs: FlowSet, cfg: Config, out: str | Path, overwrite: bool = False,
                 progress=None, log=None) -> dict:
    """Run ``cfg.protocol`` for every seed, skipping finished folds; write the run directory
    and return metrics. ``progress(done, total, label)`` and ``log(text)`` are optional.

    On CPU every fold trains single-threaded, in ``n_workers`` processes at once: small
    models train faster as parallel single-threaded folds than as one multi-threaded fold,
    and a fold's result does not depend on ``--jobs``.
    """
    out = Path(out)
    cfg.validate()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use "
                          "--device cpu.")
    folds = make_folds(fs.samples, cfg.protocol)
    out.mkdir(parents=True, exist_ok=True)
    _prepare_out(out, cfg, fs, overwrite)
    clock = _Clock(out)
    jobs = [(seed, fold) for seed in cfg.seeds for fold in folds]
    records: dict[tuple, dict] = {}
    todo = []
    for seed, fold in jobs:
        rec = _load_done(out, seed, fold, fs, cfg)
        if rec is None:
            todo.append((seed, fold))
        else:
            records[(seed, fold.name)] = rec
            if log:
                log(f"seed {seed} fold {fold.name}: finished earlier, reused")
    if progress:
        progress(len(records), len(jobs), "starting")

    def finished(rec):
        records[(rec["seed"], rec["fold"])] = rec
        clock.save()
        label = f"seed {rec['seed']} fold {rec['fold']}"
        if log:
            acc = float(np.mean(np.asarray(rec["pred"]) == np.asarray(rec["y_true"])))
            log(f"{label}: {len(rec['test_ids'])} test samples, accuracy {acc:.2f}, "
                f"{rec['seconds']:.1f} s")
        if progress:
            progress(len(records), len(jobs), label)

    workers = n_workers(cfg, len(todo))
    threads = torch.get_num_threads()
    try:
        with determinism(cfg.device):
            if cfg.device == "cpu":
                torch.set_num_threads(1)
            if workers == 1:
                for seed, fold in todo:
                    finished(_train_and_save(fs, fold, cfg, seed, out))
            else:
                from joblib import Parallel, delayed

                par = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
                for rec in par(delayed(_worker)(fs, fold, cfg, seed, str(out)) for seed, fold in todo):
                    finished(rec)
    finally:
        torch.set_num_threads(threads)
    ordered = [records[(seed, fold.name)] for seed, fold in jobs]
    return write_results(fs, cfg, out, ordered, folds, clock)


def write_results(fs: FlowSet, cfg: Config, out: Path, records: list[dict], folds,
                  clock: _Clock) -> dict:
    pred = _prediction_frame(fs, records, oracle=False)
    io.write_csv(out / "predictions.csv", pred)
    honest = summarise(pred, fs.classes, cfg.seeds)
    oracle = None
    if cfg.oracle:
        opred = _prediction_frame(fs, records, oracle=True)
        io.write_csv(out / "oracle_predictions.csv", opred)
        oracle = summarise(opred, fs.classes, cfg.seeds)
    else:
        (out / "oracle_predictions.csv").unlink(missing_ok=True)
    for i, seed in enumerate(cfg.seeds):
        name = "megc_log.txt" if i == 0 else f"megc_log_seed{seed}.txt"
        io.write_text(out / name, _megc_log(pred, fs.classes, seed))
    io.write_csv(out / "train_log.csv", _train_log(records))
    metrics = {
        "protocol": cfg.protocol,
        "model": cfg.model,
        "seeds": list(cfg.seeds),
        "n_samples": int(len(fs)),
        "n_folds": len(folds),
        "wall_seconds": clock.seconds(),  # this run, all invocations, folds in parallel
        "fold_seconds": float(sum(r["seconds"] for r in records)),  # summed over folds
        "honest": honest,
        "oracle": oracle,
        "labels": {"honest": HONEST_LABEL, "oracle": ORACLE_LABEL},
        "classes": list(fs.classes),
        "databases": sorted(fs.samples["database"].unique().tolist()),
        "data": fs.source,
        "config": cfg.to_dict(),
        "machine": machine_info(cfg.device),
        "glfnet_version": __version__,
    }
    io.write_json(out / "metrics.json", metrics)
    return metrics
