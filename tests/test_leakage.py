"""Evaluation integrity: the held-out subject is unreachable from training, model selection
and normalisation. Proved by invariance: changing the test subject's inputs and labels must
leave the trained model bit-identical."""

import numpy as np
import pytest
import torch

from glfnet.config import Config
from glfnet.data import transforms as T
from glfnet.data.flowsets import FlowSet
from glfnet.eval import runner
from glfnet.eval.splits import lodo_folds, loso_folds

CFG = Config(model="glfnet_s", epochs=2, batch_size=16, seeds=[0])


def _tamper(fs: FlowSet, idx) -> FlowSet:
    """Same set, but the samples at idx get random inputs and different labels."""
    X = fs.X.copy()
    X[idx] = np.random.default_rng(99).random(X[idx].shape).astype(np.float32)
    samples = fs.samples.copy()
    nxt = {c: fs.classes[(i + 1) % len(fs.classes)] for i, c in enumerate(fs.classes)}
    samples.loc[idx, "label"] = samples.loc[idx, "label"].map(nxt)
    return FlowSet(samples, X, fs.classes, fs.encoding, fs.kind, fs.source)


def _state(trained):
    return {k: v.clone() for k, v in trained.model.state_dict().items()}


@pytest.mark.parametrize("protocol", ["loso", "lodo"])
def test_folds_are_subject_disjoint(tiny_set, protocol):
    folds = (loso_folds if protocol == "loso" else lodo_folds)(tiny_set.samples)
    keys = (tiny_set.samples["database"] + "/" + tiny_set.samples["subject"]).to_numpy()
    covered = np.concatenate([f.test_idx for f in folds])
    assert sorted(covered) == list(range(len(tiny_set)))  # every sample tested exactly once
    for f in folds:
        assert not set(keys[f.train_idx]) & set(keys[f.test_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(tiny_set)


@pytest.mark.parametrize("cfg", [CFG, CFG.replace(val_subjects=0.3), CFG.replace(oracle=True)],
                         ids=["fixed-epochs", "early-stopping", "oracle-observer"])
def test_test_subject_cannot_influence_training(tiny_set, cfg):
    fold = loso_folds(tiny_set.samples)[1]
    rec_a, trained_a = runner.run_fold(tiny_set, fold, cfg, seed=0, oracle=cfg.oracle)
    tampered = _tamper(tiny_set, fold.test_idx)
    rec_b, trained_b = runner.run_fold(tampered, fold, cfg, seed=0, oracle=cfg.oracle)
    sa, sb = _state(trained_a), _state(trained_b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # bit-identical model
    assert rec_a["history"] == [{**h, "seconds": rec_a["history"][i]["seconds"]} for i, h in enumerate(rec_b["history"])]
    assert rec_a["pipeline"] == rec_b["pipeline"]  # normalisation statistics
    assert rec_a["selected_epoch"] == rec_b["selected_epoch"]
    assert fold.subject not in rec_a["val_subjects"] and fold.subject not in rec_a["train_subjects"]
    if cfg.val_subjects:
        assert rec_a["val_subjects"] and set(rec_a["val_subjects"]) <= set(rec_a["train_subjects"])
    # ...while the test predictions do depend on the test inputs (the check is not vacuous)
    assert rec_a["probs"] != rec_b["probs"]


def test_oracle_observer_does_not_change_honest_predictions(tiny_set):
    fold = loso_folds(tiny_set.samples)[0]
    rec_plain, _ = runner.run_fold(tiny_set, fold, CFG, seed=0, oracle=False)
    rec_oracle, _ = runner.run_fold(tiny_set, fold, CFG, seed=0, oracle=True)
    assert rec_plain["probs"] == rec_oracle["probs"]
    assert len(rec_oracle["oracle"]["epoch_preds"]) == CFG.epochs


def test_normalisation_statistics_come_from_training_samples(tiny_set):
    fold = loso_folds(tiny_set.samples)[2]
    rec, _ = runner.run_fold(tiny_set, fold, CFG, seed=0)
    x = T.minmax(T.to_centered(torch.tensor(tiny_set.X[fold.train_idx]), "minmax"))
    np.testing.assert_allclose(rec["pipeline"]["mean"], x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5)
    everything = T.minmax(T.to_centered(torch.tensor(tiny_set.X), "minmax")).mean(dim=(0, 2, 3)).numpy()
    assert not np.allclose(rec["pipeline"]["mean"], everything, rtol=1e-7, atol=0)


def test_runner_never_passes_test_rows_to_training(tiny_set, tmp_path, monkeypatch):
    seen = []
    real = runner.train_fold

    def spy(X, y, subjects, cfg, *args, **kwargs):
        seen.append((X.copy(), set(subjects)))
        return real(X, y, subjects, cfg, *args, **kwargs)

    monkeypatch.setattr(runner, "train_fold", spy)
    cfg = CFG.replace(model="ststnet", epochs=1, oracle=True, jobs=1)  # spies work in-process
    runner.run_protocol(tiny_set, cfg, tmp_path / "run")
    folds = loso_folds(tiny_set.samples)
    assert len(seen) == len(folds)
    for (X, subjects), fold in zip(seen, folds):
        assert fold.subject not in subjects
        train_rows = {x.tobytes() for x in X}
        assert not any(tiny_set.X[i].tobytes() in train_rows for i in fold.test_idx)
