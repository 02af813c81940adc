"""Run the ``glfnet`` command in-process, for the tests of every subcommand."""

from glfnet.cli.main import main


def glfnet(capsys, *args) -> tuple[int, str, str]:
    """Run ``glfnet ARGS``; return (exit code, stdout, stderr). A traceback fails the test."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
