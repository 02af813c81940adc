"""User-facing errors. The CLI prints their message and exits non-zero, never a traceback."""


class GlfnetError(Exception):
    """An error the user can fix: the message names the file/row/value and what to do."""

    exit_code = 2


class DataError(GlfnetError):
    """Bad or inconsistent input data (images, label files, dataset folders, caches)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            shown = self.problems[:50]
            more = len(self.problems) - len(shown)
            message = message + "\n" + "\n".join(f"  - {p}" for p in shown)
            if more:
                message += f"\n  ... and {more} more"
        super().__init__(message)


class ConfigError(GlfnetError):
    """A bad option, configuration file or combination of settings."""


class ModelFileError(GlfnetError):
    """A missing, corrupt, truncated or mismatched model directory."""


class RunLockedError(GlfnetError):
    """A run directory that another live glfnet process is writing (its lock file names it)."""
