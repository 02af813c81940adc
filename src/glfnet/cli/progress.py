"""Progress on screen: the one progress bar style, a run under it (folds of `glfnet loso` and
`ablate`, trainings of `glfnet tune`) and the run's cost line at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from glfnet.cli.messages import console, duration, plural

if TYPE_CHECKING:
    from rich.progress import Progress

    from glfnet.config import Config
    from glfnet.data.flowsets import FlowSet
    from glfnet.eval.rundir import Metrics, Throughput

OnProgress = Callable[[int, int, str], None]
OnLog = Callable[[str], None]


@contextmanager
def progress_bar(on: Console, disable: bool = False) -> Iterator[Progress]:
    """The one progress bar style: description, bar, done/total, elapsed, remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=on,
        disable=disable,
        transient=False,
    ) as bar:
        yield bar


def track(
    run: Callable[[OnProgress, OnLog], Metrics],
    unit: str = "fold",
    quiet: bool = False,
    on: Console | None = None,
    trained: tuple[str, str] = ("fold", ""),
) -> Metrics:
    """``run(progress, log)`` (a library run: :func:`~glfnet.eval.runner.run_protocol` or
    :func:`~glfnet.eval.tune.run_tune`) under a progress bar over its ``unit``s (shown once
    the run has started: nothing before an error; units finished in any order, as a parallel
    or Ray run finishes them); units reused from an earlier run are summed up in one line,
    and at the end what this invocation trained (``trained``: the word and a note), in how
    long, how fast. Returns the metrics."""
    on = on or console
    with progress_bar(on, disable=quiet) as bar:
        task = None

        def progress(done: int, total: int, label: str) -> None:
            nonlocal task
            if task is None:
                if done and not quiet:
                    bar.console.print(f"{plural(done, unit)} reused from an earlier run")
                task = bar.add_task(f"{unit}s", total=total)
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{unit}s" if label == "starting" else f"{unit}s ({label})",
            )

        def log(text: str) -> None:
            if not quiet:
                bar.console.print(text, markup=False)

        metrics = run(progress, log)
    if metrics.throughput and metrics.throughput.folds_trained and not quiet:
        on.print(throughput_line(metrics.throughput, *trained))
    return metrics


def run_with_progress(
    fs: FlowSet,
    cfg: Config,
    out: Path,
    overwrite: bool = False,
    quiet: bool = False,
    on: Console | None = None,
) -> Metrics:
    """:func:`~glfnet.eval.runner.run_protocol` under a progress bar over folds (:func:`track`)."""
    from glfnet.eval.runner import run_protocol

    return track(
        lambda progress, log: run_protocol(fs, cfg, out, overwrite=overwrite, progress=progress, log=log),
        quiet=quiet,
        on=on,
    )


def throughput_line(t: Throughput, what: str = "fold", note: str = "") -> str:
    """``trained 40 folds in 3 min 12 s: 2,450 training samples/s (local, 2 workers)``."""
    return (
        f"trained {plural(t.folds_trained, what)}{note} in {duration(t.seconds)}: "
        f"{t.samples_per_second:,.0f} training samples/s ({t.backend}, {plural(t.workers, 'worker')})"
    )
