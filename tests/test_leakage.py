"""Evaluation integrity: the held-out subject is unreachable from training, model selection
and normalisation. Proved by invariance: changing the test subject's inputs and labels must
leave the trained model bit-identical."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from glfnet.config import Config
from glfnet.data import transforms as T
from glfnet.data.flowsets import FlowSet
from glfnet.eval import runner
from glfnet.eval.splits import lodo_folds, loso_folds, subject_keys

CFG = Config(model="glfnet_s", epochs=2, batch_size=16, seeds=[0], ensemble=1)
EARLY_STOPPING = CFG.replace(val_subjects=0.3, epochs=4)


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


@pytest.mark.parametrize(
    "cfg",
    [
        CFG,
        EARLY_STOPPING,
        CFG.replace(oracle=True),
        CFG.replace(ensemble=2, oracle=True),
        CFG.replace(db_norm=True, oracle=True),
        CFG.replace(bn_refresh=False),
        CFG.replace(fold_batch=2, ensemble=2),
        CFG.replace(cb_per_database=True),
        CFG.replace(bn_per_database=True, ensemble=2),
    ],
    ids=[
        "fixed-epochs",
        "early-stopping",
        "oracle-observer",
        "ensemble",
        "per-database-statistics",
        "no-batchnorm-refresh",
        "batchnorm-refresh-batched-ensemble",
        "per-database-class-weights",
        "per-database-batchnorm",
    ],
)
@pytest.mark.slow
def test_test_subject_cannot_influence_training(tiny_set, cfg):
    _check_tamper(tiny_set, cfg)


def _check_tamper(tiny_set, cfg, on_set=lambda fs: None):
    """Train one fold on the set and on the set with its test subject tampered with; every
    product of training must be the same. ``on_set(fs)`` is told which set runs next."""
    fold = loso_folds(tiny_set.samples)[1]
    on_set(tiny_set)
    rec_a, trained_a = runner.run_fold(tiny_set, fold, cfg, seed=0, oracle=cfg.oracle)
    tampered = _tamper(tiny_set, fold.test_idx)
    on_set(tampered)
    rec_b, trained_b = runner.run_fold(tampered, fold, cfg, seed=0, oracle=cfg.oracle)
    sa, sb = _state(trained_a), _state(trained_b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # bit-identical model
    same_time = [{**h, "seconds": rec_a.history[i]["seconds"]} for i, h in enumerate(rec_b.history)]
    assert rec_a.history == same_time  # losses, learning rates, validation scores
    assert rec_a.pipeline == rec_b.pipeline  # normalisation statistics
    assert rec_a.selected_epoch == rec_b.selected_epoch
    assert fold.subject not in rec_a.val_subjects and fold.subject not in rec_a.train_subjects
    if cfg.val_subjects:
        assert rec_a.val_subjects and set(rec_a.val_subjects) <= set(rec_a.train_subjects)
        # the chosen epoch is the first best on the validation subjects, whose per-epoch scores
        # (in the history, compared above) do not move when the test subject does
        val = [h["val_uf1"] for h in rec_a.history]
        assert rec_a.selected_epoch == 1 + int(np.argmax(val))
    if cfg.ensemble > 1:
        assert sorted({h["member"] for h in rec_a.history}) == list(range(cfg.ensemble))
    # ...while the test predictions do depend on the test inputs (the check is not vacuous)
    assert rec_a.probs != rec_b.probs


@pytest.mark.slow
def test_tamper_check_catches_test_rows_in_the_normalisation(tiny_set, monkeypatch):
    """Put the leak in (input statistics, pooled and per database, refitted on every sample of
    the set, the held-out subject's included): the tamper check fails."""
    real, current = runner.train_folds, {}

    def leaky(inputs, cfg, *args, **kwargs):
        trained = real(inputs, cfg, *args, **kwargs)
        fs = current["fs"]
        for t in trained:
            t.pipeline.fit(t.pipeline.prepare(torch.tensor(fs.X)), fs.samples["database"].to_numpy())
        return trained

    monkeypatch.setattr(runner, "train_folds", leaky)
    with pytest.raises(AssertionError):
        _check_tamper(tiny_set, CFG.replace(db_norm=True), on_set=lambda fs: current.update(fs=fs))


@pytest.mark.slow
def test_tamper_check_catches_test_rows_in_the_batchnorm_refresh(tiny_set, monkeypatch):
    """Put the leak in (the BatchNorm statistics recomputed after training on every sample of
    the set, the held-out subject's included): the tamper check fails."""
    from glfnet.train import loop

    real, current = loop.refresh_batchnorm, {}

    def leaky(model, pipeline, Xs, batch_size, groups=None):
        everything = pipeline.prepare(torch.tensor(current["fs"].X))
        real(model, pipeline, everything, batch_size)

    monkeypatch.setattr(loop, "refresh_batchnorm", leaky)
    with pytest.raises(AssertionError):
        _check_tamper(tiny_set, CFG.replace(bn_refresh=True), on_set=lambda fs: current.update(fs=fs))


@pytest.mark.slow
def test_tamper_check_catches_epochs_chosen_on_the_test_subject(tiny_set, monkeypatch):
    """Put the leak in (early stopping scores every epoch on the held-out subject's samples as
    well as on its validation subjects, so the checkpoint is chosen with the test subject):
    the early-stopping tamper check fails. The fit samples, the normalisation statistics and
    the reported validation subjects stay the honest ones; only the selection sees the test
    subject."""
    from glfnet.train import trainer

    fold = loso_folds(tiny_set.samples)[1]
    real_folds, real_split, current = runner.train_folds, trainer._split_val_subjects, {}

    def leaky_folds(inputs, cfg, *args, **kwargs):
        (f,) = inputs
        fs, te = current["fs"], fold.test_idx  # the held-out rows ride along, never fitted
        current["n_train"] = len(f.y)
        db = fs.samples["database"].to_numpy().astype(str)
        leaky = dataclasses.replace(
            f,
            X=np.concatenate([f.X, fs.X[te]]),
            y=np.concatenate([f.y, fs.y[te]]),
            subjects=np.concatenate([f.subjects, fs.samples["subject"].to_numpy()[te]]),
            groups=None if f.groups is None else np.concatenate([f.groups, db[te]]),
        )
        return real_folds([leaky], cfg, *args, **kwargs)

    def leaky_split(subjects, frac, rng):
        n = current["n_train"]
        fit, val = real_split(subjects[:n], frac, rng)  # the honest split of the training rows
        return np.concatenate([fit, np.zeros(len(subjects) - n, bool)]), val  # + test rows

    monkeypatch.setattr(runner, "train_folds", leaky_folds)
    monkeypatch.setattr(trainer, "_split_val_subjects", leaky_split)
    with pytest.raises(AssertionError):
        _check_tamper(tiny_set, EARLY_STOPPING, on_set=lambda fs: current.update(fs=fs))


def test_per_database_statistics_come_from_that_databases_training_samples(tiny_set):
    fold = loso_folds(tiny_set.samples)[2]
    rec, _ = runner.run_fold(tiny_set, fold, CFG.replace(db_norm=True), seed=0)
    db = tiny_set.samples["database"].to_numpy()
    groups = rec.pipeline["group_stats"]
    assert set(groups) == set(db[fold.train_idx])
    for name, stats in groups.items():
        rows = [i for i in fold.train_idx if db[i] == name]
        x = T.unit_range(T.to_centered(torch.tensor(tiny_set.X[rows]), "minmax"))
        np.testing.assert_allclose(stats["mean"], x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_oracle_observer_does_not_change_honest_predictions(tiny_set):
    fold = loso_folds(tiny_set.samples)[0]
    rec_plain, _ = runner.run_fold(tiny_set, fold, CFG, seed=0, oracle=False)
    rec_oracle, _ = runner.run_fold(tiny_set, fold, CFG, seed=0, oracle=True)
    assert rec_plain.probs == rec_oracle.probs
    assert len(rec_oracle.oracle_epoch_preds) == CFG.epochs


def test_normalisation_statistics_come_from_training_samples(tiny_set):
    fold = loso_folds(tiny_set.samples)[2]
    rec, _ = runner.run_fold(tiny_set, fold, CFG, seed=0)
    assert CFG.input_norm == "signed"
    x = T.unit_range(T.to_centered(torch.tensor(tiny_set.X[fold.train_idx]), "minmax"))
    np.testing.assert_allclose(rec.pipeline["mean"], x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5, atol=1e-7)
    everything = T.unit_range(T.to_centered(torch.tensor(tiny_set.X), "minmax")).mean(dim=(0, 2, 3)).numpy()
    assert not np.allclose(rec.pipeline["mean"], everything, rtol=1e-7, atol=0)


@pytest.mark.parametrize("fold_batch", [1, 3])
def test_runner_never_passes_test_rows_to_training(tiny_set, tmp_path, monkeypatch, fold_batch):
    seen, units = [], []
    real = runner.train_folds

    def spy(inputs, cfg, *args, **kwargs):
        seen.extend((f.X.copy(), set(f.subjects)) for f in inputs)
        units.append(len(inputs))
        return real(inputs, cfg, *args, **kwargs)

    monkeypatch.setattr(runner, "train_folds", spy)
    cfg = CFG.replace(model="ststnet", epochs=1, oracle=True, jobs=1, fold_batch=fold_batch)  # in-process
    runner.run_protocol(tiny_set, cfg, tmp_path / "run")
    folds = loso_folds(tiny_set.samples)
    assert len(seen) == len(folds) and max(units) == fold_batch  # batched units on that path
    for (X, subjects), fold in zip(seen, folds):
        assert fold.subject not in subjects
        train_rows = {x.tobytes() for x in X}
        assert not any(tiny_set.X[i].tobytes() in train_rows for i in fold.test_idx)


@pytest.mark.slow
def test_a_batched_unit_keeps_each_held_out_subject_out(tiny_set):
    """Two folds trained as one batched network; fold A's held-out subject tampered with.
    Fold A's model, history and statistics are bit-identical (its test subject reached
    nothing of its own, nor came back through the batch); fold B trains on that subject, so
    it may change -- that is LOSO, not a leak."""
    folds = loso_folds(tiny_set.samples)
    unit = [(0, folds[1]), (0, folds[2])]
    cfg = CFG.replace(fold_batch=2, oracle=True)
    (rec_a, trained_a), _ = runner.run_folds(tiny_set, unit, cfg, oracle=True)
    (rec_b, trained_b), _ = runner.run_folds(_tamper(tiny_set, folds[1].test_idx), unit, cfg, oracle=True)
    sa, sb = _state(trained_a), _state(trained_b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [{**h, "seconds": 0} for h in rec_a.history] == [{**h, "seconds": 0} for h in rec_b.history]
    assert rec_a.pipeline == rec_b.pipeline
    assert rec_a.probs != rec_b.probs  # the test predictions do see the tampered inputs


def _check_headline_is_final_model(tiny_set, tmp_path, fold_batch=1):
    """Tamper with one test subject's *labels* so that the oracle must pick an epoch whose
    predictions differ from the final model's: the headline predictions of that subject must
    not move (they come from the final model), while the oracle's do (the check has teeth)."""
    import pandas as pd

    cfg = CFG.replace(model="ststnet", epochs=5, oracle=True, jobs=1, report=False, fold_batch=fold_batch)
    runner.run_protocol(tiny_set, cfg, tmp_path / "a")
    target = None
    for fold in loso_folds(tiny_set.samples):
        rec = json.loads((tmp_path / "a" / "folds" / "seed0" / f"{fold.name}.json").read_text())
        for preds in rec["oracle"]["epoch_preds"]:
            if preds != rec["pred"]:
                target = (fold, preds, rec["pred"])
                break
        if target:
            break
    assert target, "no fold had an epoch whose predictions differ from the final ones"
    fold, oracle_preds, final_preds = target
    samples = tiny_set.samples.copy()
    samples.loc[fold.test_idx, "label"] = [tiny_set.classes[p] for p in oracle_preds]
    tampered = FlowSet(
        samples, tiny_set.X, tiny_set.classes, tiny_set.encoding, tiny_set.kind, tiny_set.source
    )
    runner.run_protocol(tampered, cfg, tmp_path / "b")

    def fold_rows(name, run):
        df = pd.read_csv(tmp_path / run / name, dtype={"subject": str})
        return df[df["fold"] == fold.name].set_index("sample_id")

    index = {c: i for i, c in enumerate(tiny_set.classes)}
    ids = tiny_set.samples["sample_id"].to_numpy()[fold.test_idx]
    honest = fold_rows("predictions.csv", "b").loc[ids]
    assert honest["prediction"].map(index).tolist() == final_preds
    probs = honest[[f"prob_{c}" for c in tiny_set.classes]].to_numpy()
    assert (probs.argmax(1) == honest["prediction"].map(index).to_numpy()).all()
    oracle = fold_rows("oracle_predictions.csv", "b").loc[ids]
    assert oracle["prediction"].map(index).tolist() == oracle_preds != final_preds  # it did move


@pytest.mark.slow
@pytest.mark.parametrize("fold_batch", [1, 4])
def test_headline_predictions_are_the_final_models_not_the_oracles(tiny_set, tmp_path, fold_batch):
    _check_headline_is_final_model(tiny_set, tmp_path, fold_batch)


@pytest.mark.slow
def test_headline_check_catches_oracle_predictions_in_the_headline(tiny_set, tmp_path, monkeypatch):
    """Put the leak in (headline predictions taken from the oracle's pick): the check fails."""
    real = runner._prediction_frame

    def leaky(fs, records, oracle):
        frame = real(fs, records, oracle)
        if not oracle:
            frame["prediction"] = real(fs, records, True)["prediction"].to_numpy()
        return frame

    monkeypatch.setattr(runner, "_prediction_frame", leaky)
    with pytest.raises(AssertionError):
        _check_headline_is_final_model(tiny_set, tmp_path)


# --------------------------------------------------------------------------- nested selection

TUNE_BASE = CFG.replace(epochs=2, batch_size=16)


def _tune_menu():
    from glfnet.eval.menu import parse_menu

    recipes = [
        {"name": "glfnet", "model": "glfnet_s"},
        {"name": "ststnet", "model": "ststnet", "epochs": 3},
        {"name": "both", "average": ["glfnet", "ststnet"]},
    ]
    return parse_menu({"recipes": recipes}, TUNE_BASE)


def _tune_run(fs, out, monkeypatch):
    """A whole tune run of seed 0 in this process: its fold records by fold, and the final
    models by (fold, model), caught as they are trained."""
    from glfnet.eval import tune
    from glfnet.eval.rundir import RunDir

    finals, real = {}, tune.run_folds

    def spy(fs_, unit, cfg):
        done = real(fs_, unit, cfg)
        for (_, fold), (_, trained) in zip(unit, done):
            finals[(fold.name, cfg.model)] = trained
        return done

    monkeypatch.setattr(tune, "run_folds", spy)
    tune.run_tune(fs, TUNE_BASE.replace(jobs=1), _tune_menu(), tune.TuneSettings(), out)
    monkeypatch.setattr(tune, "run_folds", real)
    return {r.fold: r for r in RunDir(out).fold_records(0)}, finals


def _check_tune_tamper(tiny_set, tmp_path, monkeypatch, fold_index=1):
    """Run nested selection on the set and on the set with one subject's inputs and labels
    changed: for the fold that holds that subject out, every inner score, the choice and the
    final model's weights must be the same; only its own predictions may move."""
    from glfnet.eval import tune
    from glfnet.eval.rundir import RunDir

    fold = loso_folds(tiny_set.samples)[fold_index]
    records_a, finals_a = _tune_run(tiny_set, tmp_path / "a", monkeypatch)
    records_b, finals_b = _tune_run(_tamper(tiny_set, fold.test_idx), tmp_path / "b", monkeypatch)
    a, b = records_a[fold.name], records_b[fold.name]
    assert a.selection == b.selection  # inner UF1/UAR, gaps, standard errors, costs, the choice
    held = set(tiny_set.samples["sample_id"].iloc[fold.test_idx])
    for recipe in ("glfnet", "ststnet"):  # every inner prediction of a training subject
        for name in a.selection["inner_folds"]:
            ra, rb = (
                json.loads(tune._inner_path(RunDir(tmp_path / x), 0, recipe, name).read_text()) for x in "ab"
            )
            assert ra["train_subjects"] == rb["train_subjects"]
            keep = [i for i, sid in enumerate(ra["test_ids"]) if sid not in held]
            assert [ra["probs"][i] for i in keep] == [rb["probs"][i] for i in keep]
    models = [k for k in finals_a if k[0] == fold.name]
    assert models and models == [k for k in finals_b if k[0] == fold.name]
    for key in models:  # the final model(s)
        sa, sb = _state(finals_a[key]), _state(finals_b[key])
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.probs != b.probs  # the held-out predictions do see the tampering
    return a


@pytest.mark.slow
def test_tune_held_out_subject_changes_no_inner_score_choice_or_weight(tiny_set, tmp_path, monkeypatch):
    a = _check_tune_tamper(tiny_set, tmp_path, monkeypatch)
    assert {row["recipe"] for row in a.selection["inner"]} == {"glfnet", "ststnet", "both"}
    assert sum(row["chosen"] for row in a.selection["inner"]) == 1


def _spy_on_inner_trainings(monkeypatch):
    """Record the training subjects (database/subject) of every inner training, by name."""
    from glfnet.eval import tune

    seen, real = {}, tune.train_inner

    def spy(fs, job):
        seen[job.split.name] = set(subject_keys(fs.samples)[job.split.train_idx])
        return real(fs, job)

    monkeypatch.setattr(tune, "train_inner", spy)
    return seen


def _check_no_held_out_in_inner(fs, tmp_path, monkeypatch):
    """A spy on every inner training of a whole tune run (every outer fold, shared and own
    inner trainings, in this process): no outer fold's held-out subject is among the training
    subjects of any inner training it is scored from."""
    from glfnet.eval import tune

    seen = _spy_on_inner_trainings(monkeypatch)
    tune.run_tune(fs, TUNE_BASE.replace(jobs=1), _tune_menu(), tune.TuneSettings(), tmp_path / "run")
    groups = tune.inner_groups(fs.samples, 2, 0)
    for fold in loso_folds(fs.samples):
        held = f"{fold.database}/{fold.subject}"
        for split in tune.inner_splits(fs.samples, fold, groups, 2):
            assert held not in seen[split.name], f"inner training {split.name} holds {held}"


@pytest.mark.slow
def test_tune_no_inner_training_holds_the_held_out_subject(tiny_set, tmp_path, monkeypatch):
    _check_no_held_out_in_inner(tiny_set, tmp_path, monkeypatch)


@pytest.mark.slow
def test_tune_checks_catch_the_held_out_subject_in_an_inner_training_set(tiny_set, tmp_path, monkeypatch):
    """Put the leak in (the held-out subject's rows added to every inner training set): the
    spy and the tamper check both fail."""
    from glfnet.eval import tune

    real = tune.inner_splits

    def leaky(samples, fold, groups, k):
        return [
            dataclasses.replace(s, train_idx=np.union1d(s.train_idx, fold.test_idx))
            for s in real(samples, fold, groups, k)
        ]

    monkeypatch.setattr(tune, "inner_splits", leaky)
    with pytest.raises(AssertionError, match="holds"):
        _check_no_held_out_in_inner(tiny_set, tmp_path / "spy", monkeypatch)
    with pytest.raises(AssertionError):
        _check_tune_tamper(tiny_set, tmp_path, monkeypatch)


@pytest.mark.slow
def test_tune_tamper_check_catches_choices_scored_on_the_held_out_subject(tiny_set, tmp_path, monkeypatch):
    """Put the leak in (the inner scores pool the held-out subject's own predictions, which
    the shared inner training makes, with the training subjects'): the tamper check fails."""
    from glfnet.eval import tune

    real = tune.inner_table

    def leaky(fs, fold, splits, results, menu, settings, seed):
        widened = [
            dataclasses.replace(s, use_idx=np.union1d(s.use_idx, fold.test_idx))
            if s.name.startswith("g")
            else s
            for s in splits
        ]
        return real(fs, fold, widened, results, menu, settings, seed)

    monkeypatch.setattr(tune, "inner_table", leaky)
    with pytest.raises(AssertionError):
        _check_tune_tamper(tiny_set, tmp_path, monkeypatch)
