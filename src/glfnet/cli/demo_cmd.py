"""`glfnet demo` (placeholder until implemented)."""


def register(app) -> None:
    pass
