"""`glfnet report RUN_DIR` and `glfnet compare RUN_A RUN_B ...`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from glfnet.cli.common import console, warn


def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `glfnet loso` (or one "
                                   "variant folder of `glfnet ablate`)."),
):
    """Write report.md, a self-contained report.html and figures/ into RUN_DIR.

    The report holds the protocol in plain words, the leak-free results table (Full and each
    database, UF1/UAR mean ± std over seeds), per-seed and per-class scores, confusion
    matrices, per-subject accuracy, training-loss curves, a gallery of input flows for correct
    and wrong predictions, GLFNet's attention, and run time and machine. An oracle section
    appears only if the run was made with --oracle, labelled optimistic and kept apart.
    """
    from glfnet.report.build import build_report

    paths = build_report(run_dir)
    console.print(f"report: {', '.join(str(p) for p in paths)}")


def compare(
    runs: List[Path] = typer.Argument(..., help="Two or more run directories; the first is the "
                                      "base of the paired differences."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for comparison.md/.html "
                                       "(default: the runs' common parent folder, else "
                                       "./comparison)."),
):
    """Side-by-side leak-free UF1/UAR of several runs, with paired differences.

    Per-seed paired differences are taken versus the first run; a difference is marked when
    it exceeds the seed noise (two-sided paired t-test over the common seeds at 0.05; see
    docs/reports.md). Writes comparison.md, comparison.html and comparison_full.png.
    """
    from glfnet.report.compare import compare_runs, default_out

    show_and_write(compare_runs(runs), out or default_out(runs))


def show_and_write(comp, out: Path) -> None:
    """Print a comparison's tables and warnings, write its files into ``out``."""
    from glfnet.report.compare import rich_tables, write_comparison

    for table in rich_tables(comp):
        console.print(table)
    for w in comp.warnings:
        warn(w)
    paths = write_comparison(comp, out)
    console.print(f"comparison: {', '.join(str(p) for p in paths)}")


def register(app) -> None:
    app.command("report")(report)
    app.command("compare")(compare)
