"""`glfnet tune DATA --menu MENU.yaml`: nested leak-free selection (:mod:`glfnet.eval.tune`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from glfnet.cli import options as o
from glfnet.cli.messages import console, duration, err_console, plural
from glfnet.cli.progress import track
from glfnet.cli.steps import holding, load_data, print_json, print_results, set_size, write_report
from glfnet.config import Rule


def tune(
    data: o.Data,
    menu: Annotated[
        Path,
        typer.Option(
            "--menu",
            help="YAML menu of recipes: `recipes:` a list of `name:` plus any training options "
            "(`model`, `epochs`, `model_args`, ...; unnamed ones take the defaults or --config), or "
            "`average: [NAME, NAME]` to average trained recipes. configs/menu-megc2019.yaml is one.",
            show_default=False,
        ),
    ],
    labels: o.Labels = None,
    inner_folds: Annotated[
        int,
        typer.Option(
            "--inner-folds",
            help="K: the training subjects of each outer fold are split into K subject groups, every "
            "database with K subjects or more in each; each recipe trains K times and is scored on "
            "the group it did not see.",
        ),
    ] = 2,
    inner_ensemble: Annotated[
        int,
        typer.Option(
            "--inner-ensemble",
            help="Networks per inner training (0 = each recipe's own `ensemble`); the final model "
            "always trains the chosen recipe as written.",
        ),
    ] = 1,
    rule: Annotated[
        Rule,
        typer.Option(
            "--rule",
            help="one-se: of the best inner UF1 and the recipes within one standard error of it "
            "(paired bootstrap over subjects), the cheapest to train; best: the highest inner UF1.",
        ),
    ] = "one-se",
    seeds: o.Seeds = None,
    protocol: o.ProtocolOption = None,
    out: Annotated[Path | None, o.run_out("runs/<data>-tune-<menu>")] = None,
    config: o.ConfigFile = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the cost plan and stop (nothing is trained).")
    ] = False,
    device: o.DeviceOption = None,
    amp: o.Amp = None,
    jobs: o.Jobs = None,
    backend: o.BackendOption = None,
    ray_address: o.RayAddress = None,
    skip_bad: o.SkipBad = False,
    overwrite: o.Overwrite = False,
    no_report: o.NoReport = False,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Nested leak-free selection: choose a recipe per outer fold from its training subjects only.

    For every outer fold (a held-out subject), each menu recipe is scored by an inner
    cross-validation over that fold's training subjects alone; --rule picks one; the chosen
    recipe trains on all training subjects and predicts the held-out subject once. Results are
    a run directory like `glfnet loso`'s, plus selection.csv (every fold's inner scores and
    choice). The held-out subject reaches no inner training, no inner score and no choice. A
    cost plan is printed before anything trains (--plan prints it and stops). --protocol sets
    the outer folds; --config the options every recipe starts from.
    """
    from glfnet.eval.menu import load_menu
    from glfnet.eval.tune import TuneSettings, plan_tune

    base = o.build(
        config,
        seeds=seeds,
        no_report=no_report,
        protocol=protocol,
        device=device,
        amp=amp,
        jobs=jobs,
        backend=backend,
        ray_address=ray_address,
    )
    settings = TuneSettings(inner_folds, inner_ensemble, rule).validate()
    recipes = load_menu(menu, base)
    out = out or Path("runs") / f"{Path(data).resolve().name}-tune-{Path(menu).stem}"
    # --plan writes nothing: it may look at a folder another run is writing
    with contextlib.nullcontext() if plan else holding(out):
        fs = load_data(data, labels, skip_bad)
        say = err_console if as_json else console
        say.print(
            f"{set_size(fs)}; {plural(len(recipes.recipes), 'recipe')} from {menu}, {base.protocol}, "
            f"{settings.inner_folds} inner folds, rule {settings.rule}, seeds {base.seeds} -> {out}"
        )
        cost = plan_tune(fs, base, recipes, settings, out)
        say.print(_plan_table(cost))
        if plan:
            return
        metrics = _run(fs, base, recipes, settings, out, overwrite, quiet, say)
        if as_json:
            print_json(metrics)
        else:
            print_results(metrics)
            say.print(_choice_table(metrics.selection or {}))
        if base.report:
            write_report(out, on=say)
    say.print(f"results in {out}/metrics.json, predictions.csv, selection.csv")


def _run(
    fs: Any, base: Any, menu: Any, settings: Any, out: Path, overwrite: bool, quiet: bool, on: Any
) -> Any:
    from glfnet.eval.tune import run_tune

    return track(
        lambda progress, log: run_tune(
            fs, base, menu, settings, out, overwrite=overwrite, progress=progress, log=log
        ),
        "training",
        quiet,
        on,
        trained=("model", " (inner and final)"),
    )


def _plan_table(plan: Any) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"cost plan: {plural(plan.folds, 'outer fold')} x {plural(len(plan.seeds), 'seed')}, "
        f"{plural(plan.workers, 'worker')} (times estimated from timed training steps on this machine)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for name in ("recipe", "inner trainings", "to do", "networks each", "estimated"):
        table.add_column(name, justify="left" if name == "recipe" else "right")
    for r in plan.recipes:
        table.add_row(
            r["recipe"], str(r["trainings"]), str(r["todo"]), str(r["networks"]), duration(r["seconds"])
        )
    lo, hi = plan.final_seconds
    table.add_row(
        "final (chosen)",
        str(plan.folds * len(plan.seeds)),
        str(plan.finals_todo),
        "as written",
        f"{duration(lo)} - {duration(hi)}",
    )
    table.add_row(
        "[bold]total[/bold]",
        "",
        "",
        "",
        f"[bold]{duration(plan.inner_seconds + lo)} - {duration(plan.inner_seconds + hi)}[/bold]",
    )
    return table


def _choice_table(selection: dict) -> Any:
    """How often each recipe was chosen, per seed, with its mean inner UF1."""
    from rich import box
    from rich.table import Table

    per_seed = selection.get("choices_per_seed", {})
    table = Table(title="recipes chosen (outer folds)", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("recipe")
    for seed in per_seed:
        table.add_column(f"seed {seed}", justify="right")
    table.add_column("all", justify="right")
    table.add_column("mean inner UF1", justify="right")
    inner = selection.get("inner_uf1", {})
    for name in selection.get("menu", []):
        cells = [str(per_seed[s].get(name, 0)) for s in per_seed]
        score = f"{inner[name]:.3f}" if name in inner else ""
        table.add_row(name, *cells, str(selection["choices"].get(name, 0)), score)
    return table


def register(app: typer.Typer) -> None:
    """Add `tune` to the app."""
    app.command("tune")(tune)
