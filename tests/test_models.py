import pytest
import torch

import glfnet
from glfnet.errors import ConfigError
from glfnet.models import list_models, model_defaults
from glfnet.models.glfnet import AdaptiveFeatureFusion, GLFNet, GlobalAttention, LocalBlock


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_presets():
    assert {"glfnet", "glfnet_s", "ststnet"} <= set(list_models())
    assert model_defaults("glfnet")["input_size"] == 224
    assert model_defaults("glfnet_s")["input_size"] == 28
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        glfnet.create_model("resnet")
    with pytest.raises(ConfigError, match="bad option"):
        glfnet.create_model("glfnet_s", no_such_option=1)


@pytest.mark.slow
def test_paper_scale_glfnet():
    m = glfnet.create_model("glfnet").eval()
    assert 24e6 < n_params(m) < 28e6  # reference: about 27 M at 224 input
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        f = m.forward_features(x)
        assert f.shape == (2, 512, 7, 7)
        assert m.forward_head(f).shape == (2, 3)
        assert m.forward_head(f, pre_logits=True).shape == (2, 512)


@pytest.mark.parametrize("name,size", [("glfnet_s", 28), ("glfnet_s", 56), ("ststnet", 28)])
def test_forward_shapes(name, size):
    kw = {"img_size": size} if name == "ststnet" else {}
    m = glfnet.create_model(name, num_classes=5, **kw)
    y = m(torch.randn(4, 3, size, size))
    assert y.shape == (4, 5)
    y.sum().backward()


def test_ststnet_size():
    assert 1600 < n_params(glfnet.create_model("ststnet")) < 1800  # Liong et al.: ~1.7 k


def test_plaincnn_baseline():
    """The plain CNN of the development study: about 35 k parameters, pools 28 -> 7 px, any
    width list builds, and its head reads the pooled features."""
    m = glfnet.create_model("plaincnn").eval()
    assert 34_000 < n_params(m) < 36_000
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        f = m.forward_features(x)
        assert f.shape == (2, 64, 7, 7)
        assert m.forward_head(f, pre_logits=True).shape == (2, 64)
        assert m(x).shape == (2, 3) and m.attention_maps(x) == {}
    small = glfnet.create_model("plaincnn", widths=[8, 8], pool_after=[0], num_classes=5)
    assert small(torch.randn(2, 3, 28, 28)).shape == (2, 5)
    with pytest.raises(ConfigError, match="at least one layer"):
        glfnet.create_model("plaincnn", widths=[])


def test_local_block_routes_each_quadrant_through_its_own_block():
    """Output quadrant k (top-left, top-right, bottom-left, bottom-right) is block k applied
    to input quadrant k: a test that fails if regions were routed to the wrong blocks or put
    back in the wrong place."""
    torch.manual_seed(0)
    blk = LocalBlock(4, 4, region_gate=False).eval()
    params = [{id(p) for p in r.parameters()} for r in blk.regions]
    assert all(not (params[i] & params[j]) for i in range(4) for j in range(i + 1, 4))
    for r in blk.regions:  # make the four blocks clearly different functions
        for p in r.parameters():
            p.data.normal_()
    blk.merge = torch.nn.Identity()
    x = torch.randn(2, 4, 10, 10)
    with torch.no_grad():
        y = blk(x)
        places = {
            0: (slice(0, 5), slice(0, 5)),
            1: (slice(0, 5), slice(5, 10)),
            2: (slice(5, 10), slice(0, 5)),
            3: (slice(5, 10), slice(5, 10)),
        }
        for k, (rows, cols) in places.items():
            expect = blk.regions[k](x[..., rows, cols])
            assert torch.allclose(y[..., rows, cols], expect, atol=1e-5), k
            other = blk.regions[(k + 1) % 4](x[..., rows, cols])
            assert not torch.allclose(expect, other, atol=1e-3)  # the blocks are distinguishable
        x2 = x.clone()  # no context across the cut: the bottom-right input cannot reach top-left
        x2[..., 5:, 5:] += 5
        assert torch.allclose(blk(x2)[..., :5, :5], y[..., :5, :5])
    with pytest.raises(ValueError, match="even size"):
        blk(torch.randn(1, 4, 7, 7))


def test_ablation_switches():
    x = torch.randn(2, 3, 28, 28)
    for kw in (
        {"global_branch": False},
        {"local_branch": False},
        {"fusion": "concat"},
        {"fusion": "sum"},
    ):
        m = glfnet.create_model("glfnet_s", **kw)
        assert m(x).shape == (2, 3), kw
    m = glfnet.create_model("glfnet_s", global_branch=False)
    assert m.global_block is None and m.fusion is None and m.local is not None
    m = glfnet.create_model("glfnet_s", local_branch=False)
    assert m.local is None and m.fusion is None
    assert isinstance(glfnet.create_model("glfnet_s").fusion, AdaptiveFeatureFusion)
    with pytest.raises(ConfigError):
        glfnet.create_model("glfnet_s", global_branch=False, local_branch=False)
    with pytest.raises(ConfigError):
        glfnet.create_model("glfnet_s", fusion="max")


def test_stem_skip_hands_the_pooled_stem_map_to_the_head():
    x = torch.randn(2, 3, 28, 28)
    m = glfnet.create_model("glfnet_t").eval()  # on by default since revision 3
    feats = m.forward_features(x)  # the fused 48-channel 5x5 map, then the stem's 16 channels
    assert feats.shape == (2, 48 + 16, 5, 5)
    stem = torch.nn.functional.adaptive_avg_pool2d(m.trunk(m.stem(x)), 5)
    torch.testing.assert_close(feats[:, 48:], stem)
    torch.testing.assert_close(feats[:, :48], m._fused(m.trunk(m.stem(x))))
    assert m.fc.in_features == (48 + 16) * 25 and m(x).shape == (2, 3)
    pooled = glfnet.create_model("glfnet_t", head="pool")
    assert pooled.fc.in_features == 48 + 16 and pooled(x).shape == (2, 3)
    assert glfnet.create_model("glfnet_t", stem_skip=False).fc.in_features == 48 * 25


def test_global_attention_starts_as_identity_and_keeps_maps():
    att = GlobalAttention(16).eval()
    att.reset_parameters_zero()
    x = torch.randn(2, 16, 7, 7)
    att.keep_maps = True
    assert torch.allclose(att(x), x + att.pos(x))
    assert att.last_map.shape == (2, 7, 7)
    assert torch.allclose(att.last_map.sum(dim=(1, 2)), torch.full((2,), 1.0), atol=1e-5)


def test_keep_maps_exposes_attention_gates_and_fusion_weights():
    m = glfnet.create_model("glfnet_s").eval()
    m.set_keep_maps(True)
    with torch.no_grad():
        m(torch.randn(3, 3, 28, 28))
    assert m.global_attn.last_map.shape == (3, 7, 7)
    assert m.local.last_gates.shape == (3, 4)
    assert m.fusion.last_weights.shape == (3, 2 * m.num_features)


def test_same_seed_same_init():
    torch.manual_seed(3)
    a = glfnet.create_model("glfnet_s")
    torch.manual_seed(3)
    b = glfnet.create_model("glfnet_s")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert isinstance(a, GLFNet)


def test_fast_dropout_is_dropout():
    """layers.Dropout: a Bernoulli(1 - p) keep-mask scaled by 1 / (1 - p) in training, the
    identity in eval mode, also under bfloat16 autocast."""
    from glfnet.models.layers import Dropout

    torch.manual_seed(0)
    x = torch.ones(200, 16, 10, 10)
    for p in (0.2, 0.5):
        y = Dropout(p).train()(x)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.01
        assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
        assert torch.equal(Dropout(p).eval()(x), x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = Dropout(0.2).train()(x.bfloat16())
    assert abs((y != 0).float().mean().item() - 0.8) < 0.01


@pytest.mark.parametrize("model,epochs", [("plaincnn", 40), ("ststnet", 200)])
def test_plain_recipe_config_builds(model, epochs):
    """configs/plain.yaml (the development study's plain recipe) stays a valid configuration."""
    from pathlib import Path

    from glfnet.config import build_config

    path = Path(__file__).resolve().parents[1] / "configs" / "plain.yaml"
    cfg = build_config(path, model=model, epochs=epochs)
    assert (cfg.ensemble, cfg.rotate, cfg.bn_refresh, cfg.input_norm) == (1, 0.0, False, "minmax")
