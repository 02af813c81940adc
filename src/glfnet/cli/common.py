"""Shared pieces of the command line: consoles, error exit, option parsing helpers."""

from __future__ import annotations

from rich.console import Console

# soft_wrap: never break a file name across lines (tests and users grep for them).
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


MODEL_HELP = ("glfnet_t (default: GLFNet on STSTNet's shallow stem, 28 px, CPU) | glfnet_s "
              "(ResNet-style trunk, 28 px) | glfnet (paper scale, 224 px) | ststnet (baseline).")


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
