"""What `glfnet prepare` (and the demo's preprocessing step) shows: the plan (clips found,
the protocol's selection), a progress bar over the flows, the counts per database and class,
the anomalies and the samples missing or left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glfnet.cli.messages import console, err_console, plural, warn
from glfnet.cli.progress import progress_bar


def prepare_and_report(
    sources: list,
    out: Path,
    protocol: str | None,
    params: Any,
    jobs: int = 0,
    export_png: Path | None = None,
    overwrite: bool = False,
) -> Any:
    """`glfnet prepare` (and the demo's step 2): read and select (:func:`plan_prepare`),
    compute with a progress bar, print the counts, anomalies and missing samples; a
    DataError when no sample could be processed. Returns the PrepareResult."""
    from glfnet.preprocess import prepare as prep

    prep.resolve_jobs(jobs)  # a bad --jobs stops before any reading
    plan = prep.plan_prepare(sources, protocol, params)
    _show_plan(plan)
    with progress_bar(err_console) as bar:
        task = None

        def progress(done: int, total: int, row: dict | None) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("flow", total=max(total, 1) if total else 0)
                if total == 0:
                    bar.update(task, description="flow (all samples already in the cache)")
            else:
                bar.update(task, completed=done)

        result = prep.run_prepare(plan, out, jobs, export_png, overwrite, progress)
    _show_counts(result, plan)
    _show_samples(result, plan.selection.protocol.name)
    if export_png is not None:
        console.print(f"PNG export (STSTNet layout): {export_png}")
    prep.require_processed(result)
    return result


def _show_plan(plan: Any) -> None:
    from glfnet.data.naming import DB_DISPLAY

    for scan in plan.scans:
        sheet = f", sheet {scan.annotations}" if scan.annotations else ""
        console.print(
            f"{DB_DISPLAY.get(scan.database, scan.database)}: "
            f"{plural(len(scan.samples), 'clip')} in {scan.frames_dir} "
            f"({scan.variant} frames{sheet})"
        )
    for w in plan.warnings:
        warn(w)
    sel = plan.selection
    console.print(
        f"Protocol {plan.protocol.name}: {plural(len(sel.included), 'sample')} "
        f"selected, {len(sel.excluded)} left out; classes {', '.join(sel.classes)}"
    )


def _show_counts(result: Any, plan: Any) -> None:
    from rich import box
    from rich.table import Table

    from glfnet.preprocess.prepare import count_table, count_warnings

    header, rows = count_table(result, plan.selection.classes)
    table = Table(
        title=f"{plan.protocol.name}: samples with a flow / selected",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    table.add_column(header[0], no_wrap=True)
    for name in header[1:]:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for w in count_warnings(plan.selection):
        warn(w)


def _print_list(title: str, lines: list[str]) -> None:
    from rich.markup import escape

    console.print(title)
    for line in lines:
        console.print(f"  {escape(line)}", markup=True)


def _show_samples(result: Any, protocol: str) -> None:
    """Anomalies, expected samples not found, what the protocol left out, the cache's tally."""
    from collections import Counter

    from rich.markup import escape

    from glfnet.data.cache import MANIFEST_FILE
    from glfnet.preprocess.pipeline import EXCLUDED_FILE

    m, ex = result.manifest, result.excluded
    flagged = m[m["anomalies"] != ""]
    if len(flagged):
        _print_list(
            f"\nAnomalies ({len(flagged)} samples; also in {MANIFEST_FILE}):",
            [f"{r.sample_id} [{r.status}]: {r.anomalies}" for r in flagged.itertuples()],
        )
    missing = m[m["status"] == "missing"]
    if len(missing):
        _print_list(
            f"\nExpected but not found on disk ({len(missing)}):",
            [f"{r.sample_id} ({r.clip_dir or 'no folder'})" for r in missing.itertuples()],
        )
    flagged_ex = ex[ex["anomalies"] != ""]
    if len(flagged_ex):
        _print_list(
            f"\nAnomalies in samples left out by {protocol} ({len(flagged_ex)}):",
            [f"{r.sample_id}: {r.anomalies}" for r in flagged_ex.itertuples()],
        )
    if len(ex):
        shown = "; ".join(f"{r} ({n})" for r, n in Counter(ex["reason"]).most_common(8))
        console.print(
            f"\nLeft out by {protocol}: {len(ex)} ({escape(shown)}); "
            f"listed in {result.cache_dir / EXCLUDED_FILE}"
        )
    st = result.status_counts()
    console.print(
        f"\nCache {result.cache_dir}: {st['ok']} ok, {st['failed']} failed, "
        f"{st['missing']} missing ({result.computed} computed, {result.skipped} "
        f"already there). Next: glfnet inspect {result.cache_dir}"
    )
