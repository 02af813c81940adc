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
    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = self.members[0].num_classes

    def set_keep_maps(self, keep: bool = True) -> None:
        for m in self.members:
            if hasattr(m, "set_keep_maps"):
                m.set_keep_maps(keep)

    def forward(self, x):
        logp = torch.stack([F.log_softmax(m(x).float(), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))
