"""`glfnet ablate DATA`: the GLFNet ablation set (:mod:`glfnet.eval.ablation`) in one
command, each variant a full leak-free run in ``OUT/<variant>/`` (resumable like `glfnet
loso`), then a comparison."""

from __future__ import annotations

from pathlib import Path

import typer

from glfnet.cli import common
from glfnet.cli.common import SKIP_BAD_HELP, console, plural
from glfnet.config import Backend, Config, Device
from glfnet.eval.ablation import VARIANTS


def ablate(
    data: Path = typer.Argument(..., help="Flow set, as for `glfnet loso`.", show_default=False),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="Seeds, e.g. 0,1,2 (several are needed to tell differences from seed noise).",
        show_default="0",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Training epochs per fold.", show_default=str(Config.epochs)
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the variants' run directories and comparison.md. Re-running resumes.",
        show_default="runs/<data>-ablate",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML options shared by all variants; flags win."
    ),
    oracle: bool = typer.Option(
        False, "--oracle", help="Also record the optimistic oracle figures in each run (never compared)."
    ),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated subset of: " + ", ".join(VARIANTS) + ".", show_default="all"
    ),
    device: Device | None = typer.Option(
        None, "--device", help="Where to train.", show_default=Config.device
    ),
    fold_batch: int | None = common.FOLD_BATCH_OPTION,
    backend: Backend | None = common.BACKEND_OPTION,
    ray_address: str | None = common.RAY_ADDRESS_OPTION,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard earlier variant runs with a different configuration."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip each run's report."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or per-fold lines."),
) -> None:
    """Run GLFNet's ablation set leak-free on DATA, then compare the variants.

    Variants: full, no-local (no Local Block), no-global (no global branch), concat (concat
    fusion instead of AFF), sum (summed branches instead of AFF), ce-loss (cross-entropy
    instead of class-balanced), ststnet (the baseline, same training). Each goes to
    OUT/<variant>/ with its report; OUT/comparison.md compares them.
    """
    from glfnet.config import build_config
    from glfnet.eval.ablation import glfnet_preset, variant_configs
    from glfnet.report.compare import compare_runs

    base = build_config(
        config,
        epochs=epochs,
        seeds=common.parse_int_list(seeds) if seeds else None,
        oracle=oracle or None,
        device=device,
        fold_batch=fold_batch,
        backend=backend,
        ray_address=ray_address,
        report=False if no_report else None,
    )
    if glfnet_preset(base) != base.model:
        common.warn(
            f"the configuration names model {base.model}; the GLFNet variants use {glfnet_preset(base)}"
        )
    wanted = [n.strip() for n in only.split(",") if n.strip()] if only else None
    configs = variant_configs(base, wanted)
    out = out or Path("runs") / f"{Path(data).resolve().name}-ablate"
    with common.holding(out):  # the folder of comparison.md; each variant's folder is held too
        fs = common.load_data(data, labels, skip_bad)
        console.print(
            f"{plural(len(fs), 'sample')}, "
            f"{plural(fs.samples['subject'].nunique(), 'subject')}; variants "
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
            with common.holding(run_dir):
                common.run_with_progress(fs, cfg, run_dir, overwrite, quiet)
                if cfg.report:
                    common.write_report(run_dir)
            dirs.append(run_dir)
        if len(dirs) < 2:
            console.print(f"one variant only: nothing to compare; results in {dirs[0]}")
            return
        common.show_comparison(compare_runs(dirs, names=list(configs)), out)


def register(app: typer.Typer) -> None:
    """Add `ablate` to the app."""
    app.command("ablate")(ablate)
