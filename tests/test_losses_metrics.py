import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from glfnet.config import Config
from glfnet.metrics import scores
from glfnet.train.losses import ClassBalancedLoss, build_loss, class_balanced_weights


@pytest.mark.parametrize(
    "beta,want", [(0.99, [0.75, 1.03, 1.22]), (0.999, [0.51, 1.09, 1.41]), (0.9999, [0.48, 1.09, 1.43])]
)
def test_class_balanced_weights_match_reference(beta, want):
    w = class_balanced_weights([250, 109, 83], beta)
    np.testing.assert_allclose(w, want, atol=0.006)
    assert w.sum() == pytest.approx(3.0)


def test_absent_training_class_gets_zero_weight():
    w = class_balanced_weights([10, 0, 5], 0.999)
    assert w[1] == 0 and w.sum() == pytest.approx(2.0)


def test_cb_loss_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    loss = ClassBalancedLoss([250, 109, 83], beta=0.999)(logits, y)
    w = torch.tensor(class_balanced_weights([250, 109, 83], 0.999), dtype=torch.float32)
    assert loss.item() == pytest.approx((w[y] * F.cross_entropy(logits, y, reduction="none")).mean().item())
    plain = build_loss(Config(loss="ce", label_smoothing=0.0), [250, 109, 83])(logits, y)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    smooth = build_loss(Config(loss="ce", label_smoothing=0.1), [250, 109, 83])(logits, y)
    assert smooth.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6)


def _sk(y, p):
    labels = np.unique(y)
    return (
        f1_score(y, p, labels=labels, average="macro"),
        recall_score(y, p, labels=labels, average="macro"),
        accuracy_score(y, p),
    )


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    s = scores(y, p, 3)
    uf1, uar, acc = _sk(y, p)
    assert (
        s["uf1"] == pytest.approx(uf1) and s["uar"] == pytest.approx(uar) and s["acc"] == pytest.approx(acc)
    )
    np.testing.assert_array_equal(s["confusion"], confusion_matrix(y, p, labels=[0, 1, 2]))


def test_metrics_with_an_absent_class():
    # a subset (one database, or one subject) without any 'surprise' sample, one predicted
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0, 2, 0, 1, 0])
    s = scores(y, p, 3)
    uf1, uar, _ = _sk(y, p)
    assert s["uf1"] == pytest.approx(uf1) and s["uar"] == pytest.approx(uar)
    assert s["f1"][2] is None and s["recall"][2] is None
    assert s["uf1"] == pytest.approx((2 * 2 / (2 * 2 + 1 + 1) + 2 * 1 / (2 * 1 + 0 + 1)) / 2)


def test_pooled_not_per_fold_average():
    # two folds: averaging per fold differs from the MEGC definition (pooled)
    y1, p1 = np.array([0, 0, 0]), np.array([0, 0, 1])
    y2, p2 = np.array([1, 2]), np.array([1, 2])
    pooled = scores(np.r_[y1, y2], np.r_[p1, p2], 3)["uf1"]
    per_fold = np.mean([scores(y1, p1, 3)["uf1"], scores(y2, p2, 3)["uf1"]])
    assert pooled == pytest.approx(_sk(np.r_[y1, y2], np.r_[p1, p2])[0])
    assert pooled != pytest.approx(per_fold)
