"""Entry point: ``glfnet <command>``. Errors the user can fix print a message and exit 2."""

from __future__ import annotations

import sys

import typer

from glfnet._version import __version__
from glfnet.cli import common

app = typer.Typer(
    name="glfnet",
    help=(
        "GLFNet micro-expression recognition with leak-free evaluation.\n\n"
        "Typical flow: `glfnet prepare` (raw dataset folders -> flow cache), "
        "`glfnet inspect` (check a flow set), `glfnet loso` (leak-free leave-one-subject-out "
        "results), `glfnet report` / `compare` (tables and figures), `glfnet train` + "
        "`glfnet predict` (use a model on your own clips). `glfnet demo` runs it all on "
        "built-in synthetic data."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool):
    if value:
        common.console.print(f"glfnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    pass


def _register_commands() -> None:
    from glfnet.cli import (ablate_cmd, demo_cmd, inspect_cmd, loso_cmd, predict_cmd,
                            prepare_cmd, report_cmd, train_cmd)

    for module in (prepare_cmd, inspect_cmd, loso_cmd, report_cmd, ablate_cmd,
                   train_cmd, predict_cmd, demo_cmd):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    from rich.markup import escape

    from glfnet.errors import GlfnetError

    try:
        app(args=argv, prog_name="glfnet")
    except GlfnetError as e:
        common.err_console.print(f"[bold red]error:[/bold red] {escape(common.flagify(str(e)))}",
                                 markup=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        common.err_console.print("interrupted. Run the same command again to resume: finished "
                                 "work is kept.")
        sys.exit(130)


if __name__ == "__main__":
    main()
