"""`glfnet demo` (what `make demo` runs): the whole system on built-in synthetic data.

raw clips in the CASME II / SAMM / SMIC layouts (glfnet.data.synthetic) -> `prepare megc2019`
(face, alignment, TV-L1 + strain, cache) -> leak-free LOSO with GLFNet -> results table and
report. Every stage resumes: run it again and finished work is reused.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

import typer

from glfnet.cli.common import console, parse_int_list
from glfnet.config import Config


def _synthetic_ready(raw: Path, want: dict) -> bool:
    try:
        meta = json.loads((raw / "synthetic.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    have = {"seed": meta.get("seed"), **{k: meta.get("params", {}).get(k) for k in want if k != "seed"}}
    return have == want


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the raw clips, the flow "
                             "cache and the LOSO run go."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic data set."),
    subjects: int = typer.Option(5, "--subjects", help="Subjects per database (3 databases)."),
    clips: int = typer.Option(8, "--clips", help="Clips per subject."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds, e.g. 0,1,2."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per fold (default: the "
                                         "default of `glfnet loso`)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Preprocessing worker processes; 0 = all cores."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.md/report.html."),
):
    """Run the whole pipeline on built-in synthetic micro-expressions.

    Synthetic clips of real face photos (scikit-image) with action-unit motion of micro
    amplitude are written in the official CASME II, SAMM and SMIC layouts, read back by the
    same readers as real data, face-aligned, turned into TV-L1 flow + strain, and evaluated
    with leak-free leave-one-subject-out GLFNet (the default preset). The score shows the pipeline
    works; it is not a benchmark figure (the data are synthetic).
    """
    from glfnet.cli.loso_cmd import print_results, run_with_progress, write_report
    from glfnet.cli.prepare_cmd import run_prepare
    from glfnet.config import build_config
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthetic import format_summary, generate
    from glfnet.preprocess.pipeline import PrepParams

    raw, cache_dir, run_dir = out / "raw", out / "cache", out / "loso"
    times = {}

    t = time.perf_counter()
    want = {"seed": seed, "subjects_per_db": subjects, "clips_per_subject": clips}
    if _synthetic_ready(raw, want):
        console.print(f"[bold]1/3 synthetic clips[/bold]: reusing {raw}")
    else:
        console.print(f"[bold]1/3 synthetic clips[/bold]: generating into {raw}")
        for stale in (cache_dir, run_dir):  # made from other clips
            shutil.rmtree(stale, ignore_errors=True)
        summary = generate(raw, subjects_per_db=subjects, clips_per_subject=clips, seed=seed,
                           overwrite=True)
        console.print(format_summary(summary), markup=False)
    times["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    console.print("[bold]2/3 preprocessing[/bold]: prepare megc2019 (face, alignment, TV-L1, strain)")
    sources = [(db, raw / root, None, "auto") for db, root in
               (("casme2", "CASME2"), ("samm", "SAMM"), ("smic", "SMIC"))]
    run_prepare(sources, cache_dir, "megc2019", PrepParams(), jobs, None, overwrite=False)
    times["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    console.print(f"[bold]3/3 leak-free LOSO[/bold] with {Config.model}")
    fs = load_flowset(cache_dir)
    cfg = build_config(epochs=epochs, seeds=parse_int_list(seeds), report=not no_report)
    metrics = run_with_progress(fs, cfg, run_dir, overwrite=False, quiet=True)
    times["loso"] = time.perf_counter() - t
    print_results(metrics)
    if cfg.report:
        write_report(run_dir)
    console.print(f"stage times: generate {times['generate']:.0f} s, prepare "
                  f"{times['prepare']:.0f} s, LOSO {times['loso']:.0f} s "
                  f"({metrics['n_folds']} folds x {len(cfg.seeds)} seed(s), {len(fs)} clips)")
    console.print("[yellow]Synthetic data: this proves the pipeline runs end to end; the score "
                  "is not a micro-expression benchmark figure.[/yellow]")
    console.print(f"everything is in {out}/ (raw clips, flow cache, run directory {run_dir})")


def register(app) -> None:
    app.command("demo")(demo)
