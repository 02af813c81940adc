"""`glfnet inspect` (placeholder until implemented)."""


def register(app) -> None:
    pass
