"""`glfnet ablate` (placeholder until implemented)."""


def register(app) -> None:
    pass
