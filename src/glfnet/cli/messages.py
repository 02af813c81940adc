"""How the command line speaks: the consoles, warnings and errors in the one style, library
wording turned into flags, and the small words (plurals, durations) every command prints.

Errors: one line, ``error: ...``, exit 2. Library errors name parameters in backticks;
:func:`flagify` turns them into the flags a shell user typed (:data:`FLAGS`). Parser errors
(:func:`usage_error_message`) name the flag and what it expects.
"""

from __future__ import annotations

import re

from rich.console import Console

# soft_wrap: never break a file name across lines (tests and users grep for them).
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


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


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def duration(seconds: float) -> str:
    """``12.3 s``, ``3 min 12 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
