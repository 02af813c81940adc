"""A timm-style model registry: presets by name, overrides by keyword."""

from __future__ import annotations

from typing import Callable

from glfnet.errors import ConfigError

_REGISTRY: dict[str, Callable] = {}
_DEFAULTS: dict[str, dict] = {}


def register_model(name: str, **defaults):
    """Decorator: ``@register_model("glfnet_s", input_size=28)`` on a builder ``fn(**kwargs)``.
    ``defaults`` holds preset facts other code reads (``input_size``)."""

    def wrap(fn):
        _REGISTRY[name] = fn
        _DEFAULTS[name] = dict(defaults)
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_defaults(name: str) -> dict:
    _check(name)
    return dict(_DEFAULTS[name])


def _check(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")


def create_model(name: str, num_classes: int = 3, in_chans: int = 3, **overrides):
    _check(name)
    if "input_size" in _DEFAULTS[name]:  # the preset's input size unless told otherwise
        overrides.setdefault("img_size", _DEFAULTS[name]["input_size"])
    try:
        return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad option for model {name!r}: {e}") from None
