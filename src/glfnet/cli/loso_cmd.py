"""`glfnet loso` (placeholder until implemented)."""


def register(app) -> None:
    pass
