"""The help contract every command follows (tests/test_cli_contract.py checks it).

:class:`Command`, which ``cli/main.py`` sets on every command (:func:`apply_contract`):
arguments appear in the usage line as ``DATA``; plain flags show no type; repeatable options
and argument lists show their element's type; a default is shown as ``[default: X]`` whether
typer knows the value or the option names it (``show_default="30"`` where ``None`` means "the
configuration's"). Allowed values come from the ``Literal`` types the library declares
(``glfnet.config``), from the model registry and the preprocessing (placeholders such as
``{models}``, filled in when help is shown, so that starting the CLI imports neither torch
nor OpenCV).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


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
