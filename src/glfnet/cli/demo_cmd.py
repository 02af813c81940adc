"""`glfnet demo` (what `make demo` runs): the whole system on built-in synthetic data.

raw clips in the CASME II / SAMM / SMIC layouts (glfnet.data.synthetic) -> `prepare megc2019`
(face, alignment, TV-L1 + strain, cache) -> leak-free LOSO with GLFNet -> results table and
report. Every stage resumes: run it again and finished work is reused.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from glfnet.cli import options as o
from glfnet.cli.messages import console, plural
from glfnet.cli.prepare_view import prepare_and_report
from glfnet.cli.progress import run_with_progress
from glfnet.cli.steps import print_results, write_report


def _synthetic_ready(raw: Path, want: dict) -> bool:
    """Whether ``raw`` holds synthetic clips made with the settings ``want``."""
    try:
        meta = json.loads((raw / "synthetic.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    have = {"seed": meta.get("seed"), **{k: meta.get("params", {}).get(k) for k in want if k != "seed"}}
    return have == want


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Where the raw clips, the flow cache and the LOSO run go.")
    ] = Path("runs/demo"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data set.")] = 0,
    subjects: Annotated[int, typer.Option("--subjects", help="Subjects per database (3 databases).")] = 5,
    clips: Annotated[int, typer.Option("--clips", help="Clips per subject.")] = 8,
    seeds: o.Seeds = None,
    epochs: o.Epochs = None,
    jobs: o.Jobs = None,
    no_report: o.NoReport = False,
) -> None:
    """Run the whole pipeline on built-in synthetic micro-expressions.

    Synthetic clips of real face photos (scikit-image) with action-unit motion of micro
    amplitude are written in the official CASME II, SAMM and SMIC layouts, read back by the
    same readers as real data, face-aligned, turned into TV-L1 flow + strain, and evaluated
    with leak-free leave-one-subject-out GLFNet (the default preset). The score shows the pipeline
    works; it is not a benchmark figure (the data are synthetic).
    """
    from glfnet.data.digest import data_digest
    from glfnet.data.flowsets import load_flowset
    from glfnet.eval.runner import config_diff
    from glfnet.preprocess.pipeline import PrepParams
    from glfnet.preprocess.prepare import resolve_jobs

    # every option is checked before anything is generated
    cfg = o.build(None, seeds=seeds, no_report=no_report, epochs=epochs, jobs=jobs)
    params = PrepParams()
    resolve_jobs(cfg.jobs)
    raw, cache_dir, run_dir = out / "raw", out / "cache", out / "loso"
    times = {"generate": _timed(lambda: _generate(raw, (cache_dir, run_dir), seed, subjects, clips))}
    console.print("[bold]2/3 preprocessing[/bold]: prepare megc2019 (face, alignment, TV-L1, strain)")
    times["prepare"] = _timed(lambda: _prepare(raw, cache_dir, params, cfg.jobs))
    console.print(f"[bold]3/3 leak-free LOSO[/bold] with {cfg.model}")
    t = time.perf_counter()
    fs = load_flowset(cache_dir)
    # the run directory is the demo's own: one made with other settings (an earlier release's
    # defaults, another --epochs) is started again rather than refused
    stale = config_diff(run_dir, cfg, data_digest(fs))
    if stale:
        console.print(
            f"the earlier demo run in {run_dir} used other settings ({'; '.join(stale)}): starting it again"
        )
    metrics = run_with_progress(fs, cfg, run_dir, overwrite=bool(stale), quiet=True)
    times["loso"] = time.perf_counter() - t
    print_results(metrics)
    if cfg.report:
        write_report(run_dir)
    console.print(
        f"stage times: generate {times['generate']:.0f} s, prepare "
        f"{times['prepare']:.0f} s, LOSO {times['loso']:.0f} s "
        f"({plural(metrics.n_folds or 0, 'fold')} x {plural(len(cfg.seeds), 'seed')}, "
        f"{plural(len(fs), 'clip')})"
    )
    console.print(
        "[yellow]Synthetic data: this proves the pipeline runs end to end; the score "
        "is not a micro-expression benchmark figure.[/yellow]"
    )
    console.print(f"everything is in {out}/ (raw clips, flow cache, run directory {run_dir})")


def _timed(step: Callable[[], object]) -> float:
    t = time.perf_counter()
    step()
    return time.perf_counter() - t


def _generate(raw: Path, stale: tuple[Path, ...], seed: int, subjects: int, clips: int) -> None:
    """Step 1: the synthetic clips, reused when made with the same settings (else what was
    made from other clips, ``stale``, is removed)."""
    from glfnet.data.synthetic import format_summary, generate

    want = {"seed": seed, "subjects_per_db": subjects, "clips_per_subject": clips}
    if _synthetic_ready(raw, want):
        console.print(f"[bold]1/3 synthetic clips[/bold]: reusing {raw}")
        return
    console.print(f"[bold]1/3 synthetic clips[/bold]: generating into {raw}")
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    summary = generate(raw, subjects_per_db=subjects, clips_per_subject=clips, seed=seed, overwrite=True)
    console.print(format_summary(summary), markup=False)


def _prepare(raw: Path, cache_dir: Path, params: Any, jobs: int) -> None:
    """Step 2: the MEGC2019 composite of the synthetic databases, as `glfnet prepare` does."""
    from glfnet.preprocess.prepare import Source

    sources = [
        Source(db, raw / root) for db, root in (("casme2", "CASME2"), ("samm", "SAMM"), ("smic", "SMIC"))
    ]
    prepare_and_report(sources, cache_dir, "megc2019", params, jobs)


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""
    app.command("demo")(demo)
