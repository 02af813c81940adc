"""Benchmark: training throughput and the wall time of a full composite LOSO, on this machine.

Builds a synthetic 442-sample, 68-subject, 28x28 flow set with the MEGC2019 composite's
class and subject structure (glfnet.data.synthflow), then prints

* training samples/s of the default GLFNet preset, glfnet_s and ststnet in one
  single-threaded fold worker (median of repeated timed epochs, the default batch size and
  augmentation, i.e. exactly what a LOSO fold runs), and for two such workers at once;
* the wall time of one full LOSO seed (68 folds) with the defaults (one worker per core).

Target (issues 2 and 9): the default LOSO of the composite in <= 15 minutes per seed on a
2-core CPU. Usage: ``python benchmarks/bench_loso.py [--skip-loso | --skip-throughput]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch


def make_set():
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthflow import composite_structure, make_flows, write_flat

    rows = composite_structure(seed=0)
    d = tempfile.mkdtemp(prefix="glfnet-bench-")
    write_flat(d, rows, make_flows(rows, seed=0))
    return load_flowset(d)


def throughput(fs, model: str, repeats: int = 5) -> float:
    """Median training samples/s over ``repeats`` timed epochs on ~435 samples (one fold),
    single-threaded as in a fold worker."""
    from glfnet.config import Config
    from glfnet.train.trainer import determinism, one_thread_on_cpu, train_fold

    cfg = Config(model=model, epochs=1)
    idx = np.arange(len(fs))[7:]  # a fold-sized training set
    subjects = fs.samples["subject"].to_numpy()[idx]
    rates = []
    with one_thread_on_cpu("cpu"), determinism("cpu"):
        for r in range(repeats + 1):  # the first is a warm-up
            t = time.perf_counter()
            train_fold(fs.X[idx], fs.y[idx], subjects, cfg, 3, fs.encoding, r)
            rates.append(len(idx) / (time.perf_counter() - t))
    return statistics.median(rates[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-loso", action="store_true", help="only measure throughput")
    ap.add_argument("--skip-throughput", action="store_true", help="only time the full LOSO")
    args = ap.parse_args()
    from joblib import Parallel, delayed

    from glfnet.config import Config
    from glfnet.eval.runner import run_protocol
    from glfnet.models import create_model

    cores = os.cpu_count()
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} CPU cores, torch "
        f"{torch.__version__}, python {platform.python_version()}"
    )
    fs = make_set()
    print(f"data: synthetic composite, {len(fs)} samples, {fs.samples['subject'].nunique()} subjects, 28x28")
    for model in () if args.skip_throughput else dict.fromkeys((Config.model, "glfnet_s", "ststnet")):
        n = sum(p.numel() for p in create_model(model).parameters())
        one = throughput(fs, model)
        both = sum(
            Parallel(n_jobs=cores, backend="loky")(delayed(throughput)(fs, model) for _ in range(cores))
        )
        print(
            f"train throughput {model:9s} ({n:,} parameters): {one:6.0f} samples/s in one "
            f"single-threaded worker, {both:6.0f} samples/s with {cores} workers at once "
            "(medians of 5 epochs)"
        )
    if args.skip_loso:
        return
    cfg = Config(seeds=[0], report=False)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        m = run_protocol(fs, cfg, out)
        wall = time.perf_counter() - t
    print(
        f"full LOSO, defaults ({cfg.model}, {cfg.epochs} epochs, ensemble {cfg.ensemble}), "
        f"1 seed, {m.n_folds} folds: "
        f"{wall / 60:.1f} min wall with {cores} fold workers (target <= 15 min); "
        f"synthetic-data UF1 {m.honest['full'].uf1:.3f} "
        "(meaningless as a score: synthetic flows)"
    )


if __name__ == "__main__":
    main()
