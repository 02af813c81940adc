import json

import numpy as np
import pandas as pd
import pytest

from glfnet import checkpoint
from glfnet.config import Config
from glfnet.errors import ConfigError
from glfnet.eval import runner
from glfnet.eval.splits import loso_folds

FAST = Config(model="ststnet", epochs=2, batch_size=16, seeds=[0], jobs=1)


@pytest.fixture(scope="module")
def oracle_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    metrics = runner.run_protocol(tiny_set, FAST.replace(oracle=True, seeds=[0, 1]), out)
    return out, metrics


def test_run_directory_contents(oracle_run, tiny_set):
    out, metrics = oracle_run
    for name in ("config.yaml", "predictions.csv", "oracle_predictions.csv", "metrics.json",
                 "megc_log.txt", "megc_log_seed1.txt", "train_log.csv"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("protocol", "model", "seeds", "n_samples", "n_folds", "wall_seconds", "honest", "oracle"):
        assert key in m
    assert 0 < m["wall_seconds"] and 0 < m["fold_seconds"]
    assert m["n_samples"] == len(tiny_set) and m["n_folds"] == tiny_set.samples["subject"].nunique()
    assert set(m["honest"]) == {"full", "casme2", "samm", "smic"} == set(m["oracle"])
    for block in (m["honest"]["full"], m["oracle"]["smic"]):
        for key in ("uf1", "uar", "acc", "uf1_std", "uar_std"):
            assert isinstance(block[key], float)
    assert m["labels"]["oracle"] == "oracle (test-selected, optimistic)"
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    for col in ("database", "subject", "clip", "label", "prediction", "prob_negative",
                "prob_positive", "prob_surprise", "seed", "fold"):
        assert col in pred.columns
    assert len(pred) == 2 * len(tiny_set)
    np.testing.assert_allclose(pred[["prob_negative", "prob_positive", "prob_surprise"]].sum(axis=1), 1, atol=1e-4)


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
            vals.append((f1_score(p["label"], p["prediction"], labels=labels, average="macro"),
                         recall_score(p["label"], p["prediction"], labels=labels, average="macro")))
        vals = np.array(vals)
        assert m["honest"][subset]["uf1"] == pytest.approx(vals[:, 0].mean())
        assert m["honest"][subset]["uar"] == pytest.approx(vals[:, 1].mean())
        assert m["honest"][subset]["uf1_std"] == pytest.approx(vals[:, 0].std(ddof=1))


def test_oracle_is_at_least_as_accurate_and_kept_apart(oracle_run):
    out, m = oracle_run
    # per fold the oracle picks the test-best epoch, so pooled accuracy can only rise
    assert m["oracle"]["full"]["acc"] >= m["honest"]["full"]["acc"]
    assert "oracle" not in " ".join(pd.read_csv(out / "predictions.csv").columns)


def test_megc_log_format(oracle_run, tiny_set):
    out, _ = oracle_run
    lines = (out / "megc_log.txt").read_text().splitlines()
    headers = [l for l in lines if len(l.split()) == 2]
    assert len(headers) == tiny_set.samples["subject"].nunique()
    db, subject = headers[0].split()
    assert db in ("casme2", "samm", "smic")
    body = [l.split() for l in lines if len(l.split()) == 3]
    assert len(body) == len(tiny_set) and all(t in "012" and p in "012" for _, t, p in body)


def test_same_seed_same_predictions(tiny_set, tmp_path):
    a = runner.run_protocol(tiny_set, FAST, tmp_path / "a")
    b = runner.run_protocol(tiny_set, FAST, tmp_path / "b")
    pa = pd.read_csv(tmp_path / "a" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "predictions.csv")
    pd.testing.assert_frame_equal(pa, pb)
    assert a["honest"]["full"]["uf1"] == b["honest"]["full"]["uf1"]


def test_run_restores_the_process_settings(tiny_set, tmp_path):
    """A CPU run's deterministic kernels and single thread do not leak into the caller's
    session (a later CUDA run there would fail on kernels without a deterministic form)."""
    import torch
    import torch.utils.deterministic as tud

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = tud.fill_uninitialized_memory
    runner.run_protocol(tiny_set, FAST.replace(epochs=1), tmp_path / "r")
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
    assert tud.fill_uninitialized_memory == fill


def test_parallel_folds_give_the_same_results(tiny_set, tmp_path):
    """Every fold trains single-threaded, so --jobs changes speed, not results."""
    cfg = FAST.replace(model="glfnet_s", epochs=1)
    runner.run_protocol(tiny_set, cfg, tmp_path / "one")
    runner.run_protocol(tiny_set, cfg.replace(jobs=2), tmp_path / "two")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "two" / "predictions.csv"))


def test_resume_after_a_kill(tiny_set, tmp_path, monkeypatch):
    full = runner.run_protocol(tiny_set, FAST, tmp_path / "full")
    calls = []
    real = runner.run_fold

    def dying(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed during its fourth fold
        calls.append(args[1].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_fold", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.run_protocol(tiny_set, FAST, tmp_path / "resumed")
    assert len(list((tmp_path / "resumed" / "folds" / "seed0").glob("*.json"))) == 3
    assert not list((tmp_path / "resumed").rglob("*.tmp"))
    killed = json.loads((tmp_path / "resumed" / "elapsed.json").read_text())["seconds"]
    calls.clear()
    monkeypatch.setattr(runner, "run_fold", lambda *a, **k: (calls.append(a[1].name), real(*a, **k))[1])
    resumed = runner.run_protocol(tiny_set, FAST, tmp_path / "resumed")
    assert len(calls) == len(loso_folds(tiny_set.samples)) - 3  # finished folds skipped
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "resumed" / "predictions.csv"))
    assert resumed["honest"] == full["honest"]
    assert resumed["wall_seconds"] > killed > 0  # the killed invocation's time is kept


def test_changed_configuration_is_refused(tiny_set, tmp_path):
    runner.run_protocol(tiny_set, FAST, tmp_path / "r")
    with pytest.raises(ConfigError, match=r"epochs: 2 -> 3.*--overwrite"):
        runner.run_protocol(tiny_set, FAST.replace(epochs=3), tmp_path / "r")
    m = runner.run_protocol(tiny_set, FAST.replace(epochs=3), tmp_path / "r", overwrite=True)
    assert m["config"]["epochs"] == 3


def test_lodo(tiny_set, tmp_path):
    m = runner.run_protocol(tiny_set, FAST.replace(protocol="lodo"), tmp_path / "lodo")
    assert m["n_folds"] == 3 and m["protocol"] == "lodo"
    assert m["honest"]["full"]["n"] == len(tiny_set)


def test_checkpoints_reproduce_fold_predictions(tiny_set, tmp_path):
    from glfnet.data.pipeline import InputPipeline
    from glfnet.models.inference import predict_proba
    from glfnet.train.trainer import build_model

    cfg = FAST.replace(model="glfnet_s", save_checkpoints=True, epochs=1)
    runner.run_protocol(tiny_set, cfg, tmp_path / "ck")
    fold = loso_folds(tiny_set.samples)[0]
    state, meta = checkpoint.load(tmp_path / "ck" / "checkpoints" / "seed0" / f"{fold.name}.safetensors")
    model = checkpoint.load_into(build_model(cfg, 3), state, "x")
    probs = predict_proba(model, InputPipeline.from_state(meta["pipeline"]), tiny_set.X[fold.test_idx])
    rec = json.loads((tmp_path / "ck" / "folds" / "seed0" / f"{fold.name}.json").read_text())
    np.testing.assert_allclose(probs, rec["probs"], atol=1e-5)
