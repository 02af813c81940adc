"""`glfnet prepare`: raw dataset folders -> flow cache (issue 3).

One sub-command per database (``casme2``, ``samm``, ``smic``, ``smic-e``, ``casme3a``,
``mmew``) and ``megc2019`` for the composite. Each reads the official layout
(:mod:`glfnet.data.readers`), applies a protocol (:mod:`glfnet.data.protocols`), and writes
the cache (:func:`glfnet.preprocess.pipeline.prepare_cache`), then prints the counts per
database and class, the anomalies, and the expected samples it could not find.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer

from glfnet.cli import common
from glfnet.data import naming
from glfnet.errors import ConfigError, DataError

prepare_app = typer.Typer(
    name="prepare",
    help=(
        "Raw dataset folders -> flow cache (face crop, TV-L1 flow + strain), read by "
        "`glfnet loso` and `glfnet inspect`.\n\n"
        "One sub-command per database, plus `megc2019` for the composite "
        "(CASME II + SAMM + SMIC-HS, 442 samples). `glfnet prepare casme2 --help` shows the "
        "folder layout it expects. Re-running with the same --out resumes: finished samples "
        "are kept."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

# ---------------------------------------------------------------------------- shared options
Root = Annotated[Path, typer.Option("--root", help="The database folder (layout above).",
                                    show_default=False)]
Annotations = Annotated[Optional[Path], typer.Option(
    "--annotations", help="The annotation sheet, when it is not in or beside --root.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Cache folder to write (or resume).",
                                   show_default=False)]
Protocol = Annotated[Optional[str], typer.Option(
    "--protocol", help="Sample set: megc2019, casme2-5, samm-5, smic-3 or all. Default: the "
    "database's own (casme2-5, samm-5, smic-3, all).")]
Size = Annotated[int, typer.Option("--size", help="Side of the stored flow, px (network "
                                   "input; resized last).")]
Crop = Annotated[int, typer.Option("--crop", help="Face crop side, px, on which the flow "
                                   "is computed.")]
Margin = Annotated[float, typer.Option("--margin", help="Crop margin per side, fraction of "
                                       "the landmark box.")]
Align = Annotated[bool, typer.Option("--align/--no-align", help="Detect, level and crop the "
                                     "face; --no-align for already-cropped frames.")]
Apex = Annotated[str, typer.Option("--apex", help="Apex where the annotation has none or an "
                                   "invalid one: midpoint or flow-peak. Never the label.")]
Flow = Annotated[str, typer.Option("--flow", help="tvl1 (reference), farneback or dis "
                                   "(faster).")]
Variant = Annotated[str, typer.Option("--variant", help="Frame set: auto, raw, selected "
                                      "(CASME II), cropped (CASME II, SMIC).")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes; 0 = all cores.")]
ExportPng = Annotated[Optional[Path], typer.Option(
    "--export-png", help="Also write the STSTNet 28x28 PNG layout + labels.csv there.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a cache in --out made "
                                         "with other settings.")]


def _jobs(n: int) -> int:
    if n < 0:
        raise ConfigError(f"--jobs {n}: give 0 (all cores) or a positive number.")
    return n or (os.cpu_count() or 1)


def _params(size, crop, margin, align, flow, apex):
    from glfnet.preprocess.pipeline import PrepParams

    return PrepParams(crop_size=crop, size=size, margin=margin, align=align, flow=flow,
                      apex=apex)


# ---------------------------------------------------------------------------- the run

def run_prepare(sources: list[tuple[str, Path, Path | None, str]], out: Path,
                protocol_name: str | None, params, jobs: int, export_png: Path | None,
                overwrite: bool):
    """Read ``sources`` [(database, root, annotations, variant)], select, compute, report."""
    from glfnet.data.protocols import DEFAULT_PROTOCOL, check_protocol_for, get_protocol
    from glfnet.data.readers import get_reader
    from glfnet.preprocess.pipeline import prepare_cache

    con = common.console
    protocol = get_protocol(protocol_name or DEFAULT_PROTOCOL[sources[0][0]])
    check_protocol_for(protocol, [db for db, *_ in sources])
    jobs = _jobs(jobs)
    scans, samples = [], []
    for db, root, sheet, variant in sources:
        reader = get_reader(db)
        scan = reader.read(root, annotations=sheet, variant=variant)
        scans.append(scan)
        samples.extend(scan.samples)
        sheet_note = f", sheet {scan.annotations}" if scan.annotations else ""
        con.print(f"{reader.display}: {len(scan.samples)} clips in {scan.frames_dir} "
                  f"({scan.variant} frames{sheet_note})")
        for note in scan.notes:
            common.warn(f"{reader.display}: {note}")
        if scan.variant == "cropped" and params.align:
            common.warn(f"{reader.display}: these are pre-cropped frames; --no-align uses them "
                        "as they are")
        if protocol.name == "megc2019" and db == "casme2" and scan.annotations \
                and "20140508" not in scan.annotations.name:
            common.warn(f"megc2019 is defined on CASME2-coding-20140508.xlsx; "
                        f"{scan.annotations.name} may give other counts")
    selection = protocol.select(samples)
    con.print(f"Protocol {protocol.name}: {len(selection.included)} samples selected, "
              f"{len(selection.excluded)} left out; classes {', '.join(selection.classes)}")
    if not selection.included:
        raise DataError(f"no sample of {', '.join(sc.database for sc in scans)} fits protocol "
                        f"{protocol.name}; check --protocol and the emotion column.",
                        problems=[f"{s.sample_id}: {r}" for s, r in selection.excluded[:20]])
    result = _with_progress(lambda progress: prepare_cache(
        selection, out, params, scans=scans, jobs=jobs, overwrite=overwrite,
        progress=progress, export_png=export_png))
    _report(result, selection, protocol)
    if export_png is not None:
        con.print(f"PNG export (STSTNet layout): {export_png}")
    st = result.status_counts()
    if st["ok"] == 0:
        raise DataError(f"no sample could be processed; the manifest {out}/manifest.csv "
                        "lists the reason for each (above).")
    return result


def _with_progress(run):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=common.err_console, transient=False) as bar:
        task = None

        def progress(done: int, total: int, row):
            nonlocal task
            if task is None:
                task = bar.add_task("flow", total=max(total, 1) if total else 0)
                if total == 0:
                    bar.update(task, description="flow (all samples already in the cache)")
            else:
                bar.update(task, completed=done)

        return run(progress)


def _report(result, selection, protocol) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    con = common.console
    m = result.manifest
    classes = selection.classes
    table = Table(title=f"{protocol.name}: samples with a flow / selected", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True,
                  title_justify="left")
    groups = [(naming.DB_DISPLAY.get(db, db), g) for db, g in m.groupby("database", sort=True)]
    if len(groups) > 1:
        groups.append(("all", m))
    table.add_column("class", no_wrap=True)
    for name, _ in groups:
        table.add_column(name, justify="right", no_wrap=True)

    def cell(g, mask) -> str:
        return f"{int((mask & (g['status'] == 'ok')).sum())}/{int(mask.sum())}"

    for c in classes:
        table.add_row(c, *[cell(g, g["label"] == c) for _, g in groups])
    table.add_row("total", *[cell(g, g["label"] == g["label"]) for _, g in groups])
    table.add_row("subjects", *[str(g.loc[g["status"] == "ok", "subject"].nunique())
                                for _, g in groups])
    for st in ("failed", "missing"):
        table.add_row(st, *[str(int((g["status"] == st).sum())) for _, g in groups])
    con.print(table)
    _compare_expected(selection, protocol)
    flagged = m[m["anomalies"] != ""]
    if len(flagged):
        con.print(f"\nAnomalies ({len(flagged)} samples; also in manifest.csv):")
        for r in flagged.itertuples():
            con.print(f"  {escape(r.sample_id)} \\[{r.status}]: {escape(r.anomalies)}",
                      markup=True)
    missing = m[m["status"] == "missing"]
    if len(missing):
        con.print(f"\nExpected but not found on disk ({len(missing)}):")
        for r in missing.itertuples():
            con.print(f"  {escape(r.sample_id)} ({escape(r.clip_dir or 'no folder')})",
                      markup=True)
    ex = result.excluded
    flagged_ex = ex[ex["anomalies"] != ""]
    if len(flagged_ex):
        con.print(f"\nAnomalies in samples left out by {protocol.name} ({len(flagged_ex)}):")
        for r in flagged_ex.itertuples():
            con.print(f"  {escape(r.sample_id)}: {escape(r.anomalies)}", markup=True)
    if len(ex):
        reasons = Counter(ex["reason"])
        shown = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(8))
        con.print(f"\nLeft out by {protocol.name}: {len(ex)} ({escape(shown)}); "
                  f"listed in {result.cache_dir / 'excluded.csv'}")
    st = result.status_counts()
    con.print(f"\nCache {result.cache_dir}: {st['ok']} ok, {st['failed']} failed, "
              f"{st['missing']} missing ({result.computed} computed, {result.skipped} "
              f"already there). Next: glfnet inspect {result.cache_dir}")


def _compare_expected(selection, protocol) -> None:
    """Tell when a database's selection differs from the complete database's counts."""
    got = selection.counts()
    for db, want in protocol.expected.items():
        if db not in got:
            continue
        have = got[db]
        if dict(have) != want:
            w = "/".join(str(want.get(c, 0)) for c in selection.classes)
            h = "/".join(str(have.get(c, 0)) for c in selection.classes)
            common.warn(f"{naming.DB_DISPLAY.get(db, db)}: {protocol.name} selects {h} "
                        f"({'/'.join(selection.classes)}); the complete database gives {w}")
        subjects = protocol.expected_subjects.get(db)
        n_subj = len({s.subject for s, _ in selection.included if s.database == db})
        if subjects and n_subj != subjects:
            common.warn(f"{naming.DB_DISPLAY.get(db, db)}: {n_subj} subjects selected; the "
                        f"complete database gives {subjects}")


# ---------------------------------------------------------------------------- commands

def _single(db: str):
    from glfnet.data.readers import READERS

    reader = READERS[db]

    def command(root: Root, out: Out, annotations: Annotations = None,
                protocol: Protocol = None, size: Size = 28, crop: Crop = 128,
                margin: Margin = 0.15, align: Align = True, apex: Apex = "midpoint",
                flow: Flow = "tvl1", variant: Variant = "auto", jobs: Jobs = 0,
                export_png: ExportPng = None, overwrite: Overwrite = False):
        params = _params(size, crop, margin, align, flow, apex)
        run_prepare([(db, root, annotations, variant)], out, protocol, params, jobs,
                    export_png, overwrite)

    sheet = "" if reader.has_sheet else " (no sheet: labels from the folders)"
    command.__doc__ = (f"Prepare {reader.display}{sheet}.\n\nExpected layout:\n\n"
                       f"{_escape(reader.layout)}")
    return command


def megc2019(out: Out,
             casme2: Annotated[Optional[Path], typer.Option(
                 "--casme2", help="CASME II root (see `prepare casme2 --help`).")] = None,
             samm: Annotated[Optional[Path], typer.Option(
                 "--samm", help="SAMM root (see `prepare samm --help`).")] = None,
             smic: Annotated[Optional[Path], typer.Option(
                 "--smic", help="SMIC root (see `prepare smic --help`).")] = None,
             casme2_annotations: Annotated[Optional[Path], typer.Option(
                 "--casme2-annotations", help="CASME II coding sheet, if not beside its "
                 "root.")] = None,
             samm_annotations: Annotated[Optional[Path], typer.Option(
                 "--samm-annotations", help="SAMM sheet, if not beside its root.")] = None,
             size: Size = 28, crop: Crop = 128, margin: Margin = 0.15, align: Align = True,
             apex: Apex = "midpoint", flow: Flow = "tvl1", jobs: Jobs = 0,
             export_png: ExportPng = None, overwrite: Overwrite = False):
    sources = [(db, root, ann, "auto") for db, root, ann in
               (("casme2", casme2, casme2_annotations), ("samm", samm, samm_annotations),
                ("smic", smic, None)) if root is not None]
    if not sources:
        raise ConfigError("megc2019 needs the database folders: --casme2 DIR --samm DIR "
                          "--smic DIR (see `glfnet prepare megc2019 --help`).")
    for db in ("casme2", "samm", "smic"):
        if db not in [s[0] for s in sources]:
            common.warn(f"--{db} not given: the composite will lack its "
                        f"{naming.DB_DISPLAY[db]} samples")
    params = _params(size, crop, margin, align, flow, apex)
    run_prepare(sources, out, "megc2019", params, jobs, export_png, overwrite)


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def _megc_help() -> str:
    from glfnet.data.readers import READERS

    layouts = "\n\n".join(f"--{db}:\n{_escape(READERS[db].layout)}"
                          for db in ("casme2", "samm", "smic"))
    return ("Prepare the MEGC2019 composite: CASME II + SAMM + SMIC-HS, classes negative / "
            "positive / surprise (442 samples, 68 subjects, 250/109/83 when all three are "
            "complete).\n\nRules: CASME II 2014 sheet, disgust+repression -> negative, "
            "happiness -> positive, surprise; sub04/EP12_01f and sub05/EP09_05f dropped. SAMM "
            "micro rows except Other; anger/contempt/disgust/fear/sadness -> negative. SMIC-HS "
            "label from the folder.\n\nExpected layouts (the sheets in or beside each root):"
            f"\n\n{layouts}")


def register(app) -> None:
    from glfnet.data.readers import READERS

    for db in READERS:
        command = _single(db)
        prepare_app.command(db, help=command.__doc__)(command)
    prepare_app.command("megc2019", help=_megc_help())(megc2019)
    app.add_typer(prepare_app, name="prepare")
