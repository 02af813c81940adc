"""`glfnet prepare` (placeholder until implemented)."""


def register(app) -> None:
    pass
