"""`glfnet train`: one final model on all samples of a flow set, for use (not evaluation)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from glfnet.cli import options as o
from glfnet.cli.messages import console, err_console, plural, warn
from glfnet.cli.steps import load_data, print_json, set_size
from glfnet.config import Config

if TYPE_CHECKING:
    from glfnet.data.flowsets import FlowSet


def train(
    data: o.Data,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Model directory to write (model.safetensors + config.json).",
            show_default=False,
        ),
    ],
    labels: o.Labels = None,
    model: o.Model = None,
    model_arg: o.ModelArg = None,
    epochs: o.Epochs = None,
    batch_size: o.BatchSize = None,
    lr: o.Lr = None,
    loss: o.LossOption = None,
    val_subjects: o.ValSubjects = None,
    ensemble: o.Ensemble = None,
    config: o.ConfigFile = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed.", show_default="the configuration's first seed"),
    ] = None,
    device: o.DeviceOption = None,
    amp: o.Amp = None,
    fold_batch: o.FoldBatch = None,
    skip_bad: o.SkipBad = False,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Train ONE final model on ALL samples of DATA and save it for `glfnet predict`.

    This is for use, not for evaluation: every sample is in training, so no score of this
    model on this data means anything. Use `glfnet loso` to measure how well the method works,
    then `glfnet train` with the same training options to build the model you use (those of
    the evaluation, such as the seeds, the protocol or the oracle, have no meaning here). Train
    on a `glfnet prepare` cache where you can: `glfnet predict` then repeats its
    preprocessing exactly.
    """
    from glfnet.train.final import check_options, summary

    started = time.perf_counter()
    cfg = o.build(
        config,
        model_arg=model_arg,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        val_subjects=val_subjects,
        ensemble=ensemble,
        device=device,
        amp=amp,
        fold_batch=fold_batch,
    )
    seed = cfg.seeds[0] if seed is None else int(seed)
    check_options(cfg, out, overwrite)  # before the data are read; nothing is written on error
    fs = load_data(data, labels, skip_bad)
    say = err_console if as_json else console
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
        print_json({**summary(result, out), "wall_seconds": wall})
    else:
        _print_done(result, out)


def _print_plan(say: Console, fs: FlowSet, cfg: Config, seed: int, out: Path) -> None:
    say.print(
        f"{set_size(fs)}, classes {', '.join(fs.classes)}; {cfg.model}, {plural(cfg.epochs, 'epoch')}, "
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
