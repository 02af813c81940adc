"""The accuracy levers: the glfnet_t preset, signed inputs, seed ensembles, flip TTA, mixup.
Each changes what it says and nothing else (their leak tests are in test_leakage.py)."""

import numpy as np
import pytest
import torch

import glfnet
from glfnet.config import Config, build_config
from glfnet.data import transforms as T
from glfnet.errors import ConfigError
from glfnet.models.ensemble import Ensemble
from glfnet.train.trainer import InputPipeline, predict_proba, train_fold

FAST = Config(epochs=2, batch_size=16)


def test_default_preset_is_a_glfnet_with_a_position_keeping_head():
    assert Config.model == "glfnet_t" and Config.input_norm == "signed"
    m = glfnet.create_model("glfnet_t").eval()
    assert m.global_attn is not None and m.local is not None and m.fusion is not None
    with torch.no_grad():
        f = m.forward_features(torch.randn(2, 3, 28, 28))
    assert f.shape == (2, 32, 5, 5)  # 28 px -> 10x10 after the shallow stem -> 5x5 fused map
    assert m.forward_head(f, pre_logits=True).shape == (2, 32 * 25)
    # the head reads positions: moving the same features to another place changes the logits
    g = torch.zeros_like(f)
    g[..., 0, 0] = 1.0
    with torch.no_grad():
        assert not torch.allclose(m.forward_head(g), m.forward_head(g.roll(4, dims=-1)))
    assert 90_000 < sum(p.numel() for p in m.parameters()) < 110_000


def test_unit_range_keeps_zero_motion_at_zero():
    x = torch.randn(4, 3, 8, 8) * torch.tensor([3.0, 0.2, 7.0])[:, None, None]
    x[:, :, 0, 0] = 0.0
    y = T.unit_range(x)
    assert torch.all(y[:, :, 0, 0] == 0)
    rng = y.flatten(2).amax(2) - y.flatten(2).amin(2)
    assert torch.allclose(rng, torch.ones_like(rng))
    # a release image (each channel min-max scaled to [0, 1]) keeps its values, shifted only
    rel = T.minmax(torch.randn(2, 3, 8, 8))
    c = T.to_centered(rel, "minmax")
    assert torch.allclose(T.unit_range(c), c, atol=1e-6)


def test_ensemble_averages_probabilities():
    torch.manual_seed(0)
    members = [glfnet.create_model("ststnet").eval() for _ in range(3)]
    ens = Ensemble(members).eval()
    x = torch.randn(5, 3, 28, 28)
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
        assert torch.allclose(torch.softmax(ens(x), 1), mean, atol=1e-6)


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 3, 28, 28)).astype(np.float32)
    y = np.arange(n) % 3
    X[np.arange(n), y, 10:14, 10:14] += 1.0  # a learnable cue
    X = T.minmax(torch.tensor(X)).numpy()
    return X, y, np.array([f"s{i % 6}" for i in range(n)])


def test_ensemble_member_zero_is_the_single_model():
    X, y, subj = _data()
    single = train_fold(X, y, subj, FAST.replace(model="ststnet"), 3, "minmax", seed=5)
    ens = train_fold(X, y, subj, FAST.replace(model="ststnet", ensemble=2), 3, "minmax", seed=5)
    assert isinstance(ens.model, Ensemble) and len(ens.model.members) == 2
    a, b = single.model.state_dict(), ens.model.members[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = ens.model.members[1].state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)  # member 1 differs (own seed)
    assert [h["member"] for h in ens.history] == [0] * 2 + [1] * 2


def test_flip_tta_averages_the_image_and_its_mirror():
    X, y, subj = _data()
    trained = train_fold(X, y, subj, FAST.replace(model="ststnet"), 3, "minmax", seed=1)
    pipe = trained.pipeline
    Xt = torch.tensor(X[:6])
    plain = predict_proba(trained.model, pipe, Xt)
    with torch.no_grad():  # the mirror in the signed domain: flipped image, u negated
        mirrored = torch.softmax(trained.model(pipe(T.hflip(pipe.prepare(Xt)))), 1).numpy()
    assert not np.allclose(plain, mirrored, atol=1e-3)
    pipe.tta = True
    both = predict_proba(trained.model, pipe, Xt)
    np.testing.assert_allclose(both, (plain + mirrored) / 2, atol=1e-5)
    assert InputPipeline.from_state(pipe.state()).tta


def test_mixup_changes_training_and_stays_deterministic():
    X, y, subj = _data()
    cfg = FAST.replace(model="ststnet")
    plain = train_fold(X, y, subj, cfg, 3, "minmax", seed=2)
    mix = [train_fold(X, y, subj, cfg.replace(mixup=0.4), 3, "minmax", seed=2) for _ in range(2)]
    a, b, c = (t.model.state_dict() for t in (plain, *mix))
    assert all(torch.equal(b[k], c[k]) for k in b)
    assert not all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", [{"ensemble": 0}, {"mixup": -1.0}, {"input_norm": "zscore"}])
def test_lever_options_are_validated(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        build_config(**bad)


def test_branch_dropout_acts_in_training_only():
    torch.manual_seed(0)
    a = glfnet.create_model("glfnet_t")
    torch.manual_seed(0)
    b = glfnet.create_model("glfnet_t", branch_drop=0.3)
    b.load_state_dict(a.state_dict())  # no new parameters
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(a.eval()(x), b.eval()(x))
        a.train(), b.train()
        assert not torch.allclose(a.forward_features(x), b.forward_features(x))
