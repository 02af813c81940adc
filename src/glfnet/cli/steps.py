"""Steps the commands share: reading a flow set, holding a run directory, showing results
(tables, JSON), writing a run's report and a comparison."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from glfnet.cli.messages import console, plural, warn

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet
    from glfnet.eval.rundir import Metrics


def load_data(data: Path, labels: Path | None, skip_bad: bool) -> FlowSet:
    """Read a flow set; excluded samples (``skip_bad``) and its warnings (samples left out
    by prepare) are warned."""
    from glfnet.data.flowsets import load_flowset

    fs = load_flowset(data, labels=labels, skip_bad=skip_bad)
    for p in fs.problems:
        warn(f"excluded {p.sample_id or ''}: {p}")
    for w in fs.warnings:
        warn(w)
    return fs


def set_size(fs: FlowSet) -> str:
    """ "442 samples, 68 subjects": subjects counted per database (equal names in two
    databases are two subjects, as the folds count them)."""
    from glfnet.eval.splits import subject_keys

    return f"{plural(len(fs), 'sample')}, {plural(len(set(subject_keys(fs.samples))), 'subject')}"


@contextmanager
def holding(out: Path) -> Iterator[None]:
    """Hold the run directory ``out``'s writer lock for the block (a command's whole run, data
    reading and report included; the library takes it again inside): a second writer is
    refused at once. Warns when the lock of a run that died without releasing it is taken
    over (that run is resumed)."""
    from glfnet.eval.rundir import ANOTHER_OUT, RunDir

    with RunDir(out).hold(ANOTHER_OUT) as lock:
        if lock is not None and lock.previous is not None and lock.depth == 1:
            warn(f"{out} was locked by a run that ended without releasing it ({lock.previous}); taken over")
        yield


def print_results(metrics: Metrics, on: Console | None = None) -> None:
    """The leak-free table, and the oracle's (labelled optimistic) when the run has one."""
    from glfnet.report.tables import rich_table

    on = on or console
    on.print(rich_table(metrics, "honest"))
    if metrics.oracle:
        on.print(rich_table(metrics, "oracle"))
        on.print(
            "[yellow]The oracle table picks each subject's best epoch on its own test "
            "data, as several published papers do. It is optimistic and not a result; "
            "quote the leak-free table.[/yellow]"
        )


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (nothing else goes there with ``--json``); objects
    with ``to_dict`` (Metrics, ...) as that dict, numpy values as numbers and lists, paths as
    text."""

    def plain(o: Any) -> Any:
        if hasattr(o, "to_dict"):
            return o.to_dict()
        return o.tolist() if hasattr(o, "tolist") else str(o)

    typer.echo(json.dumps(obj, indent=2, default=plain))


def write_report(out: Path, on: Console | None = None) -> None:
    """Write report.md/report.html into the run directory; a failure only warns (the results
    are written already)."""
    from glfnet.errors import GlfnetError
    from glfnet.report.build import build_report

    try:
        paths = build_report(out)
    except GlfnetError as e:  # the results are written; a failed report must not hide them
        warn(
            f"the report could not be built ({e}); the results above are in {out}. "
            f"Retry with `glfnet report {out}`."
        )
        return
    (on or console).print(f"report: {', '.join(str(p) for p in paths)}")


def show_comparison(comp: Any, out: Path, as_json: bool = False) -> None:
    """Print a comparison's tables and warnings, write its files into ``out``. With
    ``as_json`` stdout gets one JSON object instead (the comparison and the files written)."""
    from glfnet.report.compare import rich_tables, write_comparison

    for table in [] if as_json else rich_tables(comp):
        console.print(table)
    for w in comp.warnings:
        warn(w)
    paths = write_comparison(comp, out)
    if as_json:
        print_json({**comp.to_dict(), "files": [str(p) for p in paths]})
    else:
        console.print(f"comparison: {', '.join(str(p) for p in paths)}")
