"""`glfnet inspect`: what a flow set holds and every problem in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from glfnet.cli.common import console
from glfnet.data.naming import DB_DISPLAY


def inspect(
    data: Path = typer.Argument(..., help="Flow set: a folder of '<subject>_<clip> .png' files "
                                "with its label CSV, a per-subject LOSO tree "
                                "(<root>/<subject>/u_train|u_test/<label>/), or a cache from "
                                "`glfnet prepare`."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label CSV for a flat folder "
                                          "(HTNet header or headerless MEGC2019 ground truth). "
                                          "Default: the one CSV inside the folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
):
    """Count samples, subjects, databases and classes, and list every problem found.

    Exits 1 when problems are found (after listing them all), 0 otherwise.
    """
    from glfnet.data.flowsets import load_flowset

    fs = load_flowset(data, labels=labels, skip_bad=True)
    info = fs.summary()
    if as_json:
        keys = ("n_samples", "n_subjects", "databases", "classes", "image_shape", "problems")
        out = {k: info[k] for k in keys}
        out.update({k: info[k] for k in info if k not in keys})
        typer.echo(json.dumps(out, indent=2))
    else:
        console.print(f"[bold]{data}[/bold]  ({info['kind']} layout, {info['encoding']} encoding)")
        console.print(f"{info['n_samples']} samples, {info['n_subjects']} subjects, input "
                      f"{'x'.join(map(str, info['image_shape'] or []))} (channels, height, width)")
        t = Table("database", "samples", "subjects", *fs.classes, title="Samples per database and class")
        for db, part in fs.samples.groupby("database"):
            t.add_row(DB_DISPLAY.get(db, db), str(len(part)), str(part["subject"].nunique()),
                      *[str(int((part["label"] == c).sum())) for c in fs.classes])
        t.add_row("all", str(len(fs)), str(info["n_subjects"]),
                  *[str(info["classes"][c]) for c in fs.classes], style="bold")
        console.print(t)
        for note in info["notes"]:
            console.print(f"note: {note}")
        if fs.problems:
            console.print(f"[bold red]{len(fs.problems)} problem(s)[/bold red] (training refuses "
                          "these inputs unless --skip-bad excludes the samples):")
            for p in fs.problems:
                console.print(f"  [{p.kind}] {p.where}: {p.message}", markup=False)
        else:
            console.print("[green]no problems found[/green]")
    if fs.problems:
        raise typer.Exit(1)


def register(app) -> None:
    app.command("inspect")(inspect)
