"""Raw dataset folders -> flow cache: read each database, apply a protocol, check the counts
against the complete databases, compute the flows (what ``glfnet prepare`` runs).

    plan = plan_prepare([Source("casme2", root)], protocol=None, params=PrepParams())
    result = run_prepare(plan, out, jobs=0)     # resumable; 0 = one worker per core
    count_warnings(plan.selection)              # selection vs the complete databases
    require_processed(result)                   # DataError when no sample has a flow

Nothing here prints: what a user should hear comes back as text (``plan.warnings``,
:func:`count_warnings`) or tables (:func:`count_table`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from glfnet.data import naming
from glfnet.data.protocols import DEFAULT_PROTOCOL, Protocol, Selection, check_protocol_for, get_protocol
from glfnet.data.readers import DatasetScan, get_reader
from glfnet.errors import ConfigError, DataError
from glfnet.preprocess.pipeline import PrepareResult, PrepParams, prepare_cache

# the frame set the MEGC2019 composite's CASME II counts are defined on
MEGC2019_CASME2_SHEET = "20140508"


@dataclass(frozen=True)
class Source:
    """One database to read: its key (``casme2``, ``samm``, ...), root folder, annotation sheet
    (None: found in or beside the root) and frame set (``auto``, ``raw``, ``selected``,
    ``cropped``)."""

    database: str
    root: Path
    annotations: Path | None = None
    variant: str = "auto"


@dataclass
class PreparePlan:
    """What will be computed: the protocol's selection over the scanned databases."""

    protocol: Protocol
    params: PrepParams
    scans: list[DatasetScan]
    selection: Selection
    warnings: list[str]  # reader notes, frame-set and sheet mismatches


def _display(db: str) -> str:
    return naming.DB_DISPLAY.get(db, db)


def _scan_warnings(scan: DatasetScan, protocol: Protocol, params: PrepParams) -> list[str]:
    name = _display(scan.database)
    out = [f"{name}: {note}" for note in scan.notes]
    if scan.variant == "cropped" and params.align:
        out.append(f"{name}: these are pre-cropped frames; `align=False` uses them as they are")
    if (
        protocol.name == "megc2019"
        and scan.database == "casme2"
        and scan.annotations
        and MEGC2019_CASME2_SHEET not in scan.annotations.name
    ):
        out.append(
            f"megc2019 is defined on CASME2-coding-{MEGC2019_CASME2_SHEET}.xlsx; "
            f"{scan.annotations.name} may give other counts"
        )
    return out


def plan_prepare(
    sources: Sequence[Source], protocol: str | None = None, params: PrepParams | None = None
) -> PreparePlan:
    """Read ``sources`` and select ``protocol``'s samples (default: the first database's own
    protocol). Raises when the protocol does not cover a database or selects nothing."""
    if not sources:
        raise ConfigError("`sources`: give at least one database folder")
    params = params or PrepParams()
    proto = get_protocol(protocol or DEFAULT_PROTOCOL[sources[0].database])
    check_protocol_for(proto, [s.database for s in sources])
    scans, samples, warnings = [], [], []
    for src in sources:
        scan = get_reader(src.database).read(src.root, annotations=src.annotations, variant=src.variant)
        scans.append(scan)
        samples.extend(scan.samples)
        warnings.extend(_scan_warnings(scan, proto, params))
    selection = proto.select(samples)
    if not selection.included:
        raise DataError(
            f"no sample of {', '.join(sc.database for sc in scans)} fits protocol "
            f"{proto.name}; check `protocol` and the emotion column.",
            problems=[f"{s.sample_id}: {r}" for s, r in selection.excluded[:20]],
        )
    return PreparePlan(proto, params, scans, selection, warnings)


def resolve_jobs(jobs: int) -> int:
    """Worker processes: ``jobs``, or one per CPU core for 0."""
    if jobs < 0:
        raise ConfigError(f"`jobs` {jobs}: give 0 (all cores) or a positive number.")
    return jobs or (os.cpu_count() or 1)


def run_prepare(
    plan: PreparePlan,
    out: str | Path,
    jobs: int = 0,
    export_png: str | Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, dict | None], None] | None = None,
) -> PrepareResult:
    """Compute the plan's flows into the cache ``out`` (resuming one made with the same
    settings); see :func:`glfnet.preprocess.pipeline.prepare_cache`."""
    return prepare_cache(
        plan.selection,
        Path(out),
        plan.params,
        scans=plan.scans,
        jobs=resolve_jobs(jobs),
        overwrite=overwrite,
        progress=progress,
        export_png=export_png,
    )


def require_processed(result: PrepareResult) -> None:
    """Raise DataError when not one sample of ``result`` has a flow."""
    if result.status_counts()["ok"] == 0:
        raise DataError(
            f"no sample could be processed; the manifest "
            f"{result.cache_dir}/manifest.csv lists the reason for each."
        )


def count_warnings(selection: Selection) -> list[str]:
    """Where a database's selection differs from the complete database's counts (classes,
    subjects): usually a missing or partial download."""
    protocol, got, out = selection.protocol, selection.counts(), []
    for db, want in protocol.expected.items():
        if db not in got:
            continue
        if dict(got[db]) != want:
            w = "/".join(str(want.get(c, 0)) for c in selection.classes)
            h = "/".join(str(got[db].get(c, 0)) for c in selection.classes)
            out.append(
                f"{_display(db)}: {protocol.name} selects {h} "
                f"({'/'.join(selection.classes)}); the complete database gives {w}"
            )
        subjects = protocol.expected_subjects.get(db)
        n_subj = len({s.subject for s, _ in selection.included if s.database == db})
        if subjects and n_subj != subjects:
            out.append(f"{_display(db)}: {n_subj} subjects selected; the complete database gives {subjects}")
    return out


def count_table(result: PrepareResult, classes: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of samples with a flow / selected, per class and database (plus ``all``
    when there are several), then subjects and the failed and missing counts."""
    m = result.manifest
    groups = [(_display(db), g) for db, g in m.groupby("database", sort=True)]
    if len(groups) > 1:
        groups.append(("all", m))

    def cell(g, mask) -> str:
        return f"{int((mask & (g['status'] == 'ok')).sum())}/{int(mask.sum())}"

    rows = [[c, *[cell(g, g["label"] == c) for _, g in groups]] for c in classes]
    rows.append(["total", *[cell(g, g["label"] == g["label"]) for _, g in groups]])
    rows.append(["subjects", *[str(g.loc[g["status"] == "ok", "subject"].nunique()) for _, g in groups]])
    for st in ("failed", "missing"):
        rows.append([st, *[str(int((g["status"] == st).sum())) for _, g in groups]])
    return ["class", *[name for name, _ in groups]], rows
