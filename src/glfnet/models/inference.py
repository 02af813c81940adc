"""Class probabilities from a network and its input pipeline: eval mode, no gradients."""

from __future__ import annotations

import numpy as np
import torch

from glfnet.data.pipeline import InputPipeline


@torch.no_grad()
def predict_proba(model, pipeline: InputPipeline, X, batch_size: int = 256, groups=None) -> np.ndarray:
    """Class probabilities (N, K); eval mode, no gradients, no random numbers. ``groups``:
    each sample's database, for a pipeline with per-database statistics."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    X = X if isinstance(X, torch.Tensor) else torch.tensor(np.asarray(X), dtype=torch.float32)
    out = []
    for i in range(0, len(X), batch_size):
        xs = pipeline.prepare(X[i : i + batch_size].to(device))
        g = None if groups is None else groups[i : i + batch_size]
        out.append(torch.softmax(model(pipeline(xs, groups=g)).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes), np.float32)
