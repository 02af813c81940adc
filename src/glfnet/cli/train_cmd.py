"""`glfnet train` (placeholder until implemented)."""


def register(app) -> None:
    pass
