"""A timm-style model registry: presets by name, overrides by keyword.

Besides building presets, the registry answers what configuration and the command line ask
about them: the preset's facts (``input_size``), a one-line description, the keyword options
it takes (the parameters of the class its builder returns) with their allowed values where
the class annotates them (``bool``, ``typing.Literal``), and whether a set of options builds
(values of the annotated type first, so a wrong one is named in words, not by Python).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from glfnet import removed
from glfnet.errors import ConfigError

_REGISTRY: dict[str, Callable[..., Any]] = {}
_DEFAULTS: dict[str, dict] = {}
_DESCRIPTIONS: dict[str, str] = {}

# passed by create_model itself, not options a user sets
_FIXED = ("num_classes", "in_chans")


def register_model(
    name: str, description: str | None = None, **defaults: Any
) -> Callable[[Callable], Callable]:
    """Decorator: ``@register_model("glfnet_s", input_size=28)`` on a builder ``fn(**kwargs)``
    annotated with the class it returns. ``description``: one line for listings (default: the
    first line of the builder's docstring). ``defaults`` holds preset facts other code reads
    (``input_size``)."""

    def wrap(fn: Callable) -> Callable:
        _REGISTRY[name] = fn
        _DEFAULTS[name] = dict(defaults)
        _DESCRIPTIONS[name] = description or (inspect.getdoc(fn) or "").split("\n")[0].strip()
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(_REGISTRY)


def model_defaults(name: str) -> dict:
    """The preset's facts (``input_size``)."""
    _check(name)
    return dict(_DEFAULTS[name])


def preset_revision(name: str) -> int:
    """The preset's current revision (1 unless it changed since it was first released)."""
    return int(model_defaults(name).get("revision", 1))


def preset_args_at(name: str, revision: int) -> dict:
    """Options that rebuild ``revision`` of a preset whose settings changed since: a model
    directory records the revision it was trained with, so older ones still load."""
    return dict(model_defaults(name).get("earlier", {}).get(int(revision), {}))


def model_description(name: str) -> str:
    """One line about the preset: its registered description, else its class and input size."""
    _check(name)
    if _DESCRIPTIONS[name]:
        return _DESCRIPTIONS[name]
    cls = _model_class(name)
    size = _DEFAULTS[name].get("input_size")
    return ", ".join(filter(None, [cls.__name__ if cls else name, f"{size} px input" if size else ""]))


def _check(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")


def _model_class(name: str) -> type | None:
    """The class the preset's builder returns (its return annotation), if it names one."""
    try:
        cls = typing.get_type_hints(_REGISTRY[name]).get("return")
    except (NameError, TypeError):
        return None
    return cls if isinstance(cls, type) else None


def model_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options preset ``name`` takes: the parameters of its class's constructor
    (of the builder itself when that names them), in order."""
    _check(name)
    target = _model_class(name) or _REGISTRY[name]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        k: p for k, p in inspect.signature(target).parameters.items() if p.kind in kinds and k not in _FIXED
    }


def _option_hints(name: str) -> dict[str, Any]:
    """The type annotations of preset ``name``'s options ({} where they cannot be read)."""
    target = _model_class(name) or _REGISTRY[name]
    try:
        init = target.__init__ if isinstance(target, type) else target  # type: ignore[misc]
        return typing.get_type_hints(init)
    except (NameError, TypeError):
        return {}


def option_choices(name: str) -> dict[str, tuple]:
    """Allowed values of the options whose annotation fixes them: ``bool`` -> (True, False),
    ``typing.Literal[...]`` -> its values."""
    hints = _option_hints(name)
    out: dict[str, tuple] = {}
    for key in model_options(name):
        hint = hints.get(key)
        if hint is bool:
            out[key] = (True, False)
        elif typing.get_origin(hint) is typing.Literal:
            out[key] = typing.get_args(hint)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_int(v) for v in value)


_SEQUENCES = (list, tuple, Sequence)


def _expected(hint: Any) -> tuple[str, Callable[[Any], bool]] | None:
    """What an option annotated ``hint`` takes, in words, and a test of a value; None where
    the annotation is not a simple one (``bool`` and ``Literal`` are :func:`option_choices`)."""
    simple: dict[Any, tuple[str, Callable[[Any], bool]]] = {
        int: ("an integer", _is_int),
        float: ("a number", _is_number),
        str: ("text", lambda v: isinstance(v, str)),
    }
    if hint in simple:
        return simple[hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in _SEQUENCES and args in ((int,), (int, Ellipsis)):
        return "a list of integers", _is_int_list
    return None


def _check_option_types(name: str, options: Mapping[str, Any]) -> None:
    hints = _option_hints(name)
    for key, value in options.items():
        expected = _expected(hints.get(key))
        if expected is not None and not expected[1](value):
            raise ConfigError(f"model `{name}` option `{key}` expects {expected[0]}, got {value!r}")


def _check_option_names(name: str, options: Mapping[str, Any]) -> None:
    known = model_options(name)
    unknown = [k for k in options if k not in known]
    if unknown:
        which = ", ".join(f"`{k}`" for k in unknown)
        raise ConfigError(
            f"bad option for model `{name}`: it has no option {which}"
            f"{''.join(removed.note(k) for k in unknown)}; its options are: {', '.join(known)}"
        )


def check_model_args(name: str, options: Mapping[str, Any], input_size: int | None = None) -> None:
    """Raise ConfigError unless preset ``name`` accepts ``options``: every key is one of its
    options, options with a simple annotation (int, float, str, a sequence of int) hold a
    value of that type, ``bool`` and ``Literal`` ones an allowed value, and the model builds
    (once, on CPU, without touching the global random state; the answer is cached)."""
    _check(name)
    if not isinstance(options, Mapping):
        raise ConfigError(f"`model_args` must be a mapping of option: value, got {options!r}")
    _check_option_names(name, options)
    _check_option_types(name, options)
    for key, allowed in option_choices(name).items():
        if key in options and options[key] not in allowed:
            shown = " | ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
            raise ConfigError(
                f"model `{name}`, option `{key}`: {options[key]!r} is not allowed"
                f"{removed.note(key, options[key])}; choose {shown}"
            )
    args = dict(options)
    if input_size and "img_size" in model_options(name):
        args.setdefault("img_size", int(input_size))
    _builds(name, json.dumps(args, sort_keys=True, default=repr))


@lru_cache(maxsize=64)
def _builds(name: str, args_json: str) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):
        create_model(name, **json.loads(args_json))


def create_model(name: str, num_classes: int = 3, in_chans: int = 3, **overrides: Any):
    """Build preset ``name`` with ``overrides`` of its options; a ConfigError names a bad one."""
    _check(name)
    _check_option_names(name, overrides)
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    if "input_size" in _DEFAULTS[name]:  # the preset's input size unless told otherwise
        overrides.setdefault("img_size", _DEFAULTS[name]["input_size"])
    try:
        return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **overrides)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"bad option for model `{name}` ({given or 'its defaults'}): {e}") from None
