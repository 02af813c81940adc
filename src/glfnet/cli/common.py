"""Shared pieces of the command line: consoles, the one contract for help and errors, option
parsing, and the steps several commands share.

The contract every command follows (tests/test_cli_contract.py checks it):

* Help (:class:`Command`, which ``cli/main.py`` sets on every command): arguments appear in
  the usage line as ``DATA``; plain flags show no type; repeatable options and argument lists
  show their element's type; a default is shown as ``[default: X]`` whether typer knows the
  value or the option names it (``show_default="30"`` where ``None`` means "the
  configuration's"). Allowed values come from the ``Literal`` types the library declares
  (``glfnet.config``), from the model registry and the preprocessing (placeholders such as
  ``{models}``, filled in when help is shown, so that starting the CLI imports neither torch
  nor OpenCV).
* Errors: one line, ``error: ...``, exit 2. Library errors name parameters in backticks;
  :func:`flagify` turns them into the flags a shell user typed (:data:`FLAGS`). Parser errors
  (:func:`usage_error_message`) name the flag and what it expects.

Commands import this module and the library, never each other.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from glfnet.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress

    from glfnet.config import Config
    from glfnet.data.flowsets import FlowSet
    from glfnet.eval.rundir import Metrics, Throughput

# soft_wrap: never break a file name across lines (tests and users grep for them).
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


# ---------------------------------------------------------------------------- errors

# Library errors name parameters as a Python caller passes them, in backticks (`labels`,
# `out`, `seeds`); this table, the one place that knows the command line, turns them into the
# flags a shell user typed. Names not in it (file columns, config keys) are left as written.
FLAGS = {
    "labels": "--labels",
    "out": "--out",
    "seeds": "--seeds",
    "crop": "--crop",
    "onset": "--onset",
    "apex": "--apex",
    "offset": "--offset",
    "model": "--model",
    "model_dir": "--model/-m",
    "config": "--config",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "protocol": "--protocol",
    "loss": "--loss",
    "device": "--device",
    "jobs": "--jobs",
    "ensemble": "--ensemble",
    "oracle": "--oracle",
    "input_size": "--input-size",
    "model_args": "--model-arg",
    "fold_batch": "--fold-batch",
    "backend": "--backend",
    "ray_address": "--ray-address",
    "dataset": "--dataset",
    "size": "--size",
    "flow": "--flow",
    "align": "--align",
    "variants": "--variants",
    "force": "--force",
    "fps": "--fps",
    "crop_size": "--crop",
    "margin": "--margin",
    "root": "--root",
    "annotations": "--annotations",
    "variant": "--variant",
    "skip_bad": "--skip-bad",
    "overwrite": "--overwrite",
    "only": "--only",
    "val_subjects": "--val-subjects",
    "amp": "--amp",
    "export_png": "--export-png",
    "out_dir": "--out",
    "frames": "--frames",
    "video": "--video",
    "save_checkpoints": "--save-checkpoints",
    "cache_dir": "--out",
    "menu": "--menu",
    "inner_folds": "--inner-folds",
    "inner_ensemble": "--inner-ensemble",
    "rule": "--rule",
}


def flagify(message: str) -> str:
    """A library message for a command-line user: `param` -> --flag (see FLAGS);
    `switch=False` -> --no-switch and `param=value` -> --flag value."""

    def flag(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        if name not in FLAGS:
            return m.group(0)
        if value is None or value == "True":
            return FLAGS[name]
        if value == "False":
            return "--no-" + FLAGS[name][2:]
        return f"{FLAGS[name]} {value}"

    return re.sub(r"`([a-z_]+)(?:=([^`\s]+))?`", flag, message)


def warn(message: str) -> None:
    """Print a warning (library wording made flag wording) on stderr."""
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/yellow] {escape(flagify(message))}", markup=True)


def error(message: str) -> None:
    """Print an error in the one style: ``error: <message>`` on stderr."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/bold red] {escape(flagify(message))}", markup=True)


_EXPECTS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
}


def usage_error_message(e: Exception) -> str:
    """A parser error (click's UsageError) in the one error style: the flag, what it expects
    and what it got, instead of the validator's wording."""
    param = getattr(e, "param", None)
    errors = getattr(e.__cause__, "errors", None)  # pydantic's ValidationError behind typer's
    if param is None or errors is None:
        return e.format_message()  # type: ignore[attr-defined]
    detail = errors()[0]
    flag = max(param.opts, key=len) if getattr(param, "opts", None) else param.name.upper()
    got = detail.get("input")
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:
        return f"{flag}: {got!r} is not allowed; choose {' | '.join(map(str, choices))}"
    if detail.get("type") in _EXPECTS:
        return f"{flag} expects {_EXPECTS[detail['type']]}, got {got!r}"
    return f"{flag}: {detail.get('msg', e)}"


# ---------------------------------------------------------------------------- help

# Placeholders in help texts, filled from the model registry when help is shown.
MODEL_HELP = "Model preset: {models}."
SKIP_BAD_HELP = "Exclude (and list) bad samples instead of stopping."

# Engine options shared by loso, ablate (and train for --fold-batch): declared once.
FOLD_BATCH_OPTION = typer.Option(
    None,
    "--fold-batch",
    help="Folds (in train: ensemble members) trained together as one batched model; 1 = one at a "
    "time. 0: 1 on CPU (measured fastest there), 8 on cuda (not yet timed). Dropout draws differ "
    "from one-at-a-time training, so scores agree within seed noise (docs/engine.md).",
    show_default="0",
)
BACKEND_OPTION = typer.Option(
    None,
    "--backend",
    help="Where folds train: local (this machine) or ray (a local Ray runtime, or the cluster at "
    "--ray-address). Same results either way; a run resumes across backends (docs/engine.md).",
    show_default="local",
)
RAY_ADDRESS_OPTION = typer.Option(
    None,
    "--ray-address",
    help="Address of a running Ray cluster (e.g. auto, or ray://HEAD:10001) for --backend ray.",
    show_default="a new local runtime",
)
MODEL_ARG_HELP = (
    "Model option KEY=VALUE, repeatable; the default model's: {model_options}. "
    "A wrong key lists the model's options."
)


def _models_help() -> str:
    from glfnet.models.registry import list_models, model_description

    return " | ".join(f"{n} ({model_description(n)})" for n in list_models())


def _model_options_help() -> str:
    from glfnet.config import Config
    from glfnet.models.registry import option_choices

    def shown(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return ", ".join(f"{k}={'|'.join(map(shown, vals))}" for k, vals in option_choices(Config.model).items())


def _flow_methods_help() -> str:
    from glfnet.preprocess.flow import FLOW_METHODS

    return " | ".join(FLOW_METHODS)


def _apex_rules_help() -> str:
    from glfnet.preprocess.apex import APEX_RULES

    return " | ".join(APEX_RULES)


# filled when help is shown: the registry imports torch, the preprocessing OpenCV
_FILLERS: dict[str, Callable[[], str]] = {
    "{models}": _models_help,
    "{model_options}": _model_options_help,
    "{flow_methods}": _flow_methods_help,
    "{apex_rules}": _apex_rules_help,
}


def fill_help(text: str) -> str:
    """``text`` with its placeholders ({models}, {model_options}, {flow_methods},
    {apex_rules}) filled in."""
    for token, make in _FILLERS.items():
        if token in text:
            text = text.replace(token, make())
    return text


def _element_type(annotation: Any) -> str:
    """``<path>`` for ``list[Path]``, ``<str>`` for ``list[str]``."""
    args = typing.get_args(annotation)
    elem = args[0] if args else str
    is_path = isinstance(elem, type) and issubclass(elem, PurePath)
    return f"<{'path' if is_path else getattr(elem, '__name__', 'text').lower()}>"


class _Option(TyperOption):
    """An option shown by the contract: switches without a type, repeatable options by their
    element's type, a ``show_default`` text as ``[default: X]`` (typer would add brackets)."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        if self.metavar is None and self.is_flag:
            return None
        if self.metavar is None and self.type_descriptor.is_list:
            return _element_type(self.type_descriptor.annotation)
        return super().display_type_rich(ctx)

    def _get_default_string(self, *, ctx: Any, show_default_is_str: bool, default_value: Any) -> str:
        if show_default_is_str:
            return str(self.show_default)
        return super()._get_default_string(
            ctx=ctx, show_default_is_str=show_default_is_str, default_value=default_value
        )


class _Argument(TyperArgument):
    """An argument named as in the usage line (``DATA``) in errors, and an argument list shown
    by its element's type (``<path>``), not ``<list[Path]>``."""

    def get_error_hint(self) -> str:
        return f"'{(self.metavar or self.name or '').upper()}'"

    def display_type(self, ctx: typer.Context) -> str:  # type: ignore[override]
        if self.type_descriptor.is_list:
            return _element_type(self.type_descriptor.annotation)
        return super().display_type(ctx)


def _tidy(params: list) -> list:
    for p in params:
        if type(p) is TyperOption:
            p.__class__ = _Option  # same object, contract's display (typer builds the params)
        elif type(p) is TyperArgument:
            p.__class__ = _Argument
    return params


def _reflow(text: str) -> str:
    """A docstring's paragraphs as one line each (the terminal wraps them), keeping blank
    lines, indented blocks (folder layouts) and lines that end a heading (``:``, ``/``)."""
    out: list[str] = []
    for line in text.split("\n"):
        prev = out[-1] if out else ""
        if prev and not prev[0].isspace() and prev[-1] not in ":/" and line[:1].isalnum():
            out[-1] = f"{prev} {line}"
        else:
            out.append(line)
    return "\n".join(out)


class Command(TyperCommand):
    """A command under the help contract (see the module docstring)."""

    def get_params(self, ctx: typer.Context) -> list:  # type: ignore[override]
        return _tidy(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                name = (p.metavar or p.name or "").upper()
                name = name if p.required else f"[{name}]"
                pieces.append(name + ("..." if p.nargs != 1 else ""))
        return pieces

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        self.help = _reflow(self.help or "")
        for p in self.get_params(ctx):
            if getattr(p, "help", None):
                p.help = fill_help(p.help)
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """A command group under the help contract (its own options: no type on switches)."""

    def get_params(self, ctx: typer.Context) -> list:  # type: ignore[override]
        return _tidy(super().get_params(ctx))


def apply_contract(app: typer.Typer) -> None:
    """Put every command of ``app``, and its sub-apps, under the help contract (where no
    other command class was chosen)."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = Command
    for group in app.registered_groups:
        if group.typer_instance is not None:
            if not isinstance(group.cls, type):  # typer's placeholder: no class chosen
                group.cls = Group
            apply_contract(group.typer_instance)


# ---------------------------------------------------------------------------- parsing


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints; a clear ConfigError otherwise."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ConfigError(f"--{what}: {part} is a reversed range; write {hi}-{lo}")
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"--{what}: {text!r} is not a list of integers like 0,1,2 or 0-4") from None
    if not out:
        raise ConfigError(f"--{what}: give at least one integer, e.g. 0,1,2")
    return out


def parse_model_args(items: list[str] | None) -> dict | None:
    """``["fusion=concat", "local_branch=false"]`` -> {"fusion": "concat", "local_branch": False}."""
    import yaml

    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--model-arg {item!r}: write KEY=VALUE, e.g. fusion=concat")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


# ---------------------------------------------------------------------------- shared steps


def load_data(data: Path, labels: Path | None, skip_bad: bool) -> FlowSet:
    """Read a flow set; excluded samples (``skip_bad``) and its warnings (samples left out
    by prepare) are warned."""
    from glfnet.data.flowsets import load_flowset

    fs = load_flowset(data, labels=labels, skip_bad=skip_bad)
    for p in fs.problems:
        warn(f"excluded {p.sample_id or ''}: {p}")
    for w in fs.warnings:
        warn(w)
    return fs


@contextmanager
def progress_bar(on: Console, disable: bool = False) -> Iterator[Progress]:
    """The one progress bar style: description, bar, done/total, elapsed, remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=on,
        disable=disable,
        transient=False,
    ) as bar:
        yield bar


def run_with_progress(
    fs: FlowSet,
    cfg: Config,
    out: Path,
    overwrite: bool = False,
    quiet: bool = False,
    on: Console | None = None,
) -> Metrics:
    """Run the protocol under a progress bar over folds (shown once the run has started:
    nothing before an error; folds finished in any order, as a parallel or Ray run finishes
    them); folds reused from an earlier run are summed up in one line, and at the end what
    this invocation trained, in how long, how fast. Returns the metrics."""
    from glfnet.eval.runner import run_protocol

    with progress_bar(on or console, disable=quiet) as bar:
        task = None

        def progress(done: int, total: int, label: str) -> None:
            nonlocal task
            if task is None:
                if done and not quiet:
                    bar.console.print(f"{plural(done, 'fold')} reused from an earlier run")
                task = bar.add_task("folds", total=total)
            bar.update(
                task,
                completed=done,
                total=total,
                description="folds" if label == "starting" else f"folds ({label})",
            )

        def log(text: str) -> None:
            if not quiet:
                bar.console.print(text, markup=False)

        metrics = run_protocol(fs, cfg, out, overwrite=overwrite, progress=progress, log=log)
    if metrics.throughput and metrics.throughput.folds_trained and not quiet:
        (on or console).print(throughput_line(metrics.throughput))
    return metrics


def duration(seconds: float) -> str:
    """``12.3 s``, ``3 min 12 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def throughput_line(t: Throughput) -> str:
    """``trained 40 folds in 3 min 12 s: 2,450 training samples/s (local, 2 workers)``."""
    return (
        f"trained {plural(t.folds_trained, 'fold')} in {duration(t.seconds)}: "
        f"{t.samples_per_second:,.0f} training samples/s ({t.backend}, {plural(t.workers, 'worker')})"
    )


def print_results(metrics: Metrics, on: Console | None = None) -> None:
    """The leak-free table, and the oracle's (labelled optimistic) when the run has one."""
    from glfnet.report.tables import rich_table

    on = on or console
    on.print(rich_table(metrics, "honest"))
    if metrics.oracle:
        on.print(rich_table(metrics, "oracle"))
        on.print(
            "[yellow]The oracle table picks each subject's best epoch on its own test "
            "data, as several published papers do. It is optimistic and not a result; "
            "quote the leak-free table.[/yellow]"
        )


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (nothing else goes there with ``--json``); objects
    with ``to_dict`` (Metrics, ...) as that dict, numpy values as numbers and lists, paths as
    text."""

    def plain(o: Any) -> Any:
        if hasattr(o, "to_dict"):
            return o.to_dict()
        return o.tolist() if hasattr(o, "tolist") else str(o)

    typer.echo(json.dumps(obj, indent=2, default=plain))


def write_report(out: Path, on: Console | None = None) -> None:
    """Write report.md/report.html into the run directory; a failure only warns (the results
    are written already)."""
    from glfnet.errors import GlfnetError
    from glfnet.report.build import build_report

    try:
        paths = build_report(out)
    except GlfnetError as e:  # the results are written; a failed report must not hide them
        warn(
            f"the report could not be built ({e}); the results above are in {out}. "
            f"Retry with `glfnet report {out}`."
        )
        return
    (on or console).print(f"report: {', '.join(str(p) for p in paths)}")


def show_comparison(comp: Any, out: Path, as_json: bool = False) -> None:
    """Print a comparison's tables and warnings, write its files into ``out``. With
    ``as_json`` stdout gets one JSON object instead (the comparison and the files written)."""
    from glfnet.report.compare import rich_tables, write_comparison

    for table in [] if as_json else rich_tables(comp):
        console.print(table)
    for w in comp.warnings:
        warn(w)
    paths = write_comparison(comp, out)
    if as_json:
        print_json({**comp.to_dict(), "files": [str(p) for p in paths]})
    else:
        console.print(f"comparison: {', '.join(str(p) for p in paths)}")


# ---------------------------------------------------------------------------- prepare


def prepare_and_report(
    sources: list,
    out: Path,
    protocol: str | None,
    params: Any,
    jobs: int = 0,
    export_png: Path | None = None,
    overwrite: bool = False,
) -> Any:
    """`glfnet prepare` (and the demo's step 2): read and select (:func:`plan_prepare`),
    compute with a progress bar, print the counts, anomalies and missing samples; a
    DataError when no sample could be processed. Returns the PrepareResult."""
    from glfnet.preprocess import prepare as prep

    prep.resolve_jobs(jobs)  # a bad --jobs stops before any reading
    plan = prep.plan_prepare(sources, protocol, params)
    _show_plan(plan)
    with progress_bar(err_console) as bar:
        task = None

        def progress(done: int, total: int, row: dict | None) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("flow", total=max(total, 1) if total else 0)
                if total == 0:
                    bar.update(task, description="flow (all samples already in the cache)")
            else:
                bar.update(task, completed=done)

        result = prep.run_prepare(plan, out, jobs, export_png, overwrite, progress)
    _show_counts(result, plan)
    _show_samples(result, plan.selection.protocol.name)
    if export_png is not None:
        console.print(f"PNG export (STSTNet layout): {export_png}")
    prep.require_processed(result)
    return result


def _show_plan(plan: Any) -> None:
    from glfnet.data.naming import DB_DISPLAY

    for scan in plan.scans:
        sheet = f", sheet {scan.annotations}" if scan.annotations else ""
        console.print(
            f"{DB_DISPLAY.get(scan.database, scan.database)}: "
            f"{plural(len(scan.samples), 'clip')} in {scan.frames_dir} "
            f"({scan.variant} frames{sheet})"
        )
    for w in plan.warnings:
        warn(w)
    sel = plan.selection
    console.print(
        f"Protocol {plan.protocol.name}: {plural(len(sel.included), 'sample')} "
        f"selected, {len(sel.excluded)} left out; classes {', '.join(sel.classes)}"
    )


def _show_counts(result: Any, plan: Any) -> None:
    from rich import box
    from rich.table import Table

    from glfnet.preprocess.prepare import count_table, count_warnings

    header, rows = count_table(result, plan.selection.classes)
    table = Table(
        title=f"{plan.protocol.name}: samples with a flow / selected",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    table.add_column(header[0], no_wrap=True)
    for name in header[1:]:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for w in count_warnings(plan.selection):
        warn(w)


def _print_list(title: str, lines: list[str]) -> None:
    from rich.markup import escape

    console.print(title)
    for line in lines:
        console.print(f"  {escape(line)}", markup=True)


def _show_samples(result: Any, protocol: str) -> None:
    """Anomalies, expected samples not found, what the protocol left out, the cache's tally."""
    from collections import Counter

    from rich.markup import escape

    from glfnet.data.cache import MANIFEST_FILE
    from glfnet.preprocess.pipeline import EXCLUDED_FILE

    m, ex = result.manifest, result.excluded
    flagged = m[m["anomalies"] != ""]
    if len(flagged):
        _print_list(
            f"\nAnomalies ({len(flagged)} samples; also in {MANIFEST_FILE}):",
            [f"{r.sample_id} [{r.status}]: {r.anomalies}" for r in flagged.itertuples()],
        )
    missing = m[m["status"] == "missing"]
    if len(missing):
        _print_list(
            f"\nExpected but not found on disk ({len(missing)}):",
            [f"{r.sample_id} ({r.clip_dir or 'no folder'})" for r in missing.itertuples()],
        )
    flagged_ex = ex[ex["anomalies"] != ""]
    if len(flagged_ex):
        _print_list(
            f"\nAnomalies in samples left out by {protocol} ({len(flagged_ex)}):",
            [f"{r.sample_id}: {r.anomalies}" for r in flagged_ex.itertuples()],
        )
    if len(ex):
        shown = "; ".join(f"{r} ({n})" for r, n in Counter(ex["reason"]).most_common(8))
        console.print(
            f"\nLeft out by {protocol}: {len(ex)} ({escape(shown)}); "
            f"listed in {result.cache_dir / EXCLUDED_FILE}"
        )
    st = result.status_counts()
    console.print(
        f"\nCache {result.cache_dir}: {st['ok']} ok, {st['failed']} failed, "
        f"{st['missing']} missing ({result.computed} computed, {result.skipped} "
        f"already there). Next: glfnet inspect {result.cache_dir}"
    )
