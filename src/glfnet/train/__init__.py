"""Training: losses and the per-fold trainer (which only ever sees training data)."""
