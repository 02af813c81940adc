"""`glfnet tune DATA --menu MENU.yaml`: nested leak-free selection (:mod:`glfnet.eval.tune`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer

from glfnet.cli import common
from glfnet.cli.common import SKIP_BAD_HELP, console, plural
from glfnet.config import Backend, Config, Device, Protocol, Rule


def tune(
    data: Path = typer.Argument(..., help="Flow set, as for `glfnet loso`.", show_default=False),
    menu: Path = typer.Option(
        ...,
        "--menu",
        help="YAML menu of recipes: `recipes:` a list of `name:` plus any training options "
        "(`model`, `epochs`, `model_args`, ...; unnamed ones take the defaults or --config), or "
        "`average: [NAME, NAME]` to average trained recipes. configs/menu-megc2019.yaml is one.",
        show_default=False,
    ),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV for a flat folder."),
    inner_folds: int = typer.Option(
        2,
        "--inner-folds",
        help="K: the training subjects of each outer fold are split into K subject groups, every "
        "database in each; each recipe trains K times and is scored on the group it did not see.",
    ),
    inner_ensemble: int = typer.Option(
        1,
        "--inner-ensemble",
        help="Networks per inner training (0 = each recipe's own `ensemble`); the final model "
        "always trains the chosen recipe as written.",
    ),
    rule: Rule = typer.Option(
        "one-se",
        "--rule",
        help="one-se: of the best inner UF1 and the recipes within one standard error of it "
        "(paired bootstrap over subjects), the cheapest to train; best: the highest inner UF1.",
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Seeds, e.g. 0,1,2 or 0-2: results are mean ± std over them.", show_default="0"
    ),
    protocol: Protocol | None = typer.Option(
        None,
        "--protocol",
        help="The outer folds: loso (leave one subject out) or lodo (one database out).",
        show_default=Config.protocol,
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Run directory. Re-running the same command resumes it (finished trainings are kept).",
        show_default="runs/<data>-tune-<menu>",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML options every recipe starts from (then the recipe's own)."
    ),
    plan: bool = typer.Option(False, "--plan", help="Print the cost plan and stop (nothing is trained)."),
    device: Device | None = typer.Option(
        None, "--device", help="Where to train.", show_default=Config.device
    ),
    amp: bool | None = typer.Option(
        None,
        "--amp/--no-amp",
        help="bfloat16 autocast in every training: cuda, or a CPU with AVX-512 BF16/AMX.",
        show_default="no-amp",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Trainings run at once on CPU, each single-threaded (0 = one per core). Results do "
        "not depend on it.",
        show_default=str(Config.jobs),
    ),
    backend: Backend | None = common.BACKEND_OPTION,
    ray_address: str | None = common.RAY_ADDRESS_OPTION,
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_BAD_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard an earlier run in --out with another menu or configuration."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.md/report.html."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or per-fold lines."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the metrics as one JSON object on stdout (everything else on stderr)."
    ),
) -> None:
    """Nested leak-free selection: choose a recipe per outer fold from its training subjects only.

    For every outer fold (a held-out subject), each menu recipe is scored by an inner
    cross-validation over that fold's training subjects alone; --rule picks one; the chosen
    recipe trains on all training subjects and predicts the held-out subject once. Results are
    a run directory like `glfnet loso`'s, plus selection.csv (every fold's inner scores and
    choice). The held-out subject reaches no inner training, no inner score and no choice. A
    cost plan is printed before anything trains (--plan prints it and stops).
    """
    from glfnet.config import build_config
    from glfnet.eval.menu import load_menu
    from glfnet.eval.tune import TuneSettings, plan_tune

    base = build_config(
        config,
        seeds=common.parse_int_list(seeds) if seeds else None,
        protocol=protocol,
        device=device,
        amp=amp,
        jobs=jobs,
        backend=backend,
        ray_address=ray_address,
        report=False if no_report else None,
    )
    settings = TuneSettings(inner_folds, inner_ensemble, rule).validate()
    recipes = load_menu(menu, base)
    out = out or Path("runs") / f"{Path(data).resolve().name}-tune-{Path(menu).stem}"
    # --plan writes nothing: it may look at a folder another run is writing
    with contextlib.nullcontext() if plan else common.holding(out):
        fs = common.load_data(data, labels, skip_bad)
        say = common.err_console if as_json else console
        say.print(
            f"{plural(len(fs), 'sample')}, {plural(fs.samples['subject'].nunique(), 'subject')}; "
            f"{plural(len(recipes.recipes), 'recipe')} from {menu}, {base.protocol}, "
            f"{settings.inner_folds} inner folds, rule {settings.rule}, seeds {base.seeds} -> {out}"
        )
        cost = plan_tune(fs, base, recipes, settings, out)
        say.print(_plan_table(cost))
        if plan:
            return
        metrics = _run(fs, base, recipes, settings, out, overwrite, quiet, say)
        if as_json:
            common.print_json(metrics)
        else:
            common.print_results(metrics)
            say.print(_choice_table(metrics.selection or {}))
        if base.report:
            common.write_report(out, on=say)
    say.print(f"results in {out}/metrics.json, predictions.csv, selection.csv")


def _run(
    fs: Any, base: Any, menu: Any, settings: Any, out: Path, overwrite: bool, quiet: bool, on: Any
) -> Any:
    from glfnet.eval.tune import run_tune

    with common.progress_bar(on, disable=quiet) as bar:
        task = None

        def progress(done: int, total: int, label: str) -> None:
            nonlocal task
            if task is None:
                if done and not quiet:
                    bar.console.print(f"{plural(done, 'training')} reused from an earlier run")
                task = bar.add_task("trainings", total=total)
            bar.update(task, completed=done, total=total, description=f"trainings ({label})")

        def log(text: str) -> None:
            if not quiet:
                bar.console.print(text, markup=False)

        metrics = run_tune(fs, base, menu, settings, out, overwrite=overwrite, progress=progress, log=log)
    t = metrics.throughput
    if t and t.folds_trained and not quiet:
        on.print(
            f"trained {plural(t.folds_trained, 'network')} (inner and final) in "
            f"{common.duration(t.seconds)}: "
            f"{t.samples_per_second:,.0f} training samples/s ({t.backend}, {plural(t.workers, 'worker')})"
        )
    return metrics


def _plan_table(plan: Any) -> Any:
    from rich import box
    from rich.table import Table

    from glfnet.cli.common import duration

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
