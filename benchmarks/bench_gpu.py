"""GPU check and benchmark: ``--device cuda`` and ``--amp`` end to end, and training speed.

Needs a CUDA GPU (the project never does; this script is for the machines that have one).
On a synthetic flow set with the MEGC2019 composite's structure (glfnet.data.synthflow) it

1. runs the same small LOSO (a third of the composite, glfnet_s defaults, seed 0) on the CPU,
   on CUDA in float32 and on CUDA with bfloat16 autocast (checkpoints, oracle and report on),
   and prints UF1/UAR, wall time and how often CUDA's predictions equal the CPU's (the kernels
   differ, so a few flips are expected; the scores should agree within seed noise);
2. trains a final model on CUDA, loads it back on CUDA and on the CPU and checks that both
   give the same probabilities;
3. prints training samples/s (median of epochs 2-6 of a fold-sized run), the fold's set-up
   time and peak GPU memory for glfnet_s at 28 px and the paper-scale glfnet at 224 px, float32 and bfloat16.

Usage: ``PYTHONPATH=src python benchmarks/bench_gpu.py [--skip-loso]``.
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


def loso_runs(fs, root: Path) -> None:
    from glfnet.config import Config
    from glfnet.eval.runner import run_protocol

    runs = {
        "cpu": Config(seeds=[0], report=False),
        "cuda fp32": Config(seeds=[0], device="cuda", report=False),
        "cuda bf16": Config(seeds=[0], device="cuda", amp=True, oracle=True, save_checkpoints=True),
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


def final_model(fs, root: Path) -> None:
    from glfnet.config import Config
    from glfnet.infer import Recognizer
    from glfnet.train.final import train_final

    out = root / "model"
    train_final(fs, Config(device="cuda", amp=True, epochs=5), out)
    x = fs.X[:16]
    p_gpu = np.stack([Recognizer.load(out, device="cuda").predict_flow(f) for f in x])
    p_cpu = np.stack([Recognizer.load(out, device="cpu").predict_flow(f) for f in x])
    print(
        f"final model trained on cuda: reloaded on cuda and cpu, max |p_cuda - p_cpu| = "
        f"{np.abs(p_gpu - p_cpu).max():.2e} over 16 samples",
        flush=True,
    )


def throughput(fs, model: str, amp: bool, batch_size: int) -> tuple[float, float, float]:
    """Training samples/s (median over epochs 2-6 of one fold-sized run), the fold's set-up
    time outside the epochs (model build, input preparation, statistics) and peak GPU memory."""
    from glfnet.config import Config
    from glfnet.train.trainer import train_fold

    cfg = Config(model=model, epochs=6, device="cuda", amp=amp, batch_size=batch_size)
    idx = np.arange(len(fs))[7:]
    subj = fs.samples["subject"].to_numpy()[idx]
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t = time.perf_counter()
    res = train_fold(fs.X[idx], fs.y[idx], subj, cfg, 3, fs.encoding, 0)
    torch.cuda.synchronize()
    total = time.perf_counter() - t
    epochs = [r["seconds"] for r in res.history]
    return (
        len(idx) / statistics.median(epochs[1:]),
        total - sum(epochs),
        torch.cuda.max_memory_allocated() / 2**30,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-loso", action="store_true", help="only final model and throughput")
    ap.add_argument("--out", default=None, help="keep the run directories here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU; PyTorch sees none here.")
    print(
        f"machine: {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, python {platform.python_version()}",
        flush=True,
    )
    root = Path(args.out or tempfile.mkdtemp(prefix="glfnet-gpu-runs-"))
    small = make_set(scale=0.33)
    print(f"small set: {len(small)} samples, {small.samples['subject'].nunique()} subjects", flush=True)
    if not args.skip_loso:
        loso_runs(small, root)
    final_model(small, root)
    fs = make_set(scale=1.0)
    for model, batches in (("glfnet_s", (64,)), ("glfnet", (64,))):
        for bs in batches:
            for amp in (False, True):
                rate, setup, mem = throughput(fs, model, amp, bs)
                print(
                    f"train {model:8s} batch {bs:3d} {'bf16' if amp else 'fp32'}: "
                    f"{rate:7.0f} samples/s (epochs 2-6), fold set-up {setup:4.1f} s, "
                    f"peak GPU memory {mem:5.2f} GiB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
