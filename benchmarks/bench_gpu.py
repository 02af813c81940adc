"""GPU check and benchmark: ``--device cuda`` and ``--amp`` end to end, and training speed.

Needs a CUDA GPU for its figures (the project never does; this script is for the machines that
have one); ``--device cpu`` runs it without one, to check the script itself (below).
On a synthetic flow set with the MEGC2019 composite's structure (glfnet.data.synthflow) it

1. runs the same small LOSO (a third of the composite, the default model, seed 0) on the CPU,
   on CUDA in float32 and on CUDA with bfloat16 autocast (checkpoints, oracle and report on),
   and prints UF1/UAR, wall time and how often CUDA's predictions equal the CPU's (the kernels
   differ, so a few flips are expected; the scores should agree within seed noise);
2. trains a final model on CUDA, loads it back on CUDA and on the CPU and checks that both
   give the same probabilities;
3. prints training samples/s (median of epochs 2-6 of a fold-sized run), the fold's set-up
   time and peak GPU memory for each model of ``--throughput-models`` (glfnet_s at 28 px and
   the paper-scale glfnet at 224 px), float32 and bfloat16;
4. times the fold-batched engine: for each model in ``--engine-models``, each ``fold_batch``
   in ``--fold-batch`` and each autocast setting of ``--amp``, the first ``--engine-folds``
   folds of ``--engine-seeds`` composite LOSO seeds (``--engine-ensemble`` networks per fold)
   through ``run_protocol`` (the other subjects merged into one pseudo-subject: one more, small
   fold), and prints training samples/s (training rows x epochs x networks per wall-clock
   second, set-up and prediction included), the wall time and peak GPU memory. The issue's
   GPU target, five seeds of ``glfnet_s`` on the composite (one network per fold, 30 epochs),
   is timed directly by ``--engine-only --engine-models glfnet_s --engine-seeds 5
   --engine-ensemble 1 --engine-folds 0 --engine-epochs 30 --fold-batch 68,340`` (one network
   per fold at a time would take about 26 min there: 2,845 samples/s on an H200, part 3).

``--amp`` (both | on | off) also selects the settings of part 3. ``--engine-only`` runs part
4 alone, e.g. ``--engine-only --fold-batch 1,8,16,32 --amp on``. ``--device cpu`` runs the
same code on the CPU, with no GPU figures: a check of this script itself, so that the
day a GPU is lent its one call does not fail (``tests/test_benchmarks.py`` runs parts 2-4 so,
at a tiny size; part 1 takes about 5 minutes on 2 cores).

Usage: ``PYTHONPATH=src python benchmarks/bench_gpu.py [--skip-loso] [--engine-only] [--fold-batch 1,8]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def make_set(scale: float):
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthflow import composite_structure, make_flows, write_flat

    rows = composite_structure(seed=0, scale=scale)
    d = tempfile.mkdtemp(prefix="glfnet-gpu-")
    write_flat(d, rows, make_flows(rows, seed=0))
    return load_flowset(d)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_note(device: str) -> str:
    """The peak GPU memory since :func:`_reset_peak`, as an output suffix (", peak GPU memory
    X GiB"); empty on the CPU, where it is not measured."""
    return (
        f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:5.2f} GiB" if device == "cuda" else ""
    )


def loso_runs(fs, root: Path, device: str) -> None:
    from glfnet.config import Config
    from glfnet.eval.runner import run_protocol

    runs = {
        "cpu": Config(seeds=[0], report=False),
        f"{device} fp32": Config(seeds=[0], device=device, report=False),
        f"{device} bf16": Config(seeds=[0], device=device, amp=True, oracle=True, save_checkpoints=True),
    }
    preds = {}
    for name, cfg in runs.items():
        out = root / name.replace(" ", "-")
        t = time.perf_counter()
        m = run_protocol(fs, cfg, out)
        wall = time.perf_counter() - t
        p = pd.read_csv(out / "predictions.csv", dtype=str)
        preds[name] = p.set_index("sample_id")["prediction"]
        h = m.honest["full"]
        extra = ""
        if cfg.oracle:
            from glfnet.report.build import build_report

            build_report(out)
            files = sorted(x.name for x in out.iterdir())
            n_ckpt = len(list(out.rglob("*.safetensors")))
            extra = f"; oracle UF1 {m.oracle['full'].uf1:.3f}; {n_ckpt} checkpoints; files {files}"
        agree = (preds[name] == preds["cpu"].reindex(preds[name].index)).mean()
        print(
            f"LOSO {name:9s}: {m.n_folds} folds, UF1 {h.uf1:.3f} UAR {h.uar:.3f}, "
            f"{wall:6.1f} s wall, predictions equal to the CPU run's: {agree:.1%}{extra}",
            flush=True,
        )


def final_model(fs, root: Path, device: str) -> None:
    from glfnet.config import Config
    from glfnet.infer import Recognizer
    from glfnet.train.final import train_final

    out = root / "model"
    train_final(fs, Config(device=device, amp=True, epochs=5), out)
    x = fs.X[:16]
    p_dev = np.stack([Recognizer.load(out, device=device).predict_flow(f) for f in x])
    p_cpu = np.stack([Recognizer.load(out, device="cpu").predict_flow(f) for f in x])
    print(
        f"final model trained on {device}: reloaded on {device} and cpu, max |p_{device} - p_cpu| = "
        f"{np.abs(p_dev - p_cpu).max():.2e} over 16 samples",
        flush=True,
    )


def throughput(fs, model: str, amp: bool, batch_size: int, device: str) -> tuple[float, float, str]:
    """Training samples/s (median over epochs 2-6 of one fold-sized run), the fold's set-up
    time outside the epochs (model build, input preparation, statistics) and the peak GPU
    memory note (:func:`_peak_note`)."""
    from glfnet.config import Config
    from glfnet.train.trainer import train_fold

    cfg = Config(model=model, epochs=6, device=device, amp=amp, batch_size=batch_size)
    idx = np.arange(len(fs))[7:]
    subj = fs.samples["subject"].to_numpy()[idx]
    _reset_peak(device)
    _sync(device)
    t = time.perf_counter()
    res = train_fold(fs.X[idx], fs.y[idx], subj, cfg, 3, fs.encoding, 0)
    _sync(device)
    total = time.perf_counter() - t
    epochs = [r["seconds"] for r in res.history]
    return (
        len(idx) / statistics.median(epochs[1:]),
        total - sum(epochs),
        _peak_note(device),
    )


def engine_throughput(
    fs, model: str, fold_batch: int, amp: bool, epochs: int, folds: int, device: str, seeds=1, ensemble=2
) -> str:
    """One setting of part 4: training samples/s (network-epochs of training rows per second)
    of the first ``folds`` folds of ``seeds`` LOSO seeds with ``ensemble`` networks per fold
    (fold_batch folds per batched network), wall time and peak GPU memory; "n/a (...)" where
    the code refuses the setting, "FAILED (...)" where it breaks."""
    from bench_engine import keep_folds, training_rows
    from glfnet.config import Config
    from glfnet.errors import ConfigError
    from glfnet.eval.runner import run_protocol

    part = keep_folds(fs, folds)
    cfg = Config(
        model=model,
        epochs=epochs,
        ensemble=ensemble,
        seeds=list(range(seeds)),
        device=device,
        amp=amp,
        fold_batch=fold_batch,
        report=False,
    )
    _reset_peak(device)
    with tempfile.TemporaryDirectory(prefix="glfnet-gpu-engine-") as out:
        t = time.perf_counter()
        try:
            run_protocol(part, cfg, out)
        except (NotImplementedError, ConfigError) as e:
            return f"n/a ({type(e).__name__}: {e})"
        except RuntimeError as e:  # one failing setting does not cost the others their figures
            return f"FAILED ({type(e).__name__}: {str(e).splitlines()[0][:300]})"
        _sync(device)
        wall = time.perf_counter() - t
    mem = _peak_note(device)
    rate = training_rows(part) * epochs * seeds * ensemble / wall
    return f"{rate:8.0f} samples/s ({wall:6.1f} s){mem}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-loso", action="store_true", help="only final model and throughput")
    ap.add_argument("--out", default=None, help="keep the run directories here")
    ap.add_argument("--engine-only", action="store_true", help="only part 4, the fold-batched engine")
    ap.add_argument("--fold-batch", default="1,8", help="part 4: comma-separated fold_batch values")
    ap.add_argument(
        "--amp", choices=("both", "on", "off"), default="both", help="bfloat16 autocast settings timed"
    )
    ap.add_argument("--throughput-models", default="glfnet_s,glfnet", help="part 3: models ('' = none)")
    ap.add_argument("--engine-models", default="glfnet_t,glfnet_s,ststnet", help="part 4: models")
    ap.add_argument("--engine-epochs", type=int, default=10, help="part 4: epochs per fold")
    ap.add_argument("--engine-folds", type=int, default=16, help="part 4: folds timed (0 = all 68)")
    ap.add_argument("--engine-seeds", type=int, default=1, help="part 4: LOSO seeds per run (0, 1, ...)")
    ap.add_argument("--engine-ensemble", type=int, default=2, help="part 4: networks per fold")
    ap.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda", help="cpu: check this script without a GPU"
    )
    args = ap.parse_args()
    device = args.device
    amps = {"both": (False, True), "on": (True,), "off": (False,)}[args.amp]
    fold_batches = [int(n) for n in args.fold_batch.split(",") if n]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "bench_gpu.py needs a CUDA GPU; PyTorch sees none here "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})."
        )
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU only ({platform.machine()})"
    print(
        f"machine: {name}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, python {platform.python_version()}",
        flush=True,
    )
    root = Path(args.out or tempfile.mkdtemp(prefix="glfnet-gpu-runs-"))
    if not args.engine_only:
        small = make_set(scale=0.33)
        print(f"small set: {len(small)} samples, {small.samples['subject'].nunique()} subjects", flush=True)
        if not args.skip_loso:
            loso_runs(small, root, device)
        final_model(small, root, device)
    fs = make_set(scale=1.0)
    for model in [] if args.engine_only else [m for m in args.throughput_models.split(",") if m]:
        for amp in amps:
            rate, setup, mem = throughput(fs, model, amp, 64, device)
            print(
                f"train {model:8s} batch  64 {'bf16' if amp else 'fp32'}: "
                f"{rate:7.0f} samples/s (epochs 2-6), fold set-up {setup:4.1f} s{mem}",
                flush=True,
            )
    print(
        f"engine: first {args.engine_folds or 'all'} folds of {args.engine_seeds} composite LOSO "
        f"seed(s), {args.engine_ensemble} network(s) per fold, {args.engine_epochs} epochs, "
        f"run_protocol on {device}",
        flush=True,
    )
    models = [m for m in args.engine_models.split(",") if m]
    engine_throughput(fs, models[0], 1, amps[-1], 1, 2, device)  # warm-up (CUDA context, kernels), untimed
    for model in models:
        for fb in fold_batches:
            for amp in amps:
                took = engine_throughput(
                    fs,
                    model,
                    fb,
                    amp,
                    args.engine_epochs,
                    args.engine_folds,
                    device,
                    args.engine_seeds,
                    args.engine_ensemble,
                )
                print(f"engine {model:8s} fold_batch {fb:3d} {'bf16' if amp else 'fp32'}: {took}", flush=True)


if __name__ == "__main__":
    main()
