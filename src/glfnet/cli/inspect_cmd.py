"""`glfnet inspect`: what a flow set holds and every problem in it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from glfnet.cli import options as o
from glfnet.cli.messages import console, plural
from glfnet.cli.steps import print_json

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet

# the JSON object's first keys, in this order
_JSON_FIRST = ("n_samples", "n_subjects", "databases", "classes", "image_shape", "problems")


def inspect(
    data: Path = typer.Argument(
        ...,
        help="Flow set: a folder of '<subject>_<clip> .png' files "
        "with its label CSV, a per-subject LOSO tree "
        "(<root>/<subject>/u_train|u_test/<label>/), or a cache from "
        "`glfnet prepare`.",
        show_default=False,
    ),
    labels: o.Labels = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Count samples, subjects, databases and classes, and list every problem found.

    Exits 1 when problems are found (after listing them all), 0 otherwise.
    """
    from glfnet.data.flowsets import load_flowset

    fs = load_flowset(data, labels=labels, skip_bad=True)
    info = fs.summary()
    if as_json:
        print_json(
            {**{k: info[k] for k in _JSON_FIRST}, **{k: v for k, v in info.items() if k not in _JSON_FIRST}}
        )
    else:
        _print_summary(data, fs, info)
    if fs.problems:
        raise typer.Exit(1)


def _print_summary(data: Path, fs: FlowSet, info: dict) -> None:
    from rich.table import Table

    from glfnet.data.naming import DB_DISPLAY

    console.print(f"[bold]{data}[/bold]  ({info['kind']} layout, {info['encoding']} encoding)")
    console.print(
        f"{plural(info['n_samples'], 'sample')}, {plural(info['n_subjects'], 'subject')}"
        f", input {'x'.join(map(str, info['image_shape'] or []))} (channels, height, "
        "width)"
    )
    t = Table("database", "samples", "subjects", *fs.classes, title="Samples per database and class")
    for db, part in fs.samples.groupby("database"):
        t.add_row(
            DB_DISPLAY.get(db, db),
            str(len(part)),
            str(part["subject"].nunique()),
            *[str(int((part["label"] == c).sum())) for c in fs.classes],
        )
    t.add_row(
        "all",
        str(len(fs)),
        str(info["n_subjects"]),
        *[str(info["classes"][c]) for c in fs.classes],
        style="bold",
    )
    console.print(t)
    for note in info["notes"]:
        console.print(f"note: {note}")
    if not fs.problems:
        console.print("[green]no problems found[/green]")
        return
    console.print(
        f"[bold red]{plural(len(fs.problems), 'problem')}[/bold red] (training refuses "
        "these inputs unless --skip-bad excludes the samples):"
    )
    for p in fs.problems:
        console.print(f"  [{p.kind}] {p.where}: {p.message}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `inspect` to the app."""
    app.command("inspect")(inspect)
