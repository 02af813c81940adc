"""`glfnet ablate DATA`: the GLFNet ablation set (:mod:`glfnet.eval.ablation`) in one
command, each variant a full leak-free run in ``OUT/<variant>/`` (resumable like `glfnet
loso`), then a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glfnet.cli import options as o
from glfnet.cli.messages import console, plural, warn
from glfnet.cli.progress import run_with_progress
from glfnet.cli.steps import holding, load_data, set_size, show_comparison, write_report
from glfnet.eval.ablation import VARIANTS


def ablate(
    data: o.Data,
    labels: o.Labels = None,
    seeds: o.Seeds = None,
    epochs: o.Epochs = None,
    batch_size: o.BatchSize = None,
    lr: o.Lr = None,
    val_subjects: o.ValSubjects = None,
    ensemble: o.Ensemble = None,
    out: Annotated[Path | None, o.run_out("runs/<data>-ablate")] = None,
    config: o.ConfigFile = None,
    oracle: o.Oracle = False,
    skip_bad: o.SkipBad = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help="Comma-separated subset of: " + ", ".join(VARIANTS) + ".", show_default="all"
        ),
    ] = None,
    device: o.DeviceOption = None,
    amp: o.Amp = None,
    fold_batch: o.FoldBatch = None,
    jobs: o.Jobs = None,
    backend: o.BackendOption = None,
    ray_address: o.RayAddress = None,
    overwrite: o.Overwrite = False,
    no_report: o.NoReport = False,
    quiet: o.Quiet = False,
) -> None:
    """Run GLFNet's ablation set leak-free on DATA, then compare the variants.

    Variants: full, no-local (no Local Block), no-global (no global branch), concat (concat
    fusion instead of AFF), sum (summed branches instead of AFF), ce-loss (cross-entropy
    instead of class-balanced), ststnet (the baseline, same training). Each goes to
    OUT/<variant>/ with its report; OUT/comparison.md compares them (oracle figures are
    recorded in each run but never compared). The variants set the model, its options and the
    loss; every other option, and --config, applies to all of them.
    """
    from glfnet.eval.ablation import glfnet_preset, variant_configs
    from glfnet.report.compare import compare_runs

    base = o.build(
        config,
        seeds=seeds,
        no_report=no_report,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        val_subjects=val_subjects,
        ensemble=ensemble,
        oracle=oracle,
        device=device,
        amp=amp,
        fold_batch=fold_batch,
        jobs=jobs,
        backend=backend,
        ray_address=ray_address,
    )
    if glfnet_preset(base) != base.model:
        warn(f"the configuration names model {base.model}; the GLFNet variants use {glfnet_preset(base)}")
    wanted = [n.strip() for n in only.split(",") if n.strip()] if only else None
    configs = variant_configs(base, wanted)
    out = out or Path("runs") / f"{Path(data).resolve().name}-ablate"
    with holding(out):  # the folder of comparison.md; each variant's folder is held too
        fs = load_data(data, labels, skip_bad)
        console.print(
            f"{set_size(fs)}; variants "
            f"{', '.join(configs)}; {plural(base.epochs, 'epoch')}, seeds {base.seeds} "
            f"-> {out}"
        )
        dirs = []
        for name, cfg in configs.items():
            run_dir = out / name
            console.print(
                f"[bold]{name}[/bold]: {cfg.model}"
                + (f" {cfg.model_args}" if cfg.model_args else "")
                + f", loss {cfg.loss}"
            )
            with holding(run_dir):
                run_with_progress(fs, cfg, run_dir, overwrite, quiet)
                if cfg.report:
                    write_report(run_dir)
            dirs.append(run_dir)
        if len(dirs) < 2:
            console.print(f"one variant only: nothing to compare; results in {dirs[0]}")
            return
        show_comparison(compare_runs(dirs, names=list(configs)), out)


def register(app: typer.Typer) -> None:
    """Add `ablate` to the app."""
    app.command("ablate")(ablate)
