"""Benchmark: the wall time of one nested-selection seed (`glfnet tune`) on this machine.

Runs the menu (default: the pre-registered ``configs/menu-megc2019.yaml``) for one seed of
leave-one-subject-out on a flow set -- a synthetic set with the MEGC2019 composite's 442
samples, 68 subjects and class structure (glfnet.data.synthflow), or your copy of the
composite with ``--data`` -- and prints the cost plan's estimate beside the measured time of
the inner trainings, the final trainings and the whole seed.

Target (the nested-selection issue): one nested seed of the menu on the composite <= 60 min on
a 2-core CPU. The default `glfnet loso` seed (target <= 15 min) is timed by bench_loso.py.
Usage: ``python benchmarks/bench_tune.py [--data DIR] [--menu MENU.yaml] [--seed 0]``;
``--scale 0.1 --epochs 1`` is a quick check of the script itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def make_set(scale: float):
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthflow import composite_structure, make_flows, write_flat

    rows = composite_structure(seed=0, scale=scale)
    d = tempfile.mkdtemp(prefix="glfnet-bench-")
    write_flat(d, rows, make_flows(rows, seed=0))
    return load_flowset(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a flow set (default: a synthetic composite-shaped set)")
    ap.add_argument("--menu", default=str(ROOT / "configs" / "menu-megc2019.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="synthetic set size (1 = the composite's)")
    ap.add_argument("--epochs", type=int, help="override every recipe's epochs (a quick check)")
    args = ap.parse_args()
    from glfnet.config import Config
    from glfnet.data.flowsets import load_flowset
    from glfnet.eval.menu import load_menu
    from glfnet.eval.tune import TuneSettings, plan_tune, run_tune

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, python {platform.python_version()}"
    )
    fs = load_flowset(args.data) if args.data else make_set(args.scale)
    kind = args.data or "synthetic composite-shaped set"
    print(f"data: {kind}, {len(fs)} samples, {fs.samples['subject'].nunique()} subjects")
    base = Config(seeds=[args.seed], report=False)
    menu = load_menu(args.menu, base)
    if args.epochs:
        import yaml

        recipes = [{**r.to_dict(), **({} if r.average else {"epochs": args.epochs})} for r in menu.recipes]
        p = Path(tempfile.mkdtemp(prefix="glfnet-menu-")) / "menu.yaml"
        p.write_text(yaml.safe_dump({"recipes": recipes}))
        menu = load_menu(p, base)
    settings = TuneSettings()
    with tempfile.TemporaryDirectory() as out:
        plan = plan_tune(fs, base, menu, settings, out)
        lo, hi = plan.final_seconds
        print(
            f"plan: {len(menu.recipes)} recipes ({len(menu.trained())} trained), "
            f"{sum(r['trainings'] for r in plan.recipes)} inner trainings, {plan.finals_todo} final; "
            f"estimated {plan.inner_seconds / 60:.1f} min inner + {lo / 60:.1f}-{hi / 60:.1f} min final"
        )
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        def progress(done: int, total: int, label: str) -> None:
            marks["inner" if " inner " in label else "last"] = time.perf_counter()

        m = run_tune(fs, base, menu, settings, out, progress=progress)
        wall = time.perf_counter() - t0
    inner = marks.get("inner", t0) - t0
    chosen = ", ".join(f"{n} {c}" for n, c in (m.selection or {}).get("choices", {}).items() if c)
    print(
        f"measured: inner {inner / 60:.1f} min, final {(wall - inner) / 60:.1f} min, one nested seed "
        f"{wall / 60:.1f} min wall with {m.throughput.workers if m.throughput else '?'} workers "
        f"(target <= 60 min); chosen: {chosen}; UF1 {m.honest['full'].uf1:.3f}"
        + ("" if args.data else " (meaningless as a score: synthetic flows)")
    )


if __name__ == "__main__":
    main()
