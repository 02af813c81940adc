"""`glfnet loso`: leak-free leave-one-subject-out (or leave-one-database-out) evaluation."""

from __future__ import annotations

from pathlib import Path

import typer

from glfnet.cli import common
from glfnet.cli.common import MODEL_ARG_HELP, MODEL_HELP, SKIP_BAD_HELP, console, plural
from glfnet.config import Backend, Config, Device, Loss, Protocol


def loso(
    data: Path = typer.Argument(
        ...,
        help="Flow set: folder of '<subject>_<clip> .png' + label "
        "CSV, per-subject LOSO tree, or a `glfnet prepare` cache.",
        show_default=False,
    ),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP, show_default=Config.model),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help=MODEL_ARG_HELP),
    epochs: int | None = typer.Option(
        None,
        "--epochs",
        help="Training epochs per fold (fixed; never chosen on the test subject).",
        show_default=str(Config.epochs),
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Training batch size.", show_default=str(Config.batch_size)
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate (AdamW, warm-up + cosine).", show_default=f"{Config.lr:g}"
    ),
    loss: Loss | None = typer.Option(
        None, "--loss", help="cb: class-balanced (the paper's); ce: cross-entropy.", show_default=Config.loss
    ),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="Seeds, e.g. 0,1,2,3,4 or 0-4: results are mean ± std over them.",
        show_default="0",
    ),
    protocol: Protocol | None = typer.Option(
        None,
        "--protocol",
        help="loso: leave one subject out; lodo: leave one database out.",
        show_default=Config.protocol,
    ),
    oracle: bool = typer.Option(
        False,
        "--oracle",
        help="Also score each subject's best epoch on its own test data (optimistic, labelled, kept apart).",
    ),
    val_subjects: float | None = typer.Option(
        None,
        "--val-subjects",
        help="Early stopping on this fraction of *training* subjects (0 = off).",
        show_default=f"{Config.val_subjects:g}",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Run directory. Re-running the same command resumes it.",
        show_default="runs/<data>-<protocol>-<model>",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of options (keys as in a run's config.yaml); flags win."
    ),
    device: Device | None = typer.Option(
        None, "--device", help="Where to train.", show_default=Config.device
    ),
    fold_batch: int | None = common.FOLD_BATCH_OPTION,
    backend: Backend | None = common.BACKEND_OPTION,
    ray_address: str | None = common.RAY_ADDRESS_OPTION,
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Folds trained at once on CPU, "
        "each single-threaded (0 = one per core). Results do "
        "not depend on it.",
        show_default=str(Config.jobs),
    ),
    amp: bool | None = typer.Option(
        None,
        "--amp/--no-amp",
        help="bfloat16 autocast while training: cuda, or a CPU with AVX-512 BF16/AMX "
        "(faster for glfnet_s there; slower for ststnet).",
        show_default="no-amp",
    ),
    ensemble: int | None = typer.Option(
        None,
        "--ensemble",
        help="Networks trained per fold from different seeds, probabilities averaged (cost x K).",
        show_default=str(Config.ensemble),
    ),
    save_checkpoints: bool = typer.Option(
        False, "--save-checkpoints", help="Keep each fold's model as safetensors."
    ),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard an earlier run in --out with a different configuration."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.md/report.html."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or per-fold lines."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the metrics as one JSON object on stdout (everything else goes to stderr).",
    ),
) -> None:
    """Leak-free subject-independent evaluation with UF1/UAR for Full and each database.

    Each fold trains on the other subjects only, with a fixed schedule; normalisation and
    class weights come from training data; optional early stopping uses training subjects.
    The held-out subject is predicted once, after training. Metrics pool all folds'
    predictions (MEGC2019 definitions).
    """
    from glfnet.config import build_config, cpu_has_bf16

    cfg = build_config(
        config,
        model=model,
        model_args=common.parse_model_args(model_arg),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        seeds=common.parse_int_list(seeds) if seeds else None,
        protocol=protocol,
        oracle=oracle or None,
        val_subjects=val_subjects,
        device=device,
        fold_batch=fold_batch,
        backend=backend,
        ray_address=ray_address,
        amp=amp,
        jobs=jobs,
        ensemble=ensemble,
        save_checkpoints=save_checkpoints or None,
        report=False if no_report else None,
    )
    if cfg.amp and cfg.device == "cpu" and not cpu_has_bf16():
        common.warn(
            "`amp` on a CPU without native bfloat16 (AVX-512 BF16 or AMX): autocast runs "
            "emulated there, expect it slower than float32; `amp=False` trains in float32."
        )
    fs = common.load_data(data, labels, skip_bad)
    out = out or Path("runs") / f"{Path(data).resolve().name}-{cfg.protocol}-{cfg.model}"
    say = common.err_console if as_json else console
    say.print(
        f"{plural(len(fs), 'sample')}, {plural(fs.samples['subject'].nunique(), 'subject')}"
        f"; {cfg.model}, {cfg.protocol}, {plural(cfg.epochs, 'epoch')}, seeds {cfg.seeds} "
        f"-> {out}"
    )
    metrics = common.run_with_progress(fs, cfg, out, overwrite, quiet, on=say)
    if as_json:
        common.print_json(metrics)
    else:
        common.print_results(metrics)
    if cfg.report:
        common.write_report(out, on=say)
    say.print(f"results in {out}/metrics.json, predictions.csv, megc_log.txt")


def register(app: typer.Typer) -> None:
    """Add `loso` to the app."""
    app.command("loso")(loso)
