"""Fold-batched training (glfnet.train.batched) changes nothing but speed: K networks trained
as one batched network equal the same K trained one at a time, and no network can see
another's data. Dropout is switched off where exact agreement is asserted (its draws are
the one documented difference)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from glfnet import config
from glfnet.config import Config
from glfnet.errors import ConfigError
from glfnet.eval import runner
from glfnet.eval.splits import loso_folds
from glfnet.train.batched import MaskedBatchNorm2d, StackedAdamW, _template
from glfnet.train.fold import build_model
from glfnet.train.trainer import FoldInput, train_fold, train_folds

NO_DROPOUT = {"ststnet": {"drop_rate": 0.0}, "glfnet_t": {"drop_rate": 0.0, "stem_drop": 0.0}}


def _folds(sizes=(70, 75, 40), seed=0) -> list[FoldInput]:
    """Folds of different sizes: with batch size 16 they take 5, 5 and 3 steps per epoch, so
    batches are padded and one network sits out the last steps of every epoch."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        X = rng.random((n, 3, 28, 28)).astype(np.float32)
        y = rng.integers(0, 3, n)
        subjects = np.array([f"s{j % 7}" for j in range(n)])
        out.append(FoldInput(X, y, subjects, 3, "minmax", 100 + i))
    return out


def _params_close(a, b, atol):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa) <= atol


@pytest.mark.slow
@pytest.mark.parametrize("bn_refresh", [False, True])
def test_batched_networks_equal_networks_trained_one_at_a_time(bn_refresh):
    """Padding, masked BatchNorm, per-network schedules and AdamW states, augmentation,
    early stopping and the BatchNorm refresh: every network of the batch ends where it ends
    alone."""
    folds = _folds()
    cfg = Config(
        model="ststnet",
        model_args=NO_DROPOUT["ststnet"],
        epochs=3,
        batch_size=16,
        val_subjects=0.3,
        bn_refresh=bn_refresh,
    )
    alone = train_folds(folds, cfg, batch=1)
    together = train_folds(folds, cfg, batch=3)
    for a, b, f in zip(alone, together, folds):
        assert _params_close(a, b, atol=1e-4)
        np.testing.assert_allclose(a.predict_proba(f.X), b.predict_proba(f.X), atol=1e-4)
        assert a.selected_epoch == b.selected_epoch and a.val_subjects == b.val_subjects
        for ha, hb in zip(a.history, b.history):
            assert ha["lr"] == pytest.approx(hb["lr"]) and ha["loss"] == pytest.approx(hb["loss"], abs=1e-4)
            assert ha["val_uf1"] == pytest.approx(hb["val_uf1"])
        assert a.pipeline.state() == b.pipeline.state()


def test_batched_glfnet_gradients_equal_one_networks():
    """GLFNet (attention, residual blocks, AFF) through the batched forward: each network's
    gradient equals its gradient alone. (Over epochs AdamW turns float-level differences in
    near-zero gradients into full-size steps, so weights are compared step by step here and
    predictions end to end below.)"""
    cfg = Config(model="glfnet_t", model_args=NO_DROPOUT["glfnet_t"])
    torch.manual_seed(0)
    models = [build_model(cfg, 3).train() for _ in range(2)]
    x, y = torch.randn(2, 16, 3, 28, 28), torch.randint(0, 3, (2, 16))
    template, bns = _template(models[0])
    params, buffers = stack_module_state(models)  # copies, taken before the networks train
    ref = []
    for m, xi, yi in zip(models, x, y):
        F.cross_entropy(m(xi), yi).backward()
        ref.append({k: p.grad.clone() for k, p in m.named_parameters()})

    def one(p, b, xi, yi, mask, active):
        for bn in bns:
            bn.mask, bn.active = mask, active
        return F.cross_entropy(functional_call(template, (p, b), (xi,)), yi)

    vmap(one, randomness="different")(
        params, buffers, x, y, torch.ones(2, 16), torch.ones(2, dtype=bool)
    ).sum().backward()
    for i in range(2):  # float32 noise (a ReLU input near 0 may flip) stays far below 1e-2
        for k, g in ref[i].items():
            assert float((params[k].grad[i] - g).norm()) <= 1e-2 * float(g.norm()) + 1e-7, k
        ours = torch.cat([params[k].grad[i].flatten() for k in ref[i]])
        theirs = torch.cat([g.flatten() for g in ref[i].values()])
        assert float((ours - theirs).norm()) <= 1e-3 * float(theirs.norm())
        for k, b in models[i].named_buffers():  # running statistics updated as nn.BatchNorm2d does
            torch.testing.assert_close(buffers[k][i], b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_batched_glfnet_predicts_what_one_at_a_time_does():
    folds = _folds(sizes=(60, 48))
    cfg = Config(model="glfnet_t", model_args=NO_DROPOUT["glfnet_t"], epochs=2, batch_size=16)
    for a, b, f in zip(train_folds(folds, cfg, batch=1), train_folds(folds, cfg, batch=2), folds):
        np.testing.assert_allclose(a.predict_proba(f.X), b.predict_proba(f.X), atol=0.02)
        assert a.history[0]["loss"] == pytest.approx(b.history[0]["loss"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ststnet", "glfnet_t"])
def test_one_network_cannot_move_another(model):
    """Batching is not a path between folds: changing one fold's inputs and labels leaves the
    other folds' trained weights and histories bit-identical (dropout on: its draws depend on
    the seeds and batch shapes only), while the changed fold's own weights move."""
    folds = _folds()
    cfg = Config(model=model, epochs=2, batch_size=16)
    rng = np.random.default_rng(9)
    changed = dataclasses.replace(
        folds[1], X=rng.random(folds[1].X.shape).astype(np.float32), y=rng.integers(0, 3, len(folds[1].y))
    )
    a = train_folds(folds, cfg, batch=3)
    b = train_folds([folds[0], changed, folds[2]], cfg, batch=3)
    for i in (0, 2):
        sa, sb = a[i].model.state_dict(), b[i].model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert [{**h, "seconds": 0} for h in a[i].history] == [{**h, "seconds": 0} for h in b[i].history]
    sa, sb = a[1].model.state_dict(), b[1].model.state_dict()
    assert not all(torch.equal(sa[k], sb[k]) for k in sa)


def test_stacked_adamw_is_adamw_per_slice():
    torch.manual_seed(0)
    K, shape = 3, (4, 5)
    stacked = torch.randn(K, *shape, requires_grad=True)
    singles = [stacked[i].detach().clone().requires_grad_(True) for i in range(K)]
    opts = [torch.optim.AdamW([p], lr=1.0, weight_decay=0.05) for p in singles]
    ours = StackedAdamW([stacked], weight_decay=0.05)
    lrs = torch.tensor([1e-3, 2e-3, 5e-4], dtype=torch.float64)
    for step in range(6):
        grads = torch.randn(K, *shape)
        active = torch.tensor([True, step % 2 == 0, step < 4])  # slices sit out some steps
        stacked.grad = grads.clone()
        ours.step(active, lrs)
        for i in range(K):
            if active[i]:
                opts[i].param_groups[0]["lr"] = float(lrs[i])
                singles[i].grad = grads[i].clone()
                opts[i].step()
    for i in range(K):
        torch.testing.assert_close(stacked[i].detach(), singles[i].detach(), rtol=1e-5, atol=1e-7)


def test_masked_batchnorm_counts_only_real_rows():
    torch.manual_seed(0)
    x = torch.randn(10, 4, 5, 5)
    ref, ours = torch.nn.BatchNorm2d(4).train(), MaskedBatchNorm2d(4).train()
    ours.mask, ours.active = torch.tensor([1.0] * 7 + [0.0] * 3), torch.tensor(True)
    padded = x.clone()
    padded[7:] = 1e3  # padding must not matter
    torch.testing.assert_close(ours(padded)[:7], ref(x[:7]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    ours.active = torch.tensor(False)  # a network without a batch in this step: no update
    before = ours.running_mean.clone()
    ours(padded)
    assert torch.equal(ours.running_mean, before)


@pytest.mark.slow
def test_loso_with_fold_batch_gives_the_results_of_one_fold_at_a_time(tiny_set, tmp_path, monkeypatch):
    """The run level: `fold_batch` 4 (units of four folds, one batched network each) and 1
    give the same predictions (dropout off; with it, the same within seed noise)."""
    from glfnet.train import trainer

    cfg = Config(
        model="ststnet", model_args=NO_DROPOUT["ststnet"], epochs=2, batch_size=16, ensemble=1, report=False
    )
    one = runner.run_protocol(tiny_set, cfg.replace(fold_batch=1), tmp_path / "one")
    sizes, real = [], trainer.BatchedStepper

    def spy(jobs, *args, **kwargs):  # the batched engine really trains the units
        sizes.append(len(jobs))
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(trainer, "BatchedStepper", spy)
    four = runner.run_protocol(tiny_set, cfg.replace(fold_batch=4, jobs=1), tmp_path / "four")
    n = len(loso_folds(tiny_set.samples))
    assert sizes == [4] * (n // 4) + ([n % 4] if n % 4 > 1 else [])
    a, b = (pd.read_csv(tmp_path / d / "predictions.csv") for d in ("one", "four"))
    probs = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(a[probs].to_numpy(), b[probs].to_numpy(), atol=1e-3)
    assert one.honest["full"].uf1 == pytest.approx(four.honest["full"].uf1)
    assert len(loso_folds(tiny_set.samples)) > 4  # more than one unit, the last one smaller


@pytest.mark.slow
def test_ensemble_members_train_batched_as_in_glfnet_train():
    """`glfnet train --ensemble 2 --fold-batch 2`: the members of one fold trained as one
    batched network are the members trained one at a time."""
    f = _folds(sizes=(50,))[0]
    cfg = Config(model="ststnet", model_args=NO_DROPOUT["ststnet"], epochs=2, batch_size=16, ensemble=2)
    one = train_fold(f.X, f.y, f.subjects, cfg.replace(fold_batch=1), 3, "minmax", seed=5)
    two = train_fold(f.X, f.y, f.subjects, cfg.replace(fold_batch=2), 3, "minmax", seed=5)
    assert _params_close(one, two, atol=1e-4)
    assert [h["member"] for h in two.history] == [0, 0, 1, 1]


@pytest.mark.slow
def test_amp_with_fold_batch_is_refused_where_autocast_misses_batched_convolutions(tiny_set, tmp_path):
    """In PyTorch 2.13 on the CPU, bfloat16 autocast does not reach convolutions run under
    vmap (config.autocast_reaches_batched_convs probes it), and a batched GLFNet failed there
    on bfloat16 attention output meeting a float32 convolution. So `amp` with `fold_batch` > 1
    is refused before anything is written, naming both options; where the probe finds
    autocast working, the same run trains."""
    cfg = Config(model="glfnet_t", epochs=1, ensemble=1, batch_size=16, amp=True, fold_batch=2, report=False)
    out = tmp_path / "run"
    if config.autocast_reaches_batched_convs("cpu"):
        runner.run_protocol(tiny_set, cfg, out)
        assert (out / "predictions.csv").exists()
    else:
        with pytest.raises(ConfigError, match=r"`amp` cannot be combined with `fold_batch` 2 on cpu"):
            runner.run_protocol(tiny_set, cfg, out)
        assert not out.exists()
    assert runner.run_protocol(tiny_set, cfg.replace(fold_batch=1, jobs=1), tmp_path / "one").n_folds > 0


def test_auto_fold_batch_trains_one_network_at_a_time_where_amp_needs_it(monkeypatch):
    """`fold_batch` 0 (auto) is 8 on CUDA, and 1 with `amp` where autocast misses batched
    convolutions (so `--amp` alone never meets the refusal above); 1 on the CPU."""
    monkeypatch.setattr(config, "autocast_reaches_batched_convs", lambda device: False)
    assert Config(device="cuda").fold_batch_size() == 8
    assert Config(device="cuda", amp=True).fold_batch_size() == 1
    assert Config(device="cuda", amp=True, fold_batch=4).fold_batch_size() == 4  # (validate refuses it)
    monkeypatch.setattr(config, "autocast_reaches_batched_convs", lambda device: True)
    assert Config(device="cuda", amp=True).fold_batch_size() == 8
    assert Config(amp=True).fold_batch_size() == 1
