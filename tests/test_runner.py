import json

import numpy as np
import pandas as pd
import pytest

from glfnet import checkpoint
from glfnet.config import Config
from glfnet.errors import ConfigError
from glfnet.eval import runner
from glfnet.eval.rundir import FoldRecord, Metrics, RunDir
from glfnet.eval.splits import loso_folds

FAST = Config(model="ststnet", epochs=2, batch_size=16, seeds=[0], jobs=1, ensemble=1)


@pytest.fixture(scope="module")
def oracle_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    metrics = runner.run_protocol(tiny_set, FAST.replace(oracle=True, seeds=[0, 1]), out)
    return out, metrics


def test_run_directory_contents(oracle_run, tiny_set):
    out, _ = oracle_run
    for name in (
        "config.yaml",
        "predictions.csv",
        "oracle_predictions.csv",
        "metrics.json",
        "megc_log.txt",
        "megc_log_seed1.txt",
        "train_log.csv",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("protocol", "model", "seeds", "n_samples", "n_folds", "wall_seconds", "honest", "oracle"):
        assert key in m
    assert m["wall_seconds"] > 0 and m["fold_seconds"] > 0
    assert m["n_samples"] == len(tiny_set) and m["n_folds"] == tiny_set.samples["subject"].nunique()
    assert set(m["honest"]) == {"full", "casme2", "samm", "smic"} == set(m["oracle"])
    for block in (m["honest"]["full"], m["oracle"]["smic"]):
        for key in ("uf1", "uar", "acc", "uf1_std", "uar_std"):
            assert isinstance(block[key], float)
    assert m["labels"]["oracle"] == "oracle (test-selected, optimistic)"
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    for col in (
        "database",
        "subject",
        "clip",
        "label",
        "prediction",
        "prob_negative",
        "prob_positive",
        "prob_surprise",
        "seed",
        "fold",
    ):
        assert col in pred.columns
    assert len(pred) == 2 * len(tiny_set)
    probs = pred[["prob_negative", "prob_positive", "prob_surprise"]]
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_metrics_recomputed_from_predictions(oracle_run):
    from sklearn.metrics import f1_score, recall_score

    out, m = oracle_run
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    for subset in ("full", "samm"):
        vals = []
        for seed in (0, 1):
            p = pred[pred.seed == seed]
            if subset != "full":
                p = p[p.database == subset]
            labels = sorted(p["label"].unique())
            vals.append(
                (
                    f1_score(p["label"], p["prediction"], labels=labels, average="macro"),
                    recall_score(p["label"], p["prediction"], labels=labels, average="macro"),
                )
            )
        vals = np.array(vals)
        assert m.honest[subset].uf1 == pytest.approx(vals[:, 0].mean())
        assert m.honest[subset].uar == pytest.approx(vals[:, 1].mean())
        assert m.honest[subset].uf1_std == pytest.approx(vals[:, 0].std(ddof=1))


def test_oracle_is_at_least_as_accurate_and_kept_apart(oracle_run):
    out, m = oracle_run
    # per fold the oracle picks the test-best epoch, so pooled accuracy can only rise
    assert m.oracle["full"].acc >= m.honest["full"].acc
    assert "oracle" not in " ".join(pd.read_csv(out / "predictions.csv").columns)


def test_megc_log_format(oracle_run, tiny_set):
    out, _ = oracle_run
    lines = (out / "megc_log.txt").read_text().splitlines()
    headers = [l for l in lines if len(l.split()) == 2]
    assert len(headers) == tiny_set.samples["subject"].nunique()
    db, _ = headers[0].split()
    assert db in ("casme2", "samm", "smic")
    body = [l.split() for l in lines if len(l.split()) == 3]
    assert len(body) == len(tiny_set) and all(t in "012" and p in "012" for _, t, p in body)


def test_same_seed_same_predictions(tiny_set, tmp_path):
    lines: list[str] = []
    a = runner.run_protocol(tiny_set, FAST, tmp_path / "a", log=lines.append)
    b = runner.run_protocol(tiny_set, FAST, tmp_path / "b")
    # one line per fold, the count in words that fit it ("1 test sample", "2 test samples")
    sizes = {f.name: len(f.test_idx) for f in loso_folds(tiny_set.samples)}
    assert len(lines) == len(sizes) and 1 in sizes.values()
    for line in lines:
        n = sizes[line.split(":")[0].split()[-1]]
        assert f": {n} test {'sample' if n == 1 else 'samples'}," in line, line
    pa = pd.read_csv(tmp_path / "a" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "predictions.csv")
    pd.testing.assert_frame_equal(pa, pb)
    assert a.honest["full"].uf1 == b.honest["full"].uf1


def test_run_restores_the_process_settings(tiny_set, tmp_path):
    """A CPU run's deterministic kernels and single thread do not leak into the caller's
    session (a later CUDA run there would fail on kernels without a deterministic form)."""
    import torch
    import torch.utils.deterministic as tud

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not 1 (conftest's setting): a missing restore must show
    try:
        det = torch.are_deterministic_algorithms_enabled()
        fill = tud.fill_uninitialized_memory
        runner.run_protocol(tiny_set, FAST.replace(epochs=1), tmp_path / "r")
        assert torch.get_num_threads() == 2
        assert torch.are_deterministic_algorithms_enabled() == det
        assert tud.fill_uninitialized_memory == fill
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_parallel_folds_give_the_same_results(tiny_set, tmp_path):
    """Every fold trains single-threaded, so --jobs changes speed, not results."""
    cfg = FAST.replace(model="glfnet_s", epochs=1)
    runner.run_protocol(tiny_set, cfg, tmp_path / "one")
    runner.run_protocol(tiny_set, cfg.replace(jobs=2), tmp_path / "two")
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "one" / "predictions.csv"), pd.read_csv(tmp_path / "two" / "predictions.csv")
    )


def test_resume_after_a_kill(tiny_set, tmp_path, monkeypatch):
    full = runner.run_protocol(tiny_set, FAST, tmp_path / "full")
    calls = []
    real = runner.run_folds

    def dying(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed during its fourth fold
        calls.extend(fold.name for _, fold in args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_folds", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.run_protocol(tiny_set, FAST, tmp_path / "resumed")
    assert len(list((tmp_path / "resumed" / "folds" / "seed0").glob("*.json"))) == 3
    assert not list((tmp_path / "resumed").rglob("*.tmp"))
    killed = json.loads((tmp_path / "resumed" / "elapsed.json").read_text())["seconds"]
    calls.clear()
    monkeypatch.setattr(
        runner, "run_folds", lambda *a, **k: (calls.extend(f.name for _, f in a[1]), real(*a, **k))[1]
    )
    steps: list[tuple[int, int, str]] = []
    resumed = runner.run_protocol(
        tiny_set, FAST, tmp_path / "resumed", progress=lambda *step: steps.append(step)
    )
    assert steps[0] == (3, len(loso_folds(tiny_set.samples)), "starting")  # the reused folds
    assert len(calls) == len(loso_folds(tiny_set.samples)) - 3  # finished folds skipped
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "full" / "predictions.csv"),
        pd.read_csv(tmp_path / "resumed" / "predictions.csv"),
    )
    assert resumed.honest == full.honest
    assert resumed.wall_seconds > killed > 0  # the killed invocation's time is kept


def test_changed_configuration_is_refused(tiny_set, tmp_path):
    runner.run_protocol(tiny_set, FAST, tmp_path / "r")
    with pytest.raises(ConfigError, match=r"epochs: 2 -> 3.*`overwrite`"):
        runner.run_protocol(tiny_set, FAST.replace(epochs=3), tmp_path / "r")
    m = runner.run_protocol(tiny_set, FAST.replace(epochs=3), tmp_path / "r", overwrite=True)
    assert m.config["epochs"] == 3


def test_lodo(tiny_set, tmp_path):
    m = runner.run_protocol(tiny_set, FAST.replace(protocol="lodo"), tmp_path / "lodo")
    assert m.n_folds == 3 and m.protocol == "lodo"
    assert m.honest["full"].n == len(tiny_set)


@pytest.mark.slow
def test_checkpoints_reproduce_fold_predictions(tiny_set, tmp_path):
    from glfnet.data.pipeline import InputPipeline
    from glfnet.models.inference import predict_proba
    from glfnet.train.fold import build_model

    cfg = FAST.replace(model="glfnet_s", save_checkpoints=True, epochs=1, ensemble=2)  # as the default
    runner.run_protocol(tiny_set, cfg, tmp_path / "ck")
    fold = loso_folds(tiny_set.samples)[0]
    state, meta = checkpoint.load(tmp_path / "ck" / "checkpoints" / "seed0" / f"{fold.name}.safetensors")
    model = checkpoint.load_into(build_model(cfg, 3, cfg.ensemble), state, "x")
    probs = predict_proba(model, InputPipeline.from_state(meta["pipeline"]), tiny_set.X[fold.test_idx])
    rec = json.loads((tmp_path / "ck" / "folds" / "seed0" / f"{fold.name}.json").read_text())
    np.testing.assert_allclose(probs, rec["probs"], atol=1e-5)


def test_every_file_of_a_run_is_named_by_the_run_directory(oracle_run, tiny_set):
    """The runner writes nothing whose name RunDir does not know (names are spelled once)."""
    out, metrics = oracle_run
    rd = RunDir(out)
    known = {
        rd.config_path,
        rd.predictions_path,
        rd.oracle_predictions_path,
        rd.metrics_path,
        rd.train_log_path,
        rd.elapsed_path,
    }
    known |= {rd.megc_log_path(s, i == 0) for i, s in enumerate(metrics.seeds)}
    known |= {rd.fold_path(s, f.name) for s in metrics.seeds for f in loso_folds(tiny_set.samples)}
    assert {p for p in out.rglob("*") if p.is_file()} == known


def test_records_and_metrics_read_and_write_the_same_json(oracle_run):
    """FoldRecord and Metrics read what the runner wrote and give back the same JSON, key
    order included (older directories read the same way: the format did not change)."""
    out, metrics = oracle_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert list(Metrics.from_dict(on_disk).to_dict().items()) == list(on_disk.items())
    assert metrics.to_dict() == on_disk
    rd = RunDir(out)
    for p in sorted((out / "folds").rglob("*.json")):
        raw = json.loads(p.read_text())
        rec = FoldRecord.from_dict(raw)
        assert list(rec.to_dict().items()) == list(raw.items())
        assert rd.read_fold(rec.seed, rec.fold) == rec
    assert [r.fold for r in rd.fold_records(0)] == sorted(r.fold for r in rd.fold_records(0))


@pytest.mark.slow
def test_one_seed_has_no_spread(tiny_set, tmp_path):
    """With one seed there is no standard deviation: metrics.json says null, not 0.0, and a
    file of the previous version (0.0) reads as None too."""
    m = runner.run_protocol(tiny_set, FAST.replace(epochs=1), tmp_path / "one")
    raw = json.loads((tmp_path / "one" / "metrics.json").read_text())
    for block in raw["honest"].values():
        assert block["uf1_std"] is None and block["uar_std"] is None and block["acc_std"] is None
    assert m.honest["full"].uf1_std is None
    for block in raw["honest"].values():  # as the previous version wrote it
        block.update(uf1_std=0.0, uar_std=0.0, acc_std=0.0)
    old = Metrics.from_dict(raw)
    assert all(s.mean_std(k)[1] is None for s in old.honest.values() for k in ("uf1", "uar", "acc"))


@pytest.mark.slow
def test_explain_reads_the_models_own_attention_maps(tiny_set):
    """explain asks the model for its attention_maps (an ensemble: its first member's) and
    stores them rounded; a model without attention gives None."""
    import torch

    fold = loso_folds(tiny_set.samples)[0]
    cfg = FAST.replace(model="glfnet_s", epochs=1, ensemble=2)
    rec, trained = runner.run_fold(tiny_set, fold, cfg, seed=0)
    X = tiny_set.X[fold.test_idx]
    assert set(rec.maps) == {"global", "regions", "fusion"}
    assert np.asarray(rec.maps["regions"]).shape == (len(X), 4)
    assert np.asarray(rec.maps["fusion"]).shape == (len(X), 2)
    member = trained.model.members[0]
    x = trained.pipeline(
        trained.pipeline.prepare(torch.tensor(X)),
        groups=tiny_set.samples["database"].to_numpy()[fold.test_idx],
    )
    member.eval()
    direct = member.attention_maps(x)
    np.testing.assert_allclose(rec.maps["regions"], direct["regions"].numpy(), atol=1e-5)
    rec_sst, _ = runner.run_fold(tiny_set, fold, FAST.replace(epochs=1), seed=0)
    assert rec_sst.maps is None
