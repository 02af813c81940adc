"""`glfnet report` (placeholder until implemented)."""


def register(app) -> None:
    pass
