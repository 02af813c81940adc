"""Options removed after commit 75f388f, and how files written before that name them.

None is used by a preset, the ablation or the nested-selection menu, and none gained where the
development study measured it; docs/training.md ("Removed options") keeps one line per option:
what it was, what it scored. A run directory's
``config.yaml``, a ``--config`` file, a menu or a model directory written earlier may still
name one. At the value where it changed nothing it is dropped when the file is read (old runs
resume, old models load); at any other value the file describes a training or a network this
version cannot reproduce, and reading stops with a message naming the file and the option.
"""

from __future__ import annotations

from typing import Any

from glfnet.errors import ConfigError, GlfnetError

LAST_COMMIT = "75f388f"  # the last commit that had every option below

# Config fields, each with the value at which it changed nothing
CONFIG = {"tta": False, "mixup": 0, "swa_epochs": 0, "base_loss": "ce"}
# Config fields that acted only through another removed field (ignored while that one is off)
CONFIG_THROUGH = {"swa_lr": "swa_epochs", "focal_gamma": "base_loss"}
# GLFNet's constructor options, each with the value that builds today's network
MODEL_ARGS = {
    "region_halo": 0,
    "branch_stride": 2,
    "branch_block": "basic",
    "branch_drop": 0,
    "global_attn": "nonlocal",
}
# values removed from options that stay
MODEL_ARG_VALUES = {"fusion": ("gate",)}
# the input pipeline's state in a model directory (the test-time flip)
PIPELINE = {"tta": False}


def _stop(where: str, what: str, error: type[GlfnetError]) -> GlfnetError:
    return error(
        f"{where}: {what} was removed from glfnet in this version (measured without a gain worth "
        "its place: docs/training.md, Removed options), so this version cannot reproduce what the file "
        f"describes. Use glfnet at commit {LAST_COMMIT} for it, or delete the option."
    )


def drop(
    data: dict[str, Any],
    table: dict[str, Any],
    where: str,
    error: type[GlfnetError] = ConfigError,
    through: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``data`` without the options of ``table`` that hold their no-op value (and without
    those of ``through`` whose carrier is off); ``error`` naming ``where`` for one that is on."""
    for key, noop in table.items():
        if key in data and data[key] != noop:
            raise _stop(where, f"option `{key}` (set to {data[key]!r})", error)
    return {k: v for k, v in data.items() if k not in table and k not in (through or {})}


def noops_dropped(data: dict[str, Any]) -> dict[str, Any]:
    """A configuration without its removed options at their no-op value (nor those acting
    through one that is gone), ``model_args`` likewise: what :func:`config_options` keeps of
    it, but an option that is on stays instead of stopping (for comparing old runs)."""

    def live(d: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in table or table[k] != v}

    out = live(data, CONFIG)
    out = {k: v for k, v in out.items() if CONFIG_THROUGH.get(k, k) in out}
    if isinstance(out.get("model_args"), dict):
        out["model_args"] = live(out["model_args"], MODEL_ARGS)
    return out


def model_args(args: dict[str, Any], where: str, error: type[GlfnetError] = ConfigError) -> dict[str, Any]:
    """A model's options without removed ones at their no-op value (see :func:`drop`)."""
    for key, values in MODEL_ARG_VALUES.items():
        if args.get(key) in values:
            raise _stop(where, f"`{key}` {args[key]!r}", error)
    return drop(args, MODEL_ARGS, where, error)


def config_options(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A configuration's options (config.yaml, a ``--config`` file, a menu recipe) without
    removed ones at their no-op value, its ``model_args`` likewise; ConfigError for one that
    is on."""
    out = drop(data, CONFIG, where, ConfigError, CONFIG_THROUGH)
    if isinstance(out.get("model_args"), dict):
        out["model_args"] = model_args(out["model_args"], where)
    return out


def note(key: str, value: Any = None) -> str:
    """A hint for an unknown option ``key`` (or a refused ``value`` of it) that was removed."""
    if key in CONFIG or key in CONFIG_THROUGH or key in MODEL_ARGS:
        return f" (`{key}` was removed after commit {LAST_COMMIT})"
    if value in MODEL_ARG_VALUES.get(key, ()):
        return f" ({value!r} was removed after commit {LAST_COMMIT})"
    return ""
