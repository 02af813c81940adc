"""GLFNet: global-local feature fusion network for micro-expression recognition.

Zhang, Yao, Yang, Yin, "GLFNet: Attention Mechanism-Based Global-Local Feature Fusion Network
for Micro-Expression Recognition", Entropy 2025, 27(10):1023, doi:10.3390/e27101023.

Only the abstract is public. It names three modules, each implemented here:

* :class:`GlobalAttention` -- the "Global Attention" module, over the whole feature map;
* :class:`LocalBlock` -- the "Local Block": four non-overlapping regions of the feature map,
  each with its own weights, emphasising salient regions and suppressing the rest;
* :class:`AdaptiveFeatureFusion` -- "AFF": attention that reweights channels to join the
  global and local features.

Input: one (u, v, strain) optical-flow image between onset and apex. Everything the paper
leaves open (trunk, widths, attention form, region gating, head) follows the authors' group's
published sibling networks where known and is justified in docs/model.md.

    x -> stem -> trunk (BasicBlocks) -+-> global: BasicBlock(s2) -> GlobalAttention -+
                                      +-> local:  4 quadrant blocks -> merge(s2) ----+-> AFF
    -> global average pool -> dropout -> linear
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F

from glfnet.models.layers import BasicBlock, Dropout, conv_bn_act, init_weights
from glfnet.models.registry import register_model

# GLFNet's string options: each allowed value is spelled here once; the constructor validates
# against these and the command line's help is derived from CHOICES.
Fusion = Literal["aff", "concat", "sum"]
Head = Literal["pool", "flat"]
Stem = Literal["resnet", "shallow"]

CHOICES: dict[str, tuple[str, ...]] = {
    "fusion": get_args(Fusion),
    "head": get_args(Head),
    "stem": get_args(Stem),
}


def check_choices(**values: str) -> None:
    """ValueError naming the allowed values for any of ``values`` not in :data:`CHOICES`."""
    for name, value in values.items():
        allowed = CHOICES[name]
        if value not in allowed:
            options = ", ".join(allowed[:-1]) + " or " + allowed[-1]
            raise ValueError(f"{name} must be {options}, not {value!r}")


class GlobalAttention(nn.Module):
    """Global Attention (paper's "LA" module): self-attention over all positions of the map.

    Non-local / embedded-Gaussian attention (Wang et al., CVPR 2018) with a depthwise 3x3
    position encoding and a residual branch whose BatchNorm starts at zero, so the module
    begins as the identity and learns how much global context to add. ``last_map`` (when
    ``keep_maps``) holds the attention each position receives, (B, H, W), for visualisation.
    """

    def __init__(self, dim: int, reduction: int = 2, heads: int = 1) -> None:
        super().__init__()
        inner = max(dim // reduction, 8)
        if inner % heads:
            raise ValueError(f"attention width {inner} is not divisible by heads={heads}")
        self.heads, self.inner = heads, inner
        self.pos = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.qkv = nn.Conv2d(dim, 3 * inner, 1, bias=False)
        self.proj = nn.Conv2d(inner, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.keep_maps = False
        self.last_map: torch.Tensor | None = None

    def reset_parameters_zero(self) -> None:
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(x)
        b, _, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, self.inner // self.heads, h * w).unbind(1)
        attn = torch.softmax(q.transpose(-2, -1) @ k * (q.shape[2] ** -0.5), dim=-1)  # (b, h, N, N)
        out = (v @ attn.transpose(-2, -1)).reshape(b, self.inner, h, w)
        if self.keep_maps:
            self.last_map = attn.mean(dim=(1, 2)).reshape(b, h, w).detach()
        return x + self.bn(self.proj(out))


class LocalBlock(nn.Module):
    """Local Block (paper's "GB" module): four non-overlapping regions, own weights each.

    The map is cut into quadrants (top-left, top-right, bottom-left, bottom-right: roughly the
    two eye and two mouth regions of an aligned face); each passes through its own BasicBlock
    (weights not shared). A per-region gate (sigmoid of a linear read of the region's pooled
    features) emphasises salient regions and suppresses the rest; ``last_gates`` (B, 4) keeps
    it when ``keep_maps``. The regions are put back in place and a shared BasicBlock (stride
    2) merges them.
    """

    def __init__(self, in_ch: int, out_ch: int, region_gate: bool = True):
        super().__init__()
        self.regions = nn.ModuleList(BasicBlock(in_ch, out_ch) for _ in range(4))
        self.gates = nn.ModuleList(nn.Linear(out_ch, 1) for _ in range(4)) if region_gate else None
        self.merge = BasicBlock(out_ch, out_ch, stride=2)
        self.keep_maps = False
        self.last_gates: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(
                f"the Local Block splits the feature map into four equal regions and "
                f"needs an even size, got {h}x{w}; change the input size"
            )
        h2, w2 = h // 2, w // 2
        parts = [x[..., :h2, :w2], x[..., :h2, w2:], x[..., h2:, :w2], x[..., h2:, w2:]]
        outs = [block(p) for block, p in zip(self.regions, parts)]
        if self.gates is not None:
            g = torch.cat([torch.sigmoid(gate(o.mean(dim=(2, 3)))) for gate, o in zip(self.gates, outs)], 1)
            outs = [o * g[:, i, None, None, None] for i, o in enumerate(outs)]
            if self.keep_maps:
                self.last_gates = g.detach()
        top = torch.cat(outs[:2], dim=3)
        bottom = torch.cat(outs[2:], dim=3)
        return self.merge(torch.cat([top, bottom], dim=2))


class AdaptiveFeatureFusion(nn.Module):
    """Adaptive Feature Fusion (paper's "AFF"): attention that reweights channels.

    Following the same first author's AAFF: concatenate global and local maps, derive channel
    weights from average- and max-pooled descriptors through a shared 1x1-conv MLP, each
    through a sigmoid; output ``w_avg * X + w_max * X``, then a 1x1 conv (+BN, ReLU) back to
    ``out_ch``. ``last_weights`` (B, 2C) keeps ``(w_avg + w_max) / 2`` when ``keep_maps``:
    the first C channels are the global branch's, the last C the local branch's.
    """

    def __init__(self, in_ch: int, out_ch: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(in_ch // reduction, 8)
        self.mlp = nn.Sequential(
            nn.Conv2d(in_ch, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, in_ch, 1, bias=False),
        )
        self.out = conv_bn_act(in_ch, out_ch, kernel=1)
        self.keep_maps = False
        self.last_weights: torch.Tensor | None = None

    def forward(self, g: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        x = torch.cat([g, l], dim=1)
        w_avg = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)))
        w_max = torch.sigmoid(self.mlp(F.adaptive_max_pool2d(x, 1)))
        if self.keep_maps:
            self.last_weights = ((w_avg + w_max) / 2).flatten(1).detach()
        return self.out(w_avg * x + w_max * x)


class ConcatFusion(nn.Module):
    """Ablation: plain concatenation and a 1x1 conv, no channel attention."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.out = conv_bn_act(in_ch, out_ch, kernel=1)

    def forward(self, g: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([g, l], dim=1))


class SumFusion(nn.Module):
    """Ablation: element-wise sum of the two branches."""

    def forward(self, g: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        return g + l


def _make_stem(stem: Stem, in_chans: int, width: int, stride: int, pool: bool, drop: float) -> nn.Sequential:
    layers: list[nn.Module]
    if stem == "resnet":  # 3x3 conv (stride ``stride``) + BN + ReLU [+ 3x3/2 max-pool]
        layers = [conv_bn_act(in_chans, width, 3, stride)]
        if pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
    else:  # STSTNet's shallow stem: full-resolution 3x3 conv, ReLU, BN, 3x3/3 max-pool
        layers = [
            nn.Conv2d(in_chans, width, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(width),
            nn.MaxPool2d(3, 3, 1),
        ]
    if drop:
        layers.append(Dropout(drop))
    return nn.Sequential(*layers)


def _make_trunk(in_ch: int, widths: Sequence[int], strides: Sequence[int]) -> tuple[nn.Sequential, int]:
    """BasicBlocks of the given widths and strides; returns them and the output width."""
    blocks, prev = [], in_ch
    for w, s in zip(widths, strides):
        blocks.append(BasicBlock(prev, w, s))
        prev = w
    return nn.Sequential(*blocks), prev


def _make_fusion(kind: Fusion, width: int, reduction: int) -> nn.Module:
    if kind == "aff":
        return AdaptiveFeatureFusion(2 * width, width, reduction)
    return ConcatFusion(2 * width, width) if kind == "concat" else SumFusion()


# the modules that keep what they attend to when ``keep_maps`` is set
_MAP_KEEPERS = (GlobalAttention, LocalBlock, AdaptiveFeatureFusion)


class GLFNet(nn.Module):
    """GLFNet. Switches for the paper's ablation: ``global_branch``, ``local_branch`` and
    ``fusion`` (:data:`Fusion`: AFF, concatenation or sum).

    ``head``: ``"pool"`` (global average pooling, the paper's reading) or ``"flat"`` (the fused
    map average-pooled to a ``head_grid`` x ``head_grid`` grid and flattened, so the classifier
    knows *where* on the aligned face the motion is, as STSTNet's linear layer does);
    ``img_size`` sets the flat head's width. ``stem``: ``"resnet"`` (conv + BN + ReLU [+
    max-pool]) or ``"shallow"`` (STSTNet's full-resolution conv and 3x3/3 max-pool);
    ``stem_drop`` dropout after it. ``stem_skip``: the trunk's map, average-pooled to the fused map's size,
    joins the fused map as extra channels before the head (a skip path from the shallow
    features to the classifier). :meth:`attention_maps` shows what the modules attend to."""

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        stem_width: int = 64,
        stem_stride: int = 2,
        stem_pool: bool = True,
        widths: Sequence[int] = (64, 128, 256),
        strides: Sequence[int] = (1, 2, 2),
        branch_width: int = 512,
        global_branch: bool = True,
        local_branch: bool = True,
        fusion: Fusion = "aff",
        region_gate: bool = True,
        drop_rate: float = 0.0,
        attn_reduction: int = 2,
        aff_reduction: int = 16,
        head: Head = "pool",
        head_grid: int = 4,
        img_size: int = 224,
        stem: Stem = "resnet",
        stem_drop: float = 0.0,
        stem_skip: bool = False,
    ) -> None:
        super().__init__()
        if not (global_branch or local_branch):
            raise ValueError("GLFNet needs at least one of global_branch and local_branch")
        check_choices(fusion=fusion, head=head, stem=stem)
        if len(widths) != len(strides):
            raise ValueError("widths and strides must have the same length")
        self.num_classes, self.num_features = num_classes, branch_width
        self.stem = _make_stem(stem, in_chans, stem_width, stem_stride, stem_pool, stem_drop)
        self.trunk, prev = _make_trunk(stem_width, widths, strides)
        self.global_block: nn.Module | None = None
        self.global_attn: GlobalAttention | None = None
        self.local: LocalBlock | None = None
        self.fusion: nn.Module | None = None
        if global_branch:
            self.global_block = BasicBlock(prev, branch_width, stride=2)
            self.global_attn = GlobalAttention(branch_width, attn_reduction)
        if local_branch:
            self.local = LocalBlock(prev, branch_width, region_gate)
        if global_branch and local_branch:
            self.fusion = _make_fusion(fusion, branch_width, aff_reduction)
        self.stem_skip = bool(stem_skip)
        if stem_skip:  # the trunk's map, pooled to the fused map's size, joins it as channels
            self.num_features = branch_width + prev
        self.head, self.head_grid = head, int(head_grid)
        if head == "flat":  # keep where the motion is: the fused map's grid, flattened
            self.head_grid = min(self.head_grid, self._feature_side(in_chans, img_size))
            self.num_features *= self.head_grid**2
        self.drop = Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)
        if self.global_attn is not None:
            self.global_attn.reset_parameters_zero()

    @torch.no_grad()
    def _feature_side(self, in_chans: int, img_size: int) -> int:
        """The side of the fused feature map for ``img_size`` inputs (one pass in eval mode)."""
        side = self.eval().forward_features(torch.zeros(1, in_chans, img_size, img_size)).shape[-1]
        self.train()
        return int(side)

    def set_keep_maps(self, keep: bool = True) -> None:
        """Keep attention maps, region gates and fusion weights of the last forward pass."""
        for m in self.modules():
            if isinstance(m, _MAP_KEEPERS):
                m.keep_maps = keep

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the modules attend to on the input batch ``x`` (as the network takes it:
        prepared and normalised), from one forward pass in the current mode:

        * ``global`` (B, h, w): the attention each position of the global branch's map
          receives;
        * ``regions`` (B, 4): the Local Block's region gates (top-left, top-right,
          bottom-left, bottom-right);
        * ``fusion`` (B, 2): the fusion's mean channel weight per branch (global, local).

        A variant without the module (or the gate) has no entry."""
        self.set_keep_maps(True)
        try:
            self(x)
            out = {}
            att, local, fusion = self.global_attn, self.local, self.fusion
            if att is not None and att.last_map is not None:
                out["global"] = att.last_map
            if local is not None and local.last_gates is not None:
                out["regions"] = local.last_gates
            if isinstance(fusion, AdaptiveFeatureFusion) and fusion.last_weights is not None:
                w = fusion.last_weights  # (B, 2C): the global branch's C channels first
                c = w.shape[1] // 2
                out["fusion"] = torch.stack([w[:, :c].mean(1), w[:, c:].mean(1)], 1)
            return out
        finally:
            self.set_keep_maps(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk(self.stem(x))
        out = self._fused(x)
        if self.stem_skip:
            out = torch.cat([out, F.adaptive_avg_pool2d(x, (out.shape[-2], out.shape[-1]))], dim=1)
        return out

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        """The two branches on the trunk's map, fused (the one branch left in an ablation)."""
        g = l = None
        if self.global_block is not None and self.global_attn is not None:
            g = self.global_attn(self.global_block(x))
        if self.local is not None:
            l = self.local(x)
        if g is not None and l is not None and self.fusion is not None:
            return self.fusion(g, l)
        out = g if l is None else l
        assert out is not None  # the constructor asks for at least one branch
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.head == "flat":
            if x.shape[-2:] != (self.head_grid, self.head_grid):  # (on the grid already: no pooling)
                x = F.adaptive_avg_pool2d(x, self.head_grid)
            x = self.drop(x.flatten(1))
        else:
            x = self.drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# Presets. `glfnet`: the paper-scale reading at 224x224 (about 26 M parameters).
# `glfnet_s`: the same topology for 28-64 px inputs and CPU training; the quadrant split
# happens on a 14x14 map at 28 px input (widths chosen on the SMIC development set, docs/model.md).
# `glfnet_t`: the default. GLFNet's three modules on STSTNet's shallow stem (one full-resolution
# conv, 3x3/3 max-pool: a 10x10 map at 28 px), 48-channel branches and a position-keeping head
# that also reads the stem's map (stem skip); chosen on the SMIC + CASME II development set
# (docs/study.md).


@register_model("glfnet", description="paper scale, 224 px", input_size=224)
def glfnet(**kwargs) -> GLFNet:
    return GLFNet(**kwargs)


@register_model("glfnet_s", description="GLFNet with a ResNet-style trunk, 28 px", input_size=28)
def glfnet_s(**kwargs) -> GLFNet:
    cfg: dict[str, Any] = dict(
        stem_width=16,
        stem_stride=1,
        stem_pool=True,
        widths=(24,),
        strides=(1,),
        branch_width=32,
        attn_reduction=2,
        aff_reduction=4,
        drop_rate=0.2,
    )
    cfg.update(kwargs)
    return GLFNet(**cfg)


@register_model(
    "glfnet_t",
    description="default: GLFNet on STSTNet's shallow stem, 28 px, CPU",
    input_size=28,
    revision=3,
    # what rebuilds the networks of earlier revisions: revision 1 (2026-11-30) had 32-channel
    # branches; revisions 1 and 2 (2026-12-01) had no stem skip
    earlier={1: {"branch_width": 32, "stem_skip": False}, 2: {"stem_skip": False}},
)
def glfnet_t(**kwargs) -> GLFNet:
    cfg: dict[str, Any] = dict(
        stem="shallow",
        stem_width=16,
        stem_drop=0.2,
        widths=(),
        strides=(),
        branch_width=48,
        attn_reduction=2,
        aff_reduction=4,
        head="flat",
        head_grid=5,
        drop_rate=0.5,
        stem_skip=True,
    )
    cfg.update(kwargs)
    return GLFNet(**cfg)
