"""A seed ensemble: K networks of one architecture whose class probabilities are averaged.

Averaging the probabilities of independently initialised networks is the plainest variance
reduction there is (Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017). ``forward`` returns the log of the mean
probability, so ``softmax(forward(x))`` is exactly the mean of the members' softmaxes and the
ensemble drops in wherever a single model's logits are read.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Ensemble(nn.Module):
    """The mean of ``members``' class probabilities (as log-probabilities)."""

    def __init__(self, members) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = self.members[0].num_classes

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The first member's attention maps (see ``GLFNet.attention_maps``): the members
        share an architecture, and one member's maps are what the report shows."""
        first = getattr(self.members[0], "attention_maps", None)
        return {} if first is None else first(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([F.log_softmax(m(x).float(), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))
