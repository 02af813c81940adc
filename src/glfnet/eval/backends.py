"""Where a run's units of work are trained: this process, local worker processes, or Ray.

A *unit* is a list of (seed, fold) pairs trained together by :func:`glfnet.eval.runner.train_unit`
(one batched model with ``fold_batch`` > 1). Every backend runs the same function on the same
arguments and hands each result back to the process that runs the protocol, which writes it
to the run directory; so a run gives the same results on every backend and resumes across
them. ``local``: in this process (one worker, or a GPU) or in ``cfg.jobs`` worker processes
(joblib/loky), each single-threaded on CPU. ``ray``: one Ray task per unit on a local Ray
runtime or the cluster at ``cfg.ray_address`` (docs/engine.md); the flow set goes to Ray's
object store once, the code is not shipped (every node has the same glfnet installed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from glfnet.config import Config
from glfnet.errors import ConfigError, GlfnetError

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet
    from glfnet.eval.splits import Fold

Unit = list[tuple[int, "Fold"]]
# a unit of work: (seed, fold) pairs for a protocol run, or ``glfnet tune``'s trainings
Work = Callable[["FlowSet", Config, Any], list[Any]]


def n_workers(cfg: Config, n_units: int) -> int:
    """Local worker processes: ``cfg.jobs`` (0 = one per CPU core) on CPU, never more than the
    units to run; 1 on a GPU."""
    if cfg.device == "cuda":
        return 1
    return max(1, min(cfg.jobs or os.cpu_count() or 1, n_units))


def describe(unit: Sequence[Any]) -> str:
    """What a unit trains, in words: ``seed 0 fold casme2-sub01`` for (seed, fold) pairs, an
    item's own ``label`` otherwise (the trainings of ``glfnet tune``)."""
    return ", ".join(
        item.label if hasattr(item, "label") else f"seed {item[0]} fold {item[1].name}" for item in unit
    )


# A unit whose Ray worker process dies (killed, out of memory, a lost node) runs again this
# many times: a unit reads only its arguments and writes nothing, so a rerun is safe.
RAY_RETRIES = 3


def run_units(
    fs: FlowSet, cfg: Config, units: Sequence[Sequence[Any]], work: Work, finished: Callable[[Any], None]
) -> int:
    """Run ``work(fs, cfg, unit)`` for every unit on ``cfg``'s backend; ``finished(result)``
    for each result, in this process, as units complete (in any order). Returns the number of
    workers that trained units at once (0 when there was nothing to run)."""
    if not units:
        return 0
    if cfg.backend == "ray":
        return _run_ray(fs, cfg, units, work, finished)
    workers = n_workers(cfg, len(units))
    if workers == 1:
        for unit in units:
            for result in work(fs, cfg, unit):
                finished(result)
        return 1
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
    for results in par(delayed(work)(fs, cfg, unit) for unit in units):
        for result in results:
            finished(result)
    return workers


def _run_ray(
    fs: FlowSet, cfg: Config, units: Sequence[Sequence[Any]], work: Work, finished: Callable[[Any], None]
) -> int:
    """One Ray task per unit (one CPU, or one GPU with ``device`` cuda), results handed to
    ``finished`` in completion order. Uses the Ray runtime this process is connected to, or
    connects to ``cfg.ray_address``, or starts a local runtime (shut down at the end)."""
    import ray

    started = _ray_connect(cfg)
    try:
        gpu = cfg.device == "cuda"
        task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=RAY_RETRIES)(work)
        fs_ref = ray.put(fs)  # once: every task reads the same copy from the object store
        pending = {task.remote(fs_ref, cfg, unit): unit for unit in units}
        slots = int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1))
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(done[0])
                for result in _ray_result(ray, done[0], unit):
                    finished(result)
        except BaseException:  # Ctrl-C, or a unit that failed: stop what is still running
            _ray_cancel(ray, list(pending))
            raise
        return max(1, min(slots, len(units)))
    finally:
        if started:
            ray.shutdown()


def _ray_cancel(ray: Any, refs: list[Any], patience: float = 10.0) -> None:
    """Cancel the tasks (killing their workers). A task whose worker is still starting can
    miss a cancel, so it is repeated until every task has ended, for ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while refs and time.monotonic() < deadline:
        for ref in refs:
            ray.cancel(ref, force=True)
        refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)[1]


def _ray_connect(cfg: Config) -> bool:
    """Connect to Ray (see :func:`_run_ray`), quietly; whether this call started the
    connection (and so shuts it down)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    address = cfg.ray_address
    try:
        if address:
            why = _unreachable(address)  # Ray itself retries an address that never answers for minutes
            if why:
                raise ConnectionError(f"nothing answers there: {why}")
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(
                num_cpus=cfg.jobs or os.cpu_count() or 1,
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        if address:
            raise ConfigError(
                f"could not connect to the Ray cluster at `ray_address` {address} ({e}). Check that "
                "it runs (`ray status` on its head node) and the address (HEAD:6379, ray://HEAD:10001 "
                "or auto)."
            ) from None
        raise ConfigError(f"could not start a local Ray runtime ({e}).") from None
    return True


def _unreachable(address: str) -> str | None:
    """Why no TCP connection opens to a ``HOST:PORT`` or ``ray://HOST:PORT`` address; None
    when one does, or for an address without a port (``auto``)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:  # not a port number: Ray's own message says what is wrong
        return None
    if not host or not port:
        return None
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as e:
        return str(e) or type(e).__name__
    return None


def _ray_result(ray: Any, ref: Any, unit: Sequence[Any]) -> list[Any]:
    """The unit's results; a glfnet error raised in the task as itself, a unit whose worker
    died more often than it was retried as a GlfnetError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, GlfnetError):
            raise e.cause from None
        raise
    except ray.exceptions.RayError as e:
        raise GlfnetError(
            f"Ray could not train {describe(unit)}: {type(e).__name__} after {RAY_RETRIES} retries "
            f"({str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'}). The folds "
            "finished so far are saved: run the same command again to resume."
        ) from None
