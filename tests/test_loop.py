"""The one training loop (glfnet.train.loop): what it hands a stepper, its schedule, and the
results it gives, pinned to those of commit 75f388f (two training loops then, one per
engine; the same seed gave bit-identical fold predictions and losses before and after)."""

import math

import numpy as np
import pytest
import torch

from glfnet.config import Config
from glfnet.train.fold import fold_data
from glfnet.train.loop import Job, lr_schedule, train_networks
from glfnet.train.trainer import FoldInput, determinism, one_thread_on_cpu, train_fold, train_folds


def _folds(sizes, seed=0) -> list[FoldInput]:
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        X = rng.random((n, 3, 28, 28)).astype(np.float32)
        y = rng.integers(0, 3, n)
        out.append(FoldInput(X, y, np.array([f"s{j % 7}" for j in range(n)]), 3, "minmax", 100 + i))
    return out


class Recorder:
    """A stepper that trains nothing: it records what the loop hands it and returns a loss of
    1 + its step number per network."""

    def __init__(self, k: int) -> None:
        self.calls: list[tuple[list, list[float]]] = []
        self.nets = [torch.nn.Linear(1, 1) for _ in range(k)]

    def step(self, rows, lrs):
        self.calls.append((rows, lrs))
        return torch.full((len(rows),), float(len(self.calls)))

    def network(self, i):
        return self.nets[i]


def test_the_loop_hands_each_network_its_rows_and_learning_rates():
    cfg = Config(epochs=2, batch_size=16, warmup_epochs=1, bn_refresh=False)
    device = torch.device("cpu")
    jobs = []
    for i, f in enumerate(_folds((40, 20))):
        data = fold_data(f.X, f.y, np.ones(len(f.y), bool), None, cfg, 3, "minmax", device)
        jobs.append(Job(i, data, f.seed, np.random.default_rng(f.seed), None, None))
    rec, rows_seen = Recorder(2), []
    out = train_networks(jobs, cfg, rec, on_epoch=rows_seen.append)
    assert len(rec.calls) == 2 * 3  # per epoch the larger fold's 3 steps; the other sits out one
    for epoch in range(2):
        calls = rec.calls[3 * epoch : 3 * epoch + 3]
        first = np.concatenate([rows[0] for rows, _ in calls])
        assert sorted(first) == list(range(40)) and [len(r[0]) for r, _ in calls] == [14, 13, 13]
        assert [r[1] is None for r, _ in calls] == [False, False, True]
        assert sorted(np.concatenate([r[1] for r, _ in calls[:2]])) == list(range(20))
    rng = np.random.default_rng(jobs[0].seed)  # the fold's own generator draws the order
    assert np.array_equal(np.concatenate([r[0] for r, _ in rec.calls[:3]]), rng.permutation(40))
    big, small = lr_schedule(cfg, 3), lr_schedule(cfg, 2)
    assert [lrs[0] for _, lrs in rec.calls] == [cfg.lr * big(s) for s in range(6)]
    assert [lrs[1] for _, lrs in rec.calls] == [cfg.lr * small(s) for s in (0, 1)] + [0.0] + [
        cfg.lr * small(s) for s in (2, 3)
    ] + [0.0]
    # the epoch's loss is each network's mean over its rows; the lr is the next step's
    assert out[0][1][0]["loss"] == pytest.approx((1 * 14 + 2 * 13 + 3 * 13) / 40)
    assert out[1][1][0]["loss"] == pytest.approx((1 * 10 + 2 * 10) / 20)
    assert out[0][1][1]["lr"] == cfg.lr * big(6) == 0.0 and out[1][1][0]["lr"] == cfg.lr * small(2)
    assert [r["epoch"] for r in rows_seen] == [1, 1, 2, 2] and out[0][2] is None


@pytest.mark.slow
def test_the_learning_rates_are_those_lambdalr_stepped_before():
    """The single-network path used torch's LambdaLR until 75f388f: the loop's rates are its
    rates, to the bit."""
    (f,) = _folds((50,))
    cfg = Config(model="ststnet", epochs=3, batch_size=16, ensemble=1)
    fold = train_fold(f.X, f.y, f.subjects, cfg, 3, "minmax", seed=1)
    n = math.ceil(50 / 16)
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, n))
    expected = []
    for _ in range(cfg.epochs):
        for _ in range(n):
            opt.step()
            sched.step()
        expected.append(opt.param_groups[0]["lr"])
    assert [h["lr"] for h in fold.history] == expected


# Commit 75f388f's results on these folds (STSTNet 3 epochs, glfnet_t 1 epoch; two networks
# per fold, dropout on), one network at a time (batch 1) and as one batched network (batch 4).
# The same seed gives bit-identical results on one CPU; other CPUs add float-level noise.
PINNED = {
    ("ststnet", 1): (
        [
            [1.234823, 1.154417, 1.171608, 1.181163, 1.249665, 1.190526],
            [1.284043, 1.308903, 1.174212, 1.258949, 1.19055, 1.31058],
        ],
        [
            [[0.45783, 0.28962, 0.25254], [0.46776, 0.22971, 0.30253]],
            [[0.29045, 0.27968, 0.42987], [0.29573, 0.31006, 0.39421]],
        ],
    ),
    ("ststnet", 4): (
        [
            [1.230885, 1.24588, 1.137834, 1.174955, 1.291148, 1.111558],
            [1.283844, 1.246321, 1.189986, 1.202221, 1.176255, 1.323047],
        ],
        [
            [[0.43077, 0.32505, 0.24418], [0.43839, 0.2796, 0.28201]],
            [[0.2546, 0.31238, 0.43301], [0.25328, 0.35001, 0.39671]],
        ],
    ),
    ("glfnet_t", 1): (
        [[1.561968, 1.637691], [1.392378, 1.646206]],
        [
            [[0.33004, 0.32923, 0.34073], [0.21323, 0.53263, 0.25414]],
            [[0.15077, 0.52312, 0.32611], [0.34816, 0.35876, 0.29308]],
        ],
    ),
    ("glfnet_t", 4): (
        [[1.430399, 1.728327], [1.43524, 1.58064]],
        [
            [[0.34671, 0.34702, 0.30627], [0.30447, 0.46019, 0.23534]],
            [[0.18282, 0.53654, 0.28064], [0.30891, 0.39434, 0.29675]],
        ],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("model, batch", list(PINNED), ids=[f"{m}-batch{b}" for m, b in PINNED])
def test_results_are_those_of_commit_75f388f(model, batch):
    folds = _folds((70, 45))
    cfg = Config(model=model, epochs=3 if model == "ststnet" else 1, batch_size=16, ensemble=2)
    with one_thread_on_cpu("cpu"), determinism("cpu"):
        trained = train_folds(folds, cfg, batch=batch)
    losses, probs = PINNED[model, batch]
    for t, f, loss, p in zip(trained, folds, losses, probs):
        assert [h["loss"] for h in t.history] == pytest.approx(loss, abs=1e-5)
        np.testing.assert_allclose(t.predict_proba(f.X[:2]), p, atol=1e-4)
