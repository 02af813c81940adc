"""`glfnet report RUN_DIR` and `glfnet compare RUN_A RUN_B ...`."""

from __future__ import annotations

from pathlib import Path

import typer

from glfnet.cli.messages import console
from glfnet.cli.steps import show_comparison


def report(
    run_dir: Path = typer.Argument(
        ...,
        help="A run directory written by `glfnet loso` or `glfnet tune` (or one variant folder of "
        "`glfnet ablate`).",
    ),
) -> None:
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
    runs: list[Path] = typer.Argument(
        ..., help="Two or more run directories; the first is the base of the paired differences."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for comparison.md/.html.",
        show_default="the runs' common parent folder, else ./comparison",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Side-by-side leak-free UF1/UAR of several runs, with paired differences.

    Per-seed paired differences are taken versus the first run; a difference is marked when
    it exceeds the seed noise (two-sided paired t-test over the common seeds at 0.05; see
    docs/reports.md). A run on other input data, under another protocol or with other classes
    than the first gets no paired differences (the comparison says why); the same directory
    given twice is refused. Writes comparison.md, comparison.html and comparison_full.png.
    """
    from glfnet.report.compare import compare_runs, default_out

    show_comparison(compare_runs(runs), out or default_out(runs), as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add `report` and `compare` to the app."""
    app.command("report")(report)
    app.command("compare")(compare)
