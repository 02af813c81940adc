"""`glfnet ablate DATA`: the GLFNet ablation set in one command, then a comparison.

Variants (each a full leak-free run in ``OUT/<variant>/``, resumable like `glfnet loso`):

    full       GLFNet as configured (the default preset unless the configuration names another
               GLFNet preset)
    no-local   model_args local_branch: false
    no-global  model_args global_branch: false
    concat     model_args fusion: concat (instead of the adaptive feature fusion)
    sum        model_args fusion: sum (element-wise sum of the two branches)
    ce-loss    loss: ce (instead of the class-balanced loss)
    ststnet    the STSTNet baseline, same training settings
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from glfnet.cli.common import console, parse_int_list, warn
from glfnet.config import Config
from glfnet.errors import ConfigError

# name -> (model or None for the base GLFNet model, model_args changes, other config changes)
VARIANTS: dict[str, tuple[str | None, dict, dict]] = {
    "full": (None, {}, {}),
    "no-local": (None, {"local_branch": False}, {}),
    "no-global": (None, {"global_branch": False}, {}),
    "concat": (None, {"fusion": "concat"}, {}),
    "sum": (None, {"fusion": "sum"}, {}),
    "ce-loss": (None, {}, {"loss": "ce"}),
    "ststnet": ("ststnet", {}, {}),
}


def variant_configs(base, only: list[str] | None = None) -> dict:
    """{variant name: Config} derived from ``base`` (in the order of :data:`VARIANTS`)."""
    names = list(VARIANTS)
    if only:
        unknown = [n for n in only if n not in VARIANTS]
        if unknown:
            raise ConfigError(f"--only: unknown variant(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(VARIANTS)}")
        names = [n for n in VARIANTS if n in only]
    glf = base.model if base.model.startswith("glfnet") else Config.model
    out = {}
    for name in names:
        model, args, changes = VARIANTS[name]
        if model is None:
            cfg = base.replace(model=glf, model_args={**base.model_args, **args}, **changes)
        else:
            cfg = base.replace(model=model, model_args={}, input_size=None, **changes)
        out[name] = cfg.validate()
    return out


def ablate(
    data: Path = typer.Argument(..., help="Flow set, as for `glfnet loso`."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, e.g. 0,1,2 (several are "
                                        "needed to tell differences from seed noise)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs per fold."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the variants' run "
                                       "directories and comparison.md (default "
                                       "runs/<data>-ablate). Re-running resumes."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML options shared by all "
                                          "variants; flags win."),
    oracle: bool = typer.Option(False, "--oracle", help="Also record the optimistic oracle "
                                "figures in each run (never compared)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Exclude (and list) bad samples."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated subset of: "
                                       + ", ".join(VARIANTS) + "."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard earlier variant runs "
                                   "with a different configuration."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip each run's report."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or per-fold lines."),
):
    """Run GLFNet's ablation set leak-free on DATA, then compare the variants.

    Variants: full, no-local (no Local Block), no-global (no global branch), concat (concat
    fusion instead of AFF), sum (summed branches instead of AFF), ce-loss (cross-entropy
    instead of class-balanced), ststnet (the baseline, same training). Each goes to
    OUT/<variant>/ with its report; OUT/comparison.md compares them.
    """
    from glfnet.cli.loso_cmd import load_data, run_with_progress, write_report
    from glfnet.config import build_config
    from glfnet.cli.report_cmd import show_and_write
    from glfnet.report.compare import compare_runs

    base = build_config(config, epochs=epochs, seeds=parse_int_list(seeds) if seeds else None,
                        oracle=oracle or None, device=device,
                        report=False if no_report else None)
    if not base.model.startswith("glfnet"):
        warn(f"the configuration names model {base.model}; the GLFNet variants use {Config.model}")
    wanted = [n.strip() for n in only.split(",") if n.strip()] if only else None
    configs = variant_configs(base, wanted)
    fs = load_data(data, labels, skip_bad)
    out = out or Path("runs") / f"{Path(data).resolve().name}-ablate"
    console.print(f"{len(fs)} samples, {fs.samples['subject'].nunique()} subjects; variants "
                  f"{', '.join(configs)}; {base.epochs} epochs, seeds {base.seeds} -> {out}")
    dirs = []
    for name, cfg in configs.items():
        run_dir = out / name
        console.print(f"[bold]{name}[/bold]: {cfg.model}"
                      + (f" {cfg.model_args}" if cfg.model_args else "") + f", loss {cfg.loss}")
        run_with_progress(fs, cfg, run_dir, overwrite, quiet)
        if cfg.report:
            write_report(run_dir)
        dirs.append(run_dir)
    if len(dirs) < 2:
        console.print(f"one variant only: nothing to compare; results in {dirs[0]}")
        return
    show_and_write(compare_runs(dirs, names=list(configs)), out)


def register(app) -> None:
    app.command("ablate")(ablate)
