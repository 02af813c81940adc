"""`glfnet loso`: leak-free leave-one-subject-out (or leave-one-database-out) evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glfnet.cli import options as o
from glfnet.cli.messages import console, err_console, plural
from glfnet.cli.progress import run_with_progress
from glfnet.cli.steps import holding, load_data, print_json, print_results, set_size, write_report


def loso(
    data: o.Data,
    labels: o.Labels = None,
    model: o.Model = None,
    model_arg: o.ModelArg = None,
    epochs: o.Epochs = None,
    batch_size: o.BatchSize = None,
    lr: o.Lr = None,
    loss: o.LossOption = None,
    seeds: o.Seeds = None,
    protocol: o.ProtocolOption = None,
    oracle: o.Oracle = False,
    val_subjects: o.ValSubjects = None,
    out: Annotated[Path | None, o.run_out("runs/<data>-<protocol>-<model>")] = None,
    config: o.ConfigFile = None,
    device: o.DeviceOption = None,
    fold_batch: o.FoldBatch = None,
    backend: o.BackendOption = None,
    ray_address: o.RayAddress = None,
    jobs: o.Jobs = None,
    amp: o.Amp = None,
    ensemble: o.Ensemble = None,
    save_checkpoints: o.SaveCheckpoints = False,
    skip_bad: o.SkipBad = False,
    overwrite: o.Overwrite = False,
    no_report: o.NoReport = False,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Leak-free subject-independent evaluation with UF1/UAR for Full and each database.

    Each fold trains on the other subjects only, with a fixed schedule; normalisation and
    class weights come from training data; optional early stopping uses training subjects.
    The held-out subject is predicted once, after training. Metrics pool all folds'
    predictions (MEGC2019 definitions).
    """
    cfg = o.build(
        config,
        seeds=seeds,
        model_arg=model_arg,
        no_report=no_report,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        protocol=protocol,
        oracle=oracle,
        val_subjects=val_subjects,
        device=device,
        fold_batch=fold_batch,
        backend=backend,
        ray_address=ray_address,
        amp=amp,
        jobs=jobs,
        ensemble=ensemble,
        save_checkpoints=save_checkpoints,
    )
    out = out or Path("runs") / f"{Path(data).resolve().name}-{cfg.protocol}-{cfg.model}"
    say = err_console if as_json else console
    with holding(out):
        fs = load_data(data, labels, skip_bad)
        say.print(
            f"{set_size(fs)}; {cfg.model}, {cfg.protocol}, {plural(cfg.epochs, 'epoch')}, seeds {cfg.seeds} "
            f"-> {out}"
        )
        metrics = run_with_progress(fs, cfg, out, overwrite, quiet, on=say)
        if as_json:
            print_json(metrics)
        else:
            print_results(metrics)
        if cfg.report:
            write_report(out, on=say)
    say.print(f"results in {out}/metrics.json, predictions.csv, megc_log.txt")


def register(app: typer.Typer) -> None:
    """Add `loso` to the app."""
    app.command("loso")(loso)
