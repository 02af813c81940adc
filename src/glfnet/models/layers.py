"""Building blocks shared by the models."""

from __future__ import annotations

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    """ResNet BasicBlock (He et al. 2016): two 3x3 conv-BN, ReLU, identity or 1x1 projection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (Srivastava et al., JMLR 2014) with its keep-mask drawn as ``uniform >=
    p``: the same Bernoulli(1 - p) mask and 1 / (1 - p) scaling, drawn about 3x faster on a
    CPU than PyTorch's ``bernoulli_`` kernel (0.65 against 1.86 ms for a 64x16x10x10 map, one
    thread), which made up a tenth of STSTNet's training step. Uniforms are drawn in float32
    also under bfloat16 autocast, so ``p`` is exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p)) if self.p < 1 else x * 0


def conv_bn_act(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def init_weights(module: nn.Module) -> None:
    """Kaiming (fan_out) for convs, trunc-normal(0.02) for linears, BN at (1, 0): the authors'
    group's convention (reference section 1)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
