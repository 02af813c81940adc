"""Benchmark: the training engine's variants side by side, one composite LOSO seed each.

On a synthetic 442-sample, 68-subject, 28x28 flow set with the MEGC2019 composite's class and
subject structure (glfnet.data.synthflow) it times one LOSO seed (``run_protocol``, the
default configuration but for the model, ``--epochs``, ``--ensemble`` networks per fold and
``--jobs`` single-threaded fold workers) for each model in ``--models`` and each variant.
``--ensemble`` (default 1, the issue's composite seed) is pinned in every variant: the
default changed from 1 to 2 networks per fold after ``a927ab8``, and a variant left to its own
default would train twice the networks of the other.

Variants:

* ``today``: the code at ``--baseline`` (default a927ab8, the last commit before the engine
  work), checked out with ``git worktree add`` into a temporary folder (removed afterwards);
* ``fp32``: this checkout's code, default configuration;
* ``bf16``: this checkout's code with ``amp`` (bfloat16 autocast; fast only on a CPU with
  AVX-512 BF16 or AMX);
* ``fold-batchN``: this checkout's code with ``fold_batch=N``, for each N in ``--fold-batch``
  ("n/a" where the code refuses it).

Every run is a fresh Python process whose ``PYTHONPATH`` points at the variant's ``src`` (so
"today" really is that commit's code); only ``run_protocol`` is timed. Repeats go round all
models and variants in turn, so slow drifts of a busy machine spread over all of them. It
prints the median seconds, training samples/s (training rows x epochs x networks over all
folds, per wall-clock second) and the speed relative to ``today``.

``--folds K`` keeps a smoke run short: the first K subjects stay, every other sample becomes
one pseudo-subject, so the run trains the first K folds (full-size training sets) plus one
small fold (training on those K subjects' samples); the output says so.

Usage: ``python benchmarks/bench_engine.py [--models ststnet,glfnet_s,glfnet_t] [--epochs 30]
[--ensemble 1] [--repeats 3] [--fold-batch 8] [--folds K] [--jobs N] [--baseline REV] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = "BENCH-RESULT "  # a child's result line on stdout


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def keep_folds(fs, k: int):
    """A copy of the set with its first ``k`` subjects (in fold order) and every other sample
    merged into one pseudo-subject; ``fs`` itself when ``k`` is 0 or not smaller than the
    subjects."""
    samples = fs.samples
    keys = samples["database"].astype(str) + "/" + samples["subject"].astype(str)
    kept = sorted(set(keys))[:k]
    if not k or len(kept) >= keys.nunique() - 1:
        return fs
    rest = ~keys.isin(kept)
    samples = samples.copy()
    samples.loc[rest, "database"] = kept[0].split("/", 1)[0]
    samples.loc[rest, "subject"] = "bench-rest"
    out = copy.copy(fs)
    out.samples = samples
    return out


def training_rows(fs) -> int:
    """Training rows of one epoch over all LOSO folds: each fold trains on all other subjects."""
    counts = (fs.samples["database"].astype(str) + "/" + fs.samples["subject"].astype(str)).value_counts()
    return int(sum(len(fs) - c for c in counts))


def child(spec: dict) -> None:
    """One timed run in this process (started by :func:`run_variant`); prints its result."""
    import glfnet
    from glfnet.config import Config
    from glfnet.data.flowsets import load_flowset
    from glfnet.errors import ConfigError
    from glfnet.eval.runner import run_protocol

    src = Path(glfnet.__file__).resolve().parents[1]
    if src != Path(spec["src"]).resolve():
        raise SystemExit(f"bench child imported glfnet from {src}, not {spec['src']}")
    fs = keep_folds(load_flowset(spec["data"]), spec["folds"])
    cfg = Config(
        model=spec["model"],
        epochs=spec["epochs"],
        ensemble=spec["ensemble"],  # pinned: the default changed from 1 to 2 since a927ab8
        seeds=[0],
        jobs=spec["jobs"],
        report=False,
        **spec["changes"],
    )
    result: dict = {"rows": training_rows(fs) * spec["epochs"] * spec["ensemble"]}
    with tempfile.TemporaryDirectory(prefix="glfnet-bench-run-") as out:
        t = time.perf_counter()
        try:
            run_protocol(fs, cfg, out)
            result["seconds"] = time.perf_counter() - t
        except (NotImplementedError, ConfigError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
    print(RESULT + json.dumps(result), flush=True)


def run_variant(src: Path, spec: dict) -> dict:
    """Run :func:`child` in a fresh interpreter with ``src`` first on its path."""
    paths = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    spec = dict(spec, src=str(src))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, stdout=subprocess.PIPE, text=True
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith(RESULT)]
    if proc.returncode or not lines:
        return {"error": f"failed (exit status {proc.returncode}, traceback above)"}
    return json.loads(lines[-1][len(RESULT) :])


def baseline_worktree(rev: str, root: Path) -> Path:
    """``rev`` checked out (detached) in a new git worktree under ``root``."""
    path = root / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True
    )
    return path


def remove_worktree(path: Path) -> None:
    done = subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
    if done.returncode:
        print(f"could not remove the git worktree {path}: `git worktree remove --force {path}`")


def variants(fold_batches: list[int], bf16: bool = True) -> dict[str, tuple[str, dict]]:
    """name -> (code: "baseline" or "current", Config changes)."""
    out = {"today": ("baseline", {}), "fp32": ("current", {})}
    if bf16:
        out["bf16"] = ("current", {"amp": True})
    out.update({f"fold-batch{n}": ("current", {"fold_batch": n}) for n in fold_batches})
    return out


def table(results: dict, names: list[str], models: list[str]) -> list[dict]:
    """Median seconds, samples/s and speed relative to ``today`` per (model, variant)."""
    rows = []
    for model in models:
        base = None
        for name in names:
            runs = results[(model, name)]
            times = [r["seconds"] for r in runs if "seconds" in r]
            row: dict = {"model": model, "variant": name, "seconds": times}
            if times:
                med = statistics.median(times)
                row.update(median_s=med, samples_per_s=runs[0]["rows"] / med)
                base = med if name == "today" else base
                row["vs_today"] = base / med if base else None
            else:
                row["error"] = next(r["error"] for r in runs if "error" in r)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="ststnet,glfnet_s,glfnet_t", help="comma-separated models")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per fold (default 30)")
    ap.add_argument(
        "--ensemble", type=int, default=1, help="networks per fold, the same in every variant (default 1)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per model and variant (median)")
    ap.add_argument(
        "--fold-batch", default="8", help="comma-separated fold_batch values, one variant each ('' = none)"
    )
    ap.add_argument("--no-bf16", action="store_true", help="leave out the bf16 variant")
    ap.add_argument("--folds", type=int, default=0, help="time only the first K folds' work (0 = all)")
    ap.add_argument("--jobs", type=int, default=0, help="fold workers (default 0: one per core)")
    ap.add_argument("--baseline", default="a927ab8", help="git revision of 'today' (default a927ab8)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))

    import torch

    sys.path.insert(0, str(REPO / "src"))
    from glfnet.config import cpu_has_bf16
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthflow import composite_structure, make_flows, write_flat

    models = [m for m in args.models.split(",") if m]
    fold_batches = [int(n) for n in args.fold_batch.split(",") if n]
    plan = variants(fold_batches, not args.no_bf16)
    names = list(plan)
    cores = os.cpu_count() or 1
    jobs = args.jobs or cores
    print(
        f"machine: {cpu_name()}, {cores} CPU cores, native bfloat16 "
        f"{'yes' if cpu_has_bf16() else 'no'}, torch {torch.__version__}, python {platform.python_version()}"
    )
    root = Path(tempfile.mkdtemp(prefix="glfnet-bench-engine-"))
    structure = composite_structure(seed=0)
    write_flat(root / "data", structure, make_flows(structure, seed=0))
    fs = load_flowset(root / "data")
    n_subjects = (fs.samples["database"] + "/" + fs.samples["subject"]).nunique()
    fs = keep_folds(fs, args.folds)
    folds = (fs.samples["database"] + "/" + fs.samples["subject"]).nunique()
    print(
        f"data: synthetic composite, {len(fs)} samples, {n_subjects} subjects, 28x28; one LOSO seed, "
        f"{args.ensemble} network(s) per fold, {args.epochs} epoch(s), {jobs} single-threaded fold "
        f"workers, median of {args.repeats}"
    )
    if folds < n_subjects:
        print(
            f"timing only the first {args.folds} folds' work: the other subjects merged into one "
            f"pseudo-subject, so {folds} folds ({args.folds} full-size, 1 training on "
            f"{(fs.samples['subject'] != 'bench-rest').sum()} samples); not a full LOSO's time"
        )
    spec = {
        "data": str(root / "data"),
        "folds": args.folds,
        "epochs": args.epochs,
        "ensemble": args.ensemble,
        "jobs": args.jobs,
    }
    results: dict = {(m, n): [] for m in models for n in names}
    worktree = baseline_worktree(args.baseline, root)
    try:
        for r in range(args.repeats):
            for model in models:
                for name, (code, changes) in plan.items():
                    src = worktree / "src" if code == "baseline" else REPO / "src"
                    res = run_variant(src, dict(spec, model=model, changes=changes))
                    results[(model, name)].append(res)
                    took = f"{res['seconds']:.1f} s" if "seconds" in res else res["error"]
                    print(f"  repeat {r + 1}: {model} {name}: {took}", flush=True)
    finally:
        remove_worktree(worktree)
        shutil.rmtree(root, ignore_errors=True)

    rows = table(results, names, models)
    print(f"\n{'model':10s} {'variant':13s} {'seconds':>9s} {'train samples/s':>16s} {'vs today':>9s}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:10s} {row['variant']:13s} {'n/a':>9s}   ({row['error']})")
            continue
        ratio = f"x{row['vs_today']:.2f}" if row.get("vs_today") else "-"
        print(
            f"{row['model']:10s} {row['variant']:13s} {row['median_s']:9.1f} "
            f"{row['samples_per_s']:16.0f} {ratio:>9s}"
        )
    if args.json:
        info = {
            "machine": cpu_name(),
            "cores": cores,
            "native_bf16": cpu_has_bf16(),
            "torch": torch.__version__,
            "baseline": args.baseline,
        }
        keys = ("models", "epochs", "ensemble", "repeats", "fold_batch", "folds")
        settings = {k: getattr(args, k) for k in keys}
        Path(args.json).write_text(json.dumps({**info, **settings, "jobs": jobs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
