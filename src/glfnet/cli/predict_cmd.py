"""`glfnet predict` (placeholder until implemented)."""


def register(app) -> None:
    pass
