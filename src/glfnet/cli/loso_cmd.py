"""`glfnet loso`: leak-free leave-one-subject-out (or leave-one-database-out) evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
import yaml

from glfnet.cli.common import MODEL_HELP, console, parse_int_list, warn
from glfnet.config import Config
from glfnet.errors import ConfigError


def parse_model_args(items: list[str] | None) -> dict | None:
    """``["fusion=concat", "local_branch=false"]`` -> {"fusion": "concat", "local_branch": False}."""
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--model-arg {item!r}: write KEY=VALUE, e.g. fusion=concat")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def load_data(data: Path, labels: Optional[Path], skip_bad: bool):
    from glfnet.data.flowsets import load_flowset

    fs = load_flowset(data, labels=labels, skip_bad=skip_bad)
    for p in fs.problems:
        warn(f"excluded {p.sample_id or ''}: {p}")
    for note in fs.notes:
        if "excluded by prepare" in note:
            warn(note)
    return fs


def run_with_progress(fs, cfg, out: Path, overwrite: bool, quiet: bool = False) -> dict:
    """Run the protocol under a Rich progress bar over folds; returns metrics."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from glfnet.eval.runner import run_protocol

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                  console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task("folds", total=None)

        def progress(done, total, label):
            bar.update(task, completed=done, total=total, description=f"folds ({label})")

        def log(text):
            if not quiet:
                bar.console.print(text, markup=False)

        return run_protocol(fs, cfg, out, overwrite=overwrite, progress=progress, log=log)


def print_results(metrics: dict) -> None:
    from glfnet.report.tables import rich_table

    console.print(rich_table(metrics, "honest"))
    if metrics.get("oracle"):
        console.print(rich_table(metrics, "oracle"))
        console.print("[yellow]The oracle table picks each subject's best epoch on its own test "
                      "data, as several published papers do. It is optimistic and not a result; "
                      "quote the leak-free table.[/yellow]")


def loso(
    data: Path = typer.Argument(..., help="Flow set: folder of '<subject>_<clip> .png' + label "
                                "CSV, per-subject LOSO tree, or a `glfnet prepare` cache."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    model_arg: Optional[List[str]] = typer.Option(None, "--model-arg", help="Model option KEY=VALUE, "
                                                  "repeatable: global_branch=false, local_branch=false, "
                                                  "fusion=aff|concat|sum, global_attn=nonlocal|cbam|none."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs per fold (fixed; "
                                         f"never chosen on the test subject). Default {Config.epochs}."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Default {Config.batch_size}."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW, warm-up + "
                                       f"cosine). Default {Config.lr:g}."),
    loss: Optional[str] = typer.Option(None, "--loss", help="cb (class-balanced, the paper's) | ce."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, e.g. 0,1,2,3,4 or 0-4: "
                                        "results are mean ± std over them."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="loso (leave one subject out) | "
                                           "lodo (leave one database out)."),
    oracle: bool = typer.Option(False, "--oracle", help="Also score each subject's best epoch on "
                                "its own test data (optimistic, labelled, kept apart)."),
    val_subjects: Optional[float] = typer.Option(None, "--val-subjects", help="Early stopping on "
                                                 "this fraction of *training* subjects (0 = off)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default "
                                       "runs/<data>-<protocol>-<model>). Re-running the same "
                                       "command resumes it."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of options (keys as "
                                          "in a run's config.yaml); flags win."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Folds trained at once on CPU, "
                                       "each single-threaded (0 = one per core). Results do "
                                       "not depend on it."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bfloat16 autocast on cuda."),
    ensemble: Optional[int] = typer.Option(None, "--ensemble", help="Networks trained per fold "
                                           "from different seeds, probabilities averaged "
                                           f"(cost x K). Default {Config.ensemble}."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Test-time flip: average the "
                                       "prediction of each flow and its mirror (u negated). "
                                       f"Default {'on' if Config.tta else 'off'}."),
    save_checkpoints: bool = typer.Option(False, "--save-checkpoints", help="Keep each fold's "
                                          "model as safetensors."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exclude (and list) bad samples "
                                  "instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard an earlier run in --out "
                                   "with a different configuration."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.md/report.html."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or per-fold lines."),
):
    """Leak-free subject-independent evaluation with UF1/UAR for Full and each database.

    Each fold trains on the other subjects only, with a fixed schedule; normalisation and
    class weights come from training data; optional early stopping uses training subjects.
    The held-out subject is predicted once, after training. Metrics pool all folds'
    predictions (MEGC2019 definitions).
    """
    from glfnet.config import build_config

    cfg = build_config(config, model=model, model_args=parse_model_args(model_arg), epochs=epochs,
                       batch_size=batch_size, lr=lr, loss=loss,
                       seeds=parse_int_list(seeds) if seeds else None, protocol=protocol,
                       oracle=oracle or None, val_subjects=val_subjects, device=device, amp=amp,
                       jobs=jobs, ensemble=ensemble, tta=tta,
                       save_checkpoints=save_checkpoints or None,
                       report=False if no_report else None)
    fs = load_data(data, labels, skip_bad)
    out = out or Path("runs") / f"{Path(data).resolve().name}-{cfg.protocol}-{cfg.model}"
    console.print(f"{len(fs)} samples, {fs.samples['subject'].nunique()} subjects; "
                  f"{cfg.model}, {cfg.protocol}, {cfg.epochs} epochs, seeds {cfg.seeds} -> {out}")
    metrics = run_with_progress(fs, cfg, out, overwrite, quiet)
    print_results(metrics)
    if cfg.report:
        write_report(out)
    console.print(f"results in {out}/metrics.json, predictions.csv, megc_log.txt")


def write_report(out: Path) -> None:
    """Write report.md/report.html into the run directory."""
    from glfnet.errors import GlfnetError
    from glfnet.report.build import build_report

    try:
        paths = build_report(out)
    except GlfnetError as e:  # the results are written; a failed report must not hide them
        warn(f"the report could not be built ({e}); the results above are in {out}. "
             f"Retry with `glfnet report {out}`.")
        return
    console.print(f"report: {', '.join(str(p) for p in paths)}")


def register(app) -> None:
    app.command("loso")(loso)
