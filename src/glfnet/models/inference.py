"""Class probabilities from a network and its input pipeline: eval mode, no gradients."""

from __future__ import annotations

import numpy as np
import torch

from glfnet.data import transforms as T
from glfnet.data.pipeline import InputPipeline


@torch.no_grad()
def predict_proba(
    model, pipeline: InputPipeline, X, batch_size: int = 256, groups=None, tta: bool | None = None
) -> np.ndarray:
    """Class probabilities (N, K); eval mode, no gradients, no random numbers. ``groups``:
    each sample's database, for a pipeline with per-database statistics; ``tta`` overrides
    the pipeline's test-time flip (None: as the pipeline says)."""
    tta = pipeline.tta if tta is None else tta
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    X = X if isinstance(X, torch.Tensor) else torch.tensor(np.asarray(X), dtype=torch.float32)
    out = []
    for i in range(0, len(X), batch_size):
        xs = pipeline.prepare(X[i : i + batch_size].to(device))
        g = None if groups is None else groups[i : i + batch_size]
        p = torch.softmax(model(pipeline(xs, groups=g)).float(), dim=1)
        if tta:  # test-time flip: mirror the face and negate u
            p = (p + torch.softmax(model(pipeline(T.hflip(xs), groups=g)).float(), dim=1)) / 2
        out.append(p.cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes), np.float32)
