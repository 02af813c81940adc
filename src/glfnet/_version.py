"""The package version, in one place (imported by every layer)."""

__version__ = "0.1.0"
