"""The accuracy levers: the glfnet_t preset, signed inputs, seed ensembles, the learning-rate
schedule, the BatchNorm refresh. Each changes what it says and nothing else (their leak tests
are in test_leakage.py)."""

import numpy as np
import pytest
import torch

import glfnet
from glfnet.config import Config, build_config
from glfnet.data import transforms as T
from glfnet.data.pipeline import InputPipeline
from glfnet.errors import ConfigError
from glfnet.models.ensemble import Ensemble
from glfnet.models.inference import predict_proba
from glfnet.train.trainer import train_fold

FAST = Config(epochs=2, batch_size=16, ensemble=1)


@pytest.mark.slow
def test_default_preset_is_a_glfnet_with_a_position_keeping_head():
    assert Config.model == "glfnet_t" and Config.input_norm == "signed"
    m = glfnet.create_model("glfnet_t").eval()
    assert m.global_attn is not None and m.local is not None and m.fusion is not None
    with torch.no_grad():
        f = m.forward_features(torch.randn(2, 3, 28, 28))
    # 28 px -> 10x10 after the shallow stem -> 5x5 fused map (48 channels) + the stem's 16
    assert m.stem_skip and f.shape == (2, 48 + 16, 5, 5)
    assert m.forward_head(f, pre_logits=True).shape == (2, 64 * 25)
    # the head reads positions: moving the same features to another place changes the logits
    g = torch.zeros_like(f)
    g[..., 0, 0] = 1.0
    with torch.no_grad():
        assert not torch.allclose(m.forward_head(g), m.forward_head(g.roll(4, dims=-1)))
    assert 200_000 < sum(p.numel() for p in m.parameters()) < 210_000 + 16 * 25 * 3


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


@pytest.mark.slow
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


@pytest.mark.parametrize("bad", [{"ensemble": 0}, {"val_subjects": 1.0}, {"input_norm": "zscore"}])
def test_lever_options_are_validated(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        build_config(**bad)


def test_schedule_warms_up_then_falls_to_zero_on_a_cosine():
    from glfnet.train.loop import lr_schedule

    f = lr_schedule(Config(epochs=10, warmup_epochs=2), 4)  # 40 steps, 8 of warm-up
    assert [f(s) for s in range(8)] == [(s + 1) / 9 for s in range(8)]
    assert f(8) == pytest.approx(1.0) and f(24) == pytest.approx(0.5)
    assert 0 < f(39) < 0.01 and f(40) == 0.0
    assert all(f(s) > f(s + 1) for s in range(8, 40))


def test_refreshed_batchnorm_statistics_are_those_of_the_data():
    from glfnet.train.bnstats import refresh_batchnorm

    net = glfnet.create_model("ststnet")
    pipe = InputPipeline("minmax", "signed", 28)
    xs = pipe.prepare(torch.rand(48, 3, 28, 28))
    pipe.fit(xs)
    refresh_batchnorm(net, pipe, xs, 16)
    conv, relu, bn = net.conv, net.act, net.bn
    with torch.no_grad():
        act = relu(conv(pipe(xs)))
    assert bn.num_batches_tracked == 3 and bn.momentum == 0.1  # momentum restored
    assert torch.allclose(bn.running_mean, act.mean((0, 2, 3)), atol=1e-5)


@pytest.mark.slow
def test_batchnorm_refresh_changes_only_the_batchnorm_statistics():
    """``bn_refresh`` (a default) trains the same weights and replaces only the running
    statistics, by those of the un-augmented training inputs with dropout off (as at test
    time)."""
    from glfnet.train.bnstats import refresh_batchnorm

    X, y, s = _data()
    cfg = FAST.replace(model="glfnet_t")
    plain = train_fold(X, y, s, cfg.replace(bn_refresh=False), 3, "minmax", seed=0)
    fresh = train_fold(X, y, s, cfg.replace(bn_refresh=True), 3, "minmax", seed=0)
    a, b = plain.model.state_dict(), fresh.model.state_dict()
    stats = [k for k in a if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in a if k not in stats and not k.endswith("num_batches_tracked")]
    assert stats and all(torch.equal(a[k], b[k]) for k in weights)
    assert not any(torch.equal(a[k], b[k]) for k in stats)
    assert [h["loss"] for h in plain.history] == [h["loss"] for h in fresh.history]
    # the refreshed statistics are those of one pass over the training rows at test time
    refresh_batchnorm(plain.model, plain.pipeline, plain.pipeline.prepare(torch.tensor(X)), cfg.batch_size)
    again = plain.model.state_dict()
    assert all(torch.allclose(again[k], b[k], atol=1e-5) for k in stats)
    assert not plain.model.training  # the model's mode is left as it was


def test_batchnorm_refresh_keeps_dropout_off():
    from glfnet.train.bnstats import refresh_batchnorm

    torch.manual_seed(0)
    net = glfnet.create_model("glfnet_t")  # dropout after the stem, before BatchNorm layers
    pipe = InputPipeline("minmax", "signed", 28)
    xs = pipe.prepare(torch.rand(32, 3, 28, 28))
    pipe.fit(xs)
    refresh_batchnorm(net, pipe, xs, 16)
    first = {k: v.clone() for k, v in net.state_dict().items()}
    refresh_batchnorm(net, pipe, xs, 16)  # no random draws: the same statistics again
    assert all(torch.allclose(first[k], v, atol=1e-5) for k, v in net.state_dict().items())
    assert net.training


def test_per_database_class_weights_balance_each_database_on_its_own():
    from glfnet.train.losses import class_balanced_weights, row_weights

    y = np.array([0, 0, 0, 1, 2, 0, 1, 1, 2, 2])
    groups = np.array(["a"] * 5 + ["b"] * 5)
    w = row_weights(y, groups, 3, beta=0.999)
    wa = class_balanced_weights(np.bincount(y[:5], minlength=3), 0.999)
    wb = class_balanced_weights(np.bincount(y[5:], minlength=3), 0.999)
    np.testing.assert_allclose(w, np.concatenate([wa[y[:5]], wb[y[5:]]]), rtol=1e-6)
    assert w[0] < w[5]  # class 0 is common in a, rare in b
    np.testing.assert_array_equal(row_weights(y, groups, 3, beta=None), np.ones(10))


def test_per_database_class_weights_change_training_and_need_databases(tiny_set):
    X, y, subj = tiny_set.X, tiny_set.y, tiny_set.samples["subject"].to_numpy()
    db = tiny_set.samples["database"].to_numpy()
    plain = train_fold(X, y, subj, FAST, 3, tiny_set.encoding, 0, groups=db)
    per_db = train_fold(X, y, subj, FAST.replace(cb_per_database=True), 3, tiny_set.encoding, 0, groups=db)
    assert [h["loss"] for h in plain.history] != [h["loss"] for h in per_db.history]


def test_per_database_batchnorm_predicts_each_sample_with_its_databases_statistics(tiny_set):
    X, y, subj = tiny_set.X, tiny_set.y, tiny_set.samples["subject"].to_numpy()
    db = tiny_set.samples["database"].to_numpy()
    cfg = FAST.replace(bn_per_database=True)
    t = train_fold(X, y, subj, cfg, 3, tiny_set.encoding, 0, groups=db)
    assert set(t.bn_groups) == set(db)
    pooled = predict_proba(t.model, t.pipeline, X)
    per_db = t.predict_proba(X, groups=db)
    assert not np.allclose(pooled, per_db)
    np.testing.assert_array_equal(predict_proba(t.model, t.pipeline, X), pooled)  # pooled kept
    rows = np.flatnonzero(db == db[0])
    t.model.load_state_dict(t.bn_groups[str(db[0])], strict=False)
    np.testing.assert_allclose(predict_proba(t.model, t.pipeline, X[rows]), per_db[rows], rtol=1e-6)
    # the same training without it: identical weights, pooled statistics only
    plain = train_fold(X, y, subj, FAST, 3, tiny_set.encoding, 0, groups=db)
    assert not plain.bn_groups
    assert all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), t.model.parameters()))


def test_a_final_model_refuses_per_database_batchnorm(tmp_path):
    from glfnet.train.final import check_options

    with pytest.raises(ConfigError, match="bn_per_database"):
        check_options(Config(bn_per_database=True), tmp_path / "m")
