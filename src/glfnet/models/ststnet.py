"""STSTNet baseline: Liong, See, Wong, Phan, "Shallow Triple Stream Three-dimensional CNN
(STSTNet) for Micro-expression Recognition", FG 2019 (MEGC2019).

Three parallel 3x3 convolutions with 3, 5 and 8 channels (padding 2), each ReLU -> BN ->
3x3 max-pool (stride 3) -> dropout 0.5; concatenated (16 channels); 2x2 average pool; a
linear layer to the classes. About 1.7 k parameters at 28x28.

The three streams read the same input with the same kernel size, stride and padding, and all
that follows the convolution acts on each channel alone, so here they are computed as **one**
3 -> 16 convolution, ReLU, BatchNorm(16), max-pool and dropout: the same function, with a
training step about 1.5 times as fast on a CPU (one thread, batch 64), where kernels for 3, 5
or 8 channels are slow. The initial weights are the three streams' (drawn as the three-stream
layout draws them, so a seed gives the same numbers), and state dicts of that layout
(``streams.{i}.0`` convolution, ``streams.{i}.2`` BatchNorm) still load. Dropout draws one
mask for the 16 channels where the streams drew three, so with dropout a seeded training run
takes a different, equally valid random path from the three-stream code's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from glfnet.models.layers import Dropout, init_weights
from glfnet.models.registry import register_model

#: per-stream parameter and buffer names of the three-stream layout, by module index
_STREAM_KEYS = {"0": ("weight", "bias"), "2": ("weight", "bias", "running_mean", "running_var")}


class STSTNet(nn.Module):
    """STSTNet: three shallow convolution streams (fused into one convolution of their summed
    width), concatenated, average-pooled, linear."""

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        img_size: int = 28,
        widths: Sequence[int] = (3, 5, 8),
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        width = sum(self.widths)
        # built without drawing random numbers: its weights are the streams' (below)
        self.conv = nn.utils.skip_init(nn.Conv2d, in_chans, width, 3, 1, 2)
        self.act = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 3, 1)
        self.drop = Dropout(drop_rate)
        self.pool = nn.AvgPool2d(2, 2)
        side = ((img_size + 2 + 2 - 3) // 3 + 1) // 2  # conv pad 2 -> max-pool 3/3 pad 1 -> avg 2
        self.num_classes, self.num_features = num_classes, width * side * side
        streams = [nn.Conv2d(in_chans, w, 3, 1, 2) for w in self.widths]
        self.fc = nn.Linear(self.num_features, num_classes)
        # the three-stream layout's random draws, in its order: each stream's convolution is
        # built, then the linear layer, then init_weights re-draws the convolutions (Kaiming
        # fan-out: each stream's own width) and the linear layer
        init_weights(nn.ModuleList([*streams, self.fc]))
        with torch.no_grad():
            for name in ("weight", "bias"):
                getattr(self.conv, name).copy_(torch.cat([getattr(s, name) for s in streams]))
        self.register_load_state_dict_pre_hook(_fuse_stream_keys)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.drop(self.maxpool(self.bn(self.act(self.conv(x))))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empty: STSTNet has no attention module (the interface of ``GLFNet.attention_maps``)."""
        return {}


def _fuse_stream_keys(module: STSTNet, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: a three-stream state dict (``streams.{i}.0.*`` convolution,
    ``streams.{i}.2.*`` BatchNorm) becomes the fused layout's ``conv.*`` and ``bn.*``, the
    streams' tensors concatenated in stream order. Other state dicts pass unchanged."""
    old = f"{prefix}streams."
    if not any(k.startswith(old) for k in state_dict):
        return
    n = len(module.widths)
    for index, new in (("0", "conv"), ("2", "bn")):
        for name in _STREAM_KEYS[index]:
            parts = [state_dict.pop(f"{old}{i}.{index}.{name}", None) for i in range(n)]
            if all(p is not None for p in parts):
                state_dict[f"{prefix}{new}.{name}"] = torch.cat(parts)
    counts = [state_dict.pop(f"{old}{i}.2.num_batches_tracked", None) for i in range(n)]
    if counts[0] is not None:  # the streams' BatchNorms saw the same batches
        state_dict[f"{prefix}bn.num_batches_tracked"] = counts[0]


@register_model("ststnet", description="STSTNet baseline (Liong et al. 2019), 28 px", input_size=28)
def ststnet(**kwargs) -> STSTNet:
    return STSTNet(**kwargs)
