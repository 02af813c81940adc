"""STSTNet as one convolution: the same initial weights, function and saved state dicts as the
three-stream layout it replaced (a frozen copy of which is kept here)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from glfnet.models.ensemble import Ensemble
from glfnet.models.layers import init_weights
from glfnet.models.ststnet import STSTNet


class ThreeStreamSTSTNet(nn.Module):
    """The three-stream STSTNet as it was before the fused layout (frozen copy, do not edit)."""

    def __init__(self, num_classes=3, in_chans=3, img_size=28, widths=(3, 5, 8), drop_rate=0.5):
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
        side = ((img_size + 2 + 2 - 3) // 3 + 1) // 2
        self.num_classes, self.num_features = num_classes, sum(widths) * side * side
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def forward(self, x):
        return self.fc(self.pool(torch.cat([s(x) for s in self.streams], dim=1)).flatten(1))


def fused(old_state: dict, n_streams: int) -> dict:
    """The three-stream state dict written in the fused layout, by hand (what the load hook
    must produce)."""

    def cat(index, name):
        return torch.cat([old_state[f"streams.{i}.{index}.{name}"] for i in range(n_streams)])

    out = {f"conv.{n}": cat(0, n) for n in ("weight", "bias")}
    out.update({f"bn.{n}": cat(2, n) for n in ("weight", "bias", "running_mean", "running_var")})
    out["bn.num_batches_tracked"] = old_state["streams.0.2.num_batches_tracked"]
    out.update({k: v for k, v in old_state.items() if k.startswith("fc.")})
    return out


def scrambled(model: nn.Module, seed: int = 1) -> nn.Module:
    """``model`` with every parameter and BatchNorm statistic set to random values (running
    variances positive), so that equal outputs mean equal functions, not equal defaults."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
                if name.endswith("running_var"):
                    t.abs_().add_(0.1)
    return model


@pytest.mark.parametrize("kwargs", [{}, {"widths": (2, 6), "in_chans": 2, "num_classes": 5}])
def test_same_seed_same_initial_state_as_three_streams(kwargs):
    torch.manual_seed(7)
    old = ThreeStreamSTSTNet(**kwargs)
    rng_after_old = torch.get_rng_state()
    torch.manual_seed(7)
    new = STSTNet(**kwargs)
    expect = fused(old.state_dict(), len(old.streams))
    got = new.state_dict()
    assert list(got) == list(expect)
    for k in expect:
        assert torch.equal(got[k], expect[k]), k
    # the same numbers of random draws: what a seeded run draws next is the same too
    assert torch.equal(torch.get_rng_state(), rng_after_old)
    # not trivially equal: the streams' Kaiming scales differ with their widths
    w = [s[0].weight.std().item() for s in old.streams]
    assert len(set(w)) == len(w)


def test_old_layout_state_dict_loads_and_gives_the_same_eval_outputs():
    torch.manual_seed(0)
    old = scrambled(ThreeStreamSTSTNet()).eval()
    new = STSTNet().eval()
    new.load_state_dict(old.state_dict())  # strict: every key mapped, none left over
    x = torch.randn(8, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))
        torch.testing.assert_close(new(x.contiguous(memory_format=torch.channels_last)), old(x))


def test_same_function_in_training_mode_without_dropout():
    """Batch statistics, running-statistic updates and gradients match the three streams'."""
    torch.manual_seed(0)
    old = scrambled(ThreeStreamSTSTNet(drop_rate=0.0)).train()
    new = STSTNet(drop_rate=0.0).train()
    new.load_state_dict(old.state_dict())
    x = torch.randn(16, 3, 28, 28)
    y_old, y_new = old(x), new(x)
    torch.testing.assert_close(y_new, y_old)
    y_old.square().sum().backward()
    y_new.square().sum().backward()
    torch.testing.assert_close(new.state_dict(), fused(old.state_dict(), 3))  # running statistics
    grads_old = fused(dict(old.named_buffers()) | {k: p.grad for k, p in old.named_parameters()}, 3)
    for k, p in new.named_parameters():
        torch.testing.assert_close(p.grad, grads_old[k], msg=k)


def test_old_layout_loads_inside_an_ensemble_and_partial_old_dicts_are_refused():
    torch.manual_seed(0)
    old = Ensemble([scrambled(ThreeStreamSTSTNet(), seed=s) for s in (1, 2)]).eval()
    new = Ensemble([STSTNet(), STSTNet()]).eval()
    new.load_state_dict(old.state_dict())  # keys under members.{k}.streams.*
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))
    partial = {k: v for k, v in ThreeStreamSTSTNet().state_dict().items() if not k.startswith("streams.2.")}
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*conv\.weight"):
        STSTNet().load_state_dict(partial)


def test_fused_layout_still_has_the_papers_size_and_contract():
    assert 1600 < sum(p.numel() for p in STSTNet().parameters()) < 1800  # Liong et al.: ~1.7 k
    m = STSTNet(num_classes=4).eval()
    x = torch.randn(2, 3, 28, 28)
    f = m.forward_features(x)
    assert f.shape == (2, 16, 5, 5) and m.num_features == 16 * 5 * 5
    assert m.forward_head(f, pre_logits=True).shape == (2, 400)
    assert m.forward_head(f).shape == (2, 4)
    assert m.attention_maps(x) == {}
    assert STSTNet(widths=(4, 4)).conv.out_channels == 8
