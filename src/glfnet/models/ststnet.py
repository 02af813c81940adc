"""STSTNet baseline: Liong, See, Wong, Phan, "Shallow Triple Stream Three-dimensional CNN
(STSTNet) for Micro-expression Recognition", FG 2019 (MEGC2019).

Three parallel 3x3 convolutions with 3, 5 and 8 channels (padding 2), each ReLU -> BN ->
3x3 max-pool (stride 3) -> dropout 0.5; concatenated (16 channels); 2x2 average pool; a
linear layer to the classes. About 1.7 k parameters at 28x28.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from glfnet.models.layers import init_weights
from glfnet.models.registry import register_model


class STSTNet(nn.Module):
    """STSTNet: three shallow convolution streams, concatenated, average-pooled, linear."""

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        img_size: int = 28,
        widths: Sequence[int] = (3, 5, 8),
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_chans, w, 3, 1, 2),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(w),
                nn.MaxPool2d(3, 3, 1),
                nn.Dropout(drop_rate),
            )
            for w in widths
        )
        self.pool = nn.AvgPool2d(2, 2)
        side = ((img_size + 2 + 2 - 3) // 3 + 1) // 2  # conv pad 2 -> max-pool 3/3 pad 1 -> avg 2
        self.num_classes, self.num_features = num_classes, sum(widths) * side * side
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([s(x) for s in self.streams], dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empty: STSTNet has no attention module (the interface of ``GLFNet.attention_maps``)."""
        return {}


@register_model("ststnet", description="STSTNet baseline (Liong et al. 2019), 28 px", input_size=28)
def ststnet(**kwargs) -> STSTNet:
    return STSTNet(**kwargs)
