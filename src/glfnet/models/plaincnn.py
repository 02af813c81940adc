"""A plain CNN baseline: five 3x3 convolutions, two max-pools, global average pooling, linear.

Not a published network: the reference "a researcher's first CNN" of the development study
(docs/study.md), with nothing designed for micro-expressions -- no attention, no regions,
no position-keeping head -- so that GLFNet and STSTNet can be read beside it. Each
convolution is conv 3x3 (no bias) -> BatchNorm -> ReLU; 2x2 max-pools after the second and
the fourth (28 -> 14 -> 7 px); about 35 k parameters at the default widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from glfnet.models.layers import Dropout, conv_bn_act, init_weights
from glfnet.models.registry import register_model


class PlainCNN(nn.Module):
    """Plain CNN: ``widths`` 3x3 conv-BN-ReLU layers, a 2x2 max-pool after each layer whose
    (0-based) index is in ``pool_after``, global average pooling, dropout, linear.
    ``img_size`` is accepted for the registry's sake; any size of at least 4 px works."""

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        img_size: int = 28,
        widths: Sequence[int] = (16, 16, 32, 32, 64),
        pool_after: Sequence[int] = (1, 3),
        drop_rate: float = 0.3,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one layer")
        layers: list[nn.Module] = []
        prev = in_chans
        for i, w in enumerate(widths):
            layers.append(conv_bn_act(prev, int(w), 3))
            if i in pool_after:
                layers.append(nn.MaxPool2d(2, 2))
            prev = int(w)
        self.features = nn.Sequential(*layers)
        self.num_classes, self.num_features = num_classes, prev
        self.drop = Dropout(drop_rate)
        self.fc = nn.Linear(prev, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empty: no attention module (the interface of ``GLFNet.attention_maps``)."""
        return {}


@register_model("plaincnn", description="plain 5-conv CNN baseline (35 k parameters), 28 px", input_size=28)
def plaincnn(**kwargs) -> PlainCNN:
    return PlainCNN(**kwargs)
