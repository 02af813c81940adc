"""Entry point: ``glfnet <command>``. Errors the user can fix print one line and exit 2.

The only module that imports the command modules; it lists them in workflow order, puts every
command under the help contract (:mod:`glfnet.cli.contract`) and prints every error, parser
and library alike, in the one style (:mod:`glfnet.cli.messages`).
"""

from __future__ import annotations

import sys

import typer
from typer._click.exceptions import UsageError  # typer vendors click (typer >= 0.20)

from glfnet._version import __version__
from glfnet.cli import contract, messages

# `glfnet --help` lists the commands in the order a user runs them
WORKFLOW = ("prepare", "inspect", "loso", "tune", "ablate", "report", "compare", "train", "predict", "demo")


class _Workflow(contract.Group):
    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))


app = typer.Typer(
    name="glfnet",
    cls=_Workflow,
    help=(
        "GLFNet micro-expression recognition with leak-free evaluation.\n\n"
        "Typical flow: `glfnet prepare` (raw dataset folders -> flow cache), "
        "`glfnet inspect` (check a flow set), `glfnet loso` (leak-free leave-one-subject-out "
        "results), `glfnet tune` (a recipe chosen per fold from its training subjects only), "
        "`glfnet report` / `compare` (tables and figures), `glfnet train` + "
        "`glfnet predict` (use a model on your own clips). `glfnet demo` runs it all on "
        "built-in synthetic data."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        messages.console.print(f"glfnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def _register_commands() -> None:
    from glfnet.cli import (
        ablate_cmd,
        demo_cmd,
        inspect_cmd,
        loso_cmd,
        predict_cmd,
        prepare_cmd,
        report_cmd,
        train_cmd,
        tune_cmd,
    )

    for module in (
        prepare_cmd,
        inspect_cmd,
        loso_cmd,
        tune_cmd,
        report_cmd,
        ablate_cmd,
        train_cmd,
        predict_cmd,
        demo_cmd,
    ):
        module.register(app)
    contract.apply_contract(app)


_register_commands()


def _usage_error(e: UsageError) -> int:
    if type(e).__name__ == "NoArgsIsHelpError":  # the help is printed already
        return e.exit_code
    messages.error(messages.usage_error_message(e))
    if e.ctx is not None:
        messages.err_console.print(f"see `{e.ctx.command_path} --help`", markup=False)
    return 2


def main(argv: list[str] | None = None) -> None:
    """Run ``glfnet ARGV`` (default: the process's arguments) and exit with its status."""
    from glfnet.errors import GlfnetError

    try:
        code = app(args=argv, prog_name="glfnet", standalone_mode=False)
    except UsageError as e:
        sys.exit(_usage_error(e))
    except GlfnetError as e:
        messages.error(str(e))
        sys.exit(e.exit_code)
    except typer.Abort:
        messages.error("aborted")
        sys.exit(1)
    if code == 130:  # typer's answer to Ctrl-C
        messages.err_console.print(
            "interrupted. Run the same command again to resume: finished work is kept."
        )
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
