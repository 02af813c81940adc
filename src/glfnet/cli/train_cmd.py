"""`glfnet train`: one final model on all samples of a flow set, for use (not evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from glfnet.cli.common import MODEL_HELP, console, warn
from glfnet.config import Config


def train(
    data: Path = typer.Argument(..., help="Flow set: a `glfnet prepare` cache (recommended: "
                                "predict then repeats its preprocessing exactly), a folder of "
                                "'<subject>_<clip> .png' + label CSV, or a per-subject LOSO tree."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write "
                             "(model.safetensors + config.json).", show_default=False),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    model_arg: Optional[List[str]] = typer.Option(None, "--model-arg", help="Model option "
                                                  "KEY=VALUE, repeatable (as in `glfnet loso`)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default as "
                                         f"`glfnet loso`: {Config.epochs})."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of options (keys as "
                                          "in a run's config.yaml); flags win."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the first "
                                       "of the config's seeds, 0)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda."),
    ensemble: Optional[int] = typer.Option(None, "--ensemble", help="Networks trained from "
                                           "different seeds, probabilities averaged (as in "
                                           f"`glfnet loso`; default {Config.ensemble})."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exclude (and list) bad samples "
                                  "instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No per-epoch lines."),
):
    """Train ONE final model on ALL samples of DATA and save it for `glfnet predict`.

    This is for use, not for evaluation: every sample is in training, so no score of this
    model on this data means anything. Use `glfnet loso` to measure how well the method works,
    then `glfnet train` with the same options to build the model you use.
    """
    from glfnet.cli.loso_cmd import load_data, parse_model_args
    from glfnet.config import build_config
    from glfnet.predict import train_final

    cfg = build_config(config, model=model, model_args=parse_model_args(model_arg),
                       epochs=epochs, device=device, ensemble=ensemble)
    seed = cfg.seeds[0] if seed is None else int(seed)
    fs = load_data(data, labels, skip_bad)
    console.print(f"{len(fs)} samples, {fs.samples['subject'].nunique()} subjects, classes "
                  f"{', '.join(fs.classes)}; {cfg.model}, {cfg.epochs} epochs, seed {seed} "
                  f"-> {out}")
    console.print("[yellow]Training one final model on ALL samples, for use. This is not an "
                  "evaluation: there is no held-out data. For results run `glfnet loso`.[/yellow]")
    if fs.kind != "cache":
        warn(f"{data} is the STSTNet PNG release (or its layout): its flows were made by the "
             "release's own preprocessing, which glfnet can only approximate at predict time. "
             "For a model whose predictions repeat its training preprocessing exactly, train on "
             "a `glfnet prepare` cache.")

    def on_epoch(rec: dict) -> None:
        if not quiet:
            extra = f", val UF1 {rec['val_uf1']:.3f}" if "val_uf1" in rec else ""
            console.print(f"epoch {rec['epoch']:3d}/{cfg.epochs}: loss {rec['loss']:.4f}{extra} "
                          f"({rec['seconds']:.1f} s)", markup=False)

    def log(text: str) -> None:
        if text.startswith("warning: "):
            warn(text[len("warning: "):])

    result = train_final(fs, cfg, out, seed, overwrite=overwrite, log=log, on_epoch=on_epoch)
    sel = result["training"]["selected_epoch"]
    if sel is not None:
        console.print(f"early stopping on training subjects "
                      f"{', '.join(result['training']['val_subjects'])}: kept epoch {sel}")
    console.print(f"model saved: {out}/model.safetensors, {out}/config.json "
                  f"({result['training']['seconds']:.1f} s). Use it: glfnet predict --model {out} "
                  "--onset ONSET.jpg --apex APEX.jpg")


def register(app) -> None:
    app.command("train")(train)
