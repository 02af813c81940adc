"""Evaluation: subject-independent splits, MEGC2019 metrics, and the protocol runner."""
