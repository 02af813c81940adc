"""Where a run's units of work are trained: this process, local worker processes, or Ray.

A *unit* is a list of (seed, fold) pairs trained together by :func:`glfnet.eval.runner.train_unit`
(one batched model with ``fold_batch`` > 1). Every backend runs the same function on the same
arguments and hands each result back to the process that runs the protocol, which writes it
to the run directory; so a run gives the same results on every backend and resumes across
them. ``local``: in this process (one worker, or a GPU) or in ``cfg.jobs`` worker processes
(joblib/loky), each single-threaded on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from glfnet.config import Config

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet
    from glfnet.eval.splits import Fold

Unit = list[tuple[int, "Fold"]]
Work = Callable[["FlowSet", Config, Unit], list[Any]]


def n_workers(cfg: Config, n_units: int) -> int:
    """Local worker processes: ``cfg.jobs`` (0 = one per CPU core) on CPU, never more than the
    units to run; 1 on a GPU."""
    if cfg.device == "cuda":
        return 1
    return max(1, min(cfg.jobs or os.cpu_count() or 1, n_units))


def run_units(
    fs: FlowSet, cfg: Config, units: list[Unit], work: Work, finished: Callable[[Any], None]
) -> None:
    """Run ``work(fs, cfg, unit)`` for every unit on ``cfg``'s backend; ``finished(result)``
    for each result, in this process, as units complete (in any order)."""
    if not units:
        return
    workers = n_workers(cfg, len(units))
    if workers == 1:
        for unit in units:
            for result in work(fs, cfg, unit):
                finished(result)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
    for results in par(delayed(work)(fs, cfg, unit) for unit in units):
        for result in results:
            finished(result)
