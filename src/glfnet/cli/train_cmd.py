"""`glfnet train`: one final model on all samples of a flow set, for use (not evaluation)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from glfnet.cli import common
from glfnet.cli.common import MODEL_ARG_HELP, MODEL_HELP, SKIP_BAD_HELP, console, plural, warn
from glfnet.config import Config, Device

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet


def train(
    data: Path = typer.Argument(
        ...,
        help="Flow set: a `glfnet prepare` cache (recommended: "
        "predict then repeats its preprocessing exactly), a folder of "
        "'<subject>_<clip> .png' + label CSV, or a per-subject LOSO tree.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Model directory to write (model.safetensors + config.json).",
        show_default=False,
    ),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP, show_default=Config.model),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help=MODEL_ARG_HELP),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Training epochs (as in `glfnet loso`).", show_default=str(Config.epochs)
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of options (keys as in a run's config.yaml); flags win."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed (when not given: the configuration's first seed).", show_default="0"
    ),
    device: Device | None = typer.Option(
        None, "--device", help="Where to train.", show_default=Config.device
    ),
    fold_batch: int | None = common.FOLD_BATCH_OPTION,
    ensemble: int | None = typer.Option(
        None,
        "--ensemble",
        help="Networks trained from different seeds, probabilities averaged (as in `glfnet loso`).",
        show_default=str(Config.ensemble),
    ),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No per-epoch lines."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print a summary (model directory, "
        "samples, epochs, seconds, ...) as one JSON object on stdout "
        "(everything else goes to stderr).",
    ),
) -> None:
    """Train ONE final model on ALL samples of DATA and save it for `glfnet predict`.

    This is for use, not for evaluation: every sample is in training, so no score of this
    model on this data means anything. Use `glfnet loso` to measure how well the method works,
    then `glfnet train` with the same options to build the model you use.
    """
    from glfnet.config import build_config
    from glfnet.train.final import check_options, summary

    started = time.perf_counter()
    cfg = build_config(
        config,
        model=model,
        model_args=common.parse_model_args(model_arg),
        epochs=epochs,
        device=device,
        fold_batch=fold_batch,
        ensemble=ensemble,
    )
    seed = cfg.seeds[0] if seed is None else int(seed)
    check_options(cfg, out, overwrite)  # before the data are read; nothing is written on error
    fs = common.load_data(data, labels, skip_bad)
    say = common.err_console if as_json else console
    _print_plan(say, fs, cfg, seed, out)
    if fs.kind != "cache":
        warn(
            f"{data} is the STSTNet PNG release (or its layout): its flows were made by the "
            "release's own preprocessing, which glfnet can only approximate at predict time. "
            "For a model whose predictions repeat its training preprocessing exactly, train on "
            "a `glfnet prepare` cache."
        )
    result = _train(say, fs, cfg, out, seed, overwrite, quiet)
    if as_json:
        wall = round(time.perf_counter() - started, 2)
        common.print_json({**summary(result, out), "wall_seconds": wall})
    else:
        _print_done(result, out)


def _print_plan(say: Console, fs: FlowSet, cfg: Config, seed: int, out: Path) -> None:
    say.print(
        f"{plural(len(fs), 'sample')}, {plural(fs.samples['subject'].nunique(), 'subject')}"
        f", classes {', '.join(fs.classes)}; {cfg.model}, {plural(cfg.epochs, 'epoch')}, "
        f"seed {seed} -> {out}"
    )
    say.print(
        "[yellow]Training one final model on ALL samples, for use. This is not an "
        "evaluation: there is no held-out data. For results run `glfnet loso`.[/yellow]"
    )


def _train(
    say: Console, fs: FlowSet, cfg: Config, out: Path, seed: int, overwrite: bool, quiet: bool
) -> dict:
    """:func:`glfnet.train.final.train_final` with its epoch lines and warnings printed."""
    from glfnet.train.final import train_final

    def on_epoch(rec: dict) -> None:
        if not quiet:
            extra = f", val UF1 {rec['val_uf1']:.3f}" if "val_uf1" in rec else ""
            say.print(
                f"epoch {rec['epoch']:3d}/{cfg.epochs}: loss {rec['loss']:.4f}{extra} "
                f"({rec['seconds']:.1f} s)",
                markup=False,
            )

    def log(text: str) -> None:
        if text.startswith("warning: "):
            warn(text[len("warning: ") :])

    return train_final(fs, cfg, out, seed, overwrite=overwrite, log=log, on_epoch=on_epoch)


def _print_done(result: dict, out: Path) -> None:
    sel = result["training"]["selected_epoch"]
    if sel is not None:
        console.print(
            f"early stopping on training subjects "
            f"{', '.join(result['training']['val_subjects'])}: kept epoch {sel}"
        )
    console.print(
        f"model saved: {out}/model.safetensors, {out}/config.json "
        f"({result['training']['seconds']:.1f} s). Use it: glfnet predict --model {out} "
        "--onset ONSET.jpg --apex APEX.jpg"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
