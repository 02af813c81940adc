"""Shared pieces of the command line: consoles, error exit, option parsing helpers."""

from __future__ import annotations

from rich.console import Console

# soft_wrap: never break a file name across lines (tests and users grep for them).
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


MODEL_HELP = ("glfnet_t (default: GLFNet on STSTNet's shallow stem, 28 px, CPU) | glfnet_s "
              "(ResNet-style trunk, 28 px) | glfnet (paper scale, 224 px) | ststnet (baseline).")


# Library errors name parameters as a Python caller passes them, in backticks (`labels`,
# `out`, `seeds`); this table, the one place that knows the command line, turns them into the
# flags a shell user typed. Names not in it (file columns, config keys) are left as written.
FLAGS = {
    "labels": "--labels", "out": "--out", "seeds": "--seeds", "crop": "--crop", "onset": "--onset",
    "apex": "--apex", "offset": "--offset", "model": "--model", "model_dir": "--model/-m",
    "config": "--config", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
    "protocol": "--protocol", "loss": "--loss", "device": "--device", "jobs": "--jobs",
    "ensemble": "--ensemble", "tta": "--tta", "oracle": "--oracle", "input_size": "--input-size",
    "model_args": "--model-arg", "fold_batch": "--fold-batch", "backend": "--backend",
    "dataset": "--dataset", "size": "--size", "flow": "--flow", "align": "--align",
    "variants": "--variants", "force": "--force", "fps": "--fps",
}


def flagify(message: str) -> str:
    """A library message for a command-line user: `param` -> --flag (see FLAGS)."""
    import re

    return re.sub(r"`([a-z_]+)`", lambda m: FLAGS.get(m.group(1), m.group(0)), message)


def warn(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True)


def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints; a clear ConfigError otherwise."""
    from glfnet.errors import ConfigError

    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"--{what}: {text!r} is not a list of integers like 0,1,2 or 0-4") from None
    if not out:
        raise ConfigError(f"--{what}: give at least one integer, e.g. 0,1,2")
    return out
