"""Backends: the Ray executor gives the local results, resumes across backends, reruns a unit
whose worker died, surfaces glfnet errors as themselves; the validation of `backend` and
`ray_address`; the run's cost on screen and in metrics.json.

The Ray tests share one local 2-CPU runtime (``ray_runtime``) and skip where Ray is not
installed (``make install`` installs it)."""

import json
import os
import shutil
import time

import pandas as pd
import pytest

from clirun import glfnet
from glfnet.config import Config
from glfnet.errors import ConfigError, DataError
from glfnet.eval import runner
from glfnet.eval.backends import run_units
from glfnet.eval.rundir import Metrics, RunDir, Throughput
from glfnet.eval.splits import loso_folds

FAST = Config(model="ststnet", epochs=2, batch_size=16, seeds=[0], jobs=1)


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    runner.run_protocol(tiny_set, FAST, out)
    return out


def _fold_files(out, seed):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "folds" / f"seed{seed}").glob("*")}


def _without_times(rec):
    d = rec.to_dict()
    d.pop("seconds")
    d["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in d["history"]]
    return d


@pytest.mark.slow
def test_ray_gives_the_same_results_as_local(ray_runtime, tiny_set, local_run, tmp_path, monkeypatch):
    steps, holders = [], []
    save = runner._save_result

    def saved(rd, *args):  # in the driver, as each fold's result arrives from its Ray task
        holders.append(json.loads(rd.lock_path.read_text())["pid"])
        save(rd, *args)

    monkeypatch.setattr(runner, "_save_result", saved)
    m = runner.run_protocol(
        tiny_set, FAST.replace(backend="ray"), tmp_path / "ray", progress=lambda *s: steps.append(s)
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(local_run / "predictions.csv"), pd.read_csv(tmp_path / "ray" / "predictions.csv")
    )
    local, ray = RunDir(local_run), RunDir(tmp_path / "ray")
    assert [_without_times(r) for r in ray.fold_records(0)] == [
        _without_times(r) for r in local.fold_records(0)
    ]
    # the progress count rises by one per fold, whatever order the folds finish in
    n = len(loso_folds(tiny_set.samples))
    assert [s[0] for s in steps] == list(range(n + 1)) and {s[1] for s in steps} == {n}
    assert sorted(s[2] for s in steps[1:]) == sorted(
        f"seed 0 fold {f.name}" for f in loso_folds(tiny_set.samples)
    )
    assert m.throughput.backend == "ray" and m.throughput.workers == 2 and m.throughput.folds_trained == n
    # the driver, which writes the run directory, holds its lock; the tasks write nothing
    assert holders == [os.getpid()] * n and not RunDir(tmp_path / "ray").lock_path.exists()


@pytest.mark.slow
def test_tune_on_ray_gives_the_local_choices_and_results(ray_runtime, tiny_set, tmp_path):
    """`glfnet tune`'s inner and final trainings as Ray tasks: the same inner scores, choices
    and predictions as in local worker processes."""
    from glfnet.eval import tune
    from glfnet.eval.menu import parse_menu

    menu = parse_menu({"recipes": [{"name": "a"}, {"name": "b", "epochs": 1}]}, FAST)
    for backend in ("local", "ray"):
        tune.run_tune(
            tiny_set, FAST.replace(backend=backend, jobs=2), menu, tune.TuneSettings(), tmp_path / backend
        )
    for name in ("predictions.csv", "selection.csv"):
        local, ray = pd.read_csv(tmp_path / "local" / name), pd.read_csv(tmp_path / "ray" / name)
        pd.testing.assert_frame_equal(local, ray)


@pytest.mark.slow
def test_a_run_resumes_across_backends(ray_runtime, tiny_set, local_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(local_run, out)
    before = _fold_files(out, 0)
    steps = []
    m = runner.run_protocol(
        tiny_set, FAST.replace(backend="ray", seeds=[0, 1]), out, progress=lambda *s: steps.append(s)
    )
    n = len(loso_folds(tiny_set.samples))
    assert steps[0] == (n, 2 * n, "starting")  # seed 0's folds reused ...
    assert _fold_files(out, 0) == before  # ... not retrained or rewritten
    assert m.throughput.folds_trained == n and len(_fold_files(out, 1)) == n
    pred = pd.read_csv(out / "predictions.csv")
    pd.testing.assert_frame_equal(
        pred[pred.seed == 0].reset_index(drop=True), pd.read_csv(local_run / "predictions.csv")
    )


@pytest.mark.slow
def test_a_unit_whose_worker_dies_is_run_again(ray_runtime, tiny_set, tmp_path):
    folds = loso_folds(tiny_set.samples)
    units = [[(0, f)] for f in folds]
    doomed = folds[2].name

    def dies_once(fs, cfg, unit):  # the worker process exits mid-unit, the first time only
        name = unit[0][1].name
        marker = tmp_path / f"{name}.died"
        if name == doomed and not marker.exists():
            marker.touch()
            os._exit(1)
        return [(unit[0][0], name)]

    got = []
    run_units(tiny_set, FAST.replace(backend="ray"), units, dies_once, got.append)
    assert (tmp_path / f"{doomed}.died").exists()  # it did die
    assert sorted(got) == sorted((0, f.name) for f in folds)  # every result once


@pytest.mark.slow
def test_a_glfnet_error_in_a_task_surfaces_as_itself_and_stops_the_rest(ray_runtime, tiny_set):
    units = [[(0, f)] for f in loso_folds(tiny_set.samples)[:3]]
    bad = units[0][0][1].name

    def work(fs, cfg, unit):
        if unit[0][1].name == bad:
            raise DataError(f"fold {bad}: no usable sample")
        time.sleep(60)  # cancelled, not waited for
        return []

    t0 = time.perf_counter()
    with pytest.raises(DataError) as e:
        run_units(tiny_set, FAST.replace(backend="ray"), units, work, lambda r: None)
    assert str(e.value) == f"fold {bad}: no usable sample"  # the message, not Ray's wrapping
    assert time.perf_counter() - t0 < 30  # the sleeping units were not waited for ...
    deadline = time.perf_counter() + 5
    while ray_runtime.available_resources().get("CPU", 0) < 2 and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert ray_runtime.available_resources().get("CPU", 0) == 2  # ... but cancelled: CPUs free


@pytest.mark.slow
def test_loso_on_ray_from_the_command_line(ray_runtime, flat_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["loso", flat_dir, "--model", "ststnet", "--epochs", "1", "--backend", "ray", "--out", out]
    code, stdout, err = glfnet(capsys, *argv, "--no-report")
    assert code == 0, err
    assert "trained 7 folds in " in stdout and "training samples/s (ray, 2 workers)" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["backend"] == "ray" and m["throughput"]["folds_trained"] == 7
    # the same command again: every fold reused, nothing trained, no throughput line
    code, stdout, err = glfnet(capsys, *argv, "--no-report")
    assert code == 0 and "7 folds reused" in stdout and "trained" not in stdout


def test_ray_address_needs_the_ray_backend(flat_dir, tmp_path, capsys):
    code, _, err = glfnet(capsys, "loso", flat_dir, "--out", tmp_path / "r", "--ray-address", "auto")
    assert code == 2
    assert "--ray-address auto names a Ray cluster, but --backend is local: add --backend ray" in err
    with pytest.raises(ConfigError, match="`ray_address` auto names a Ray cluster"):
        FAST.replace(ray_address="auto").validate()


def test_an_address_where_no_cluster_answers_is_a_clear_error(tiny_set, monkeypatch):
    """Ray would retry such an address for minutes; glfnet says at once that nothing answers."""
    ray = pytest.importorskip("ray")
    from glfnet.eval import backends

    assert backends._unreachable("auto") is None
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `glfnet loso`
    cfg = FAST.replace(backend="ray", ray_address="127.0.0.1:1")
    with pytest.raises(
        ConfigError, match=r"Ray cluster at `ray_address` 127.0.0.1:1 \(nothing answers there"
    ):
        run_units(tiny_set, cfg, [[(0, loso_folds(tiny_set.samples)[0])]], runner.train_unit, print)


def test_the_ray_backend_without_ray_says_how_to_install_it(flat_dir, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    code, _, err = glfnet(capsys, "loso", flat_dir, "--out", tmp_path / "r", "--backend", "ray")
    assert code == 2 and "--backend ray needs Ray: pip install 'glfnet[ray]'" in err
    assert not (tmp_path / "r").exists()  # stopped before anything was written


def test_throughput_on_screen_and_in_metrics_json(tmp_path):
    from glfnet.cli.messages import duration
    from glfnet.cli.progress import throughput_line

    t = Throughput(backend="local", workers=2, folds_trained=40, seconds=192.0, sample_steps=470400)
    assert throughput_line(t) == "trained 40 folds in 3 min 12 s: 2,450 training samples/s (local, 2 workers)"
    assert [duration(s) for s in (12.34, 61, 7500)] == ["12.3 s", "1 min 1 s", "2 h 05 min"]
    assert Throughput.from_dict(t.to_dict()) == t and t.to_dict()["samples_per_second"] == 2450.0
    old = {"protocol": "loso", "model": "m", "seeds": [0], "classes": ["a"], "honest": {}}
    assert Metrics.from_dict(old).throughput is None  # a metrics.json of an earlier version
    assert Metrics.from_dict(old).to_dict()["throughput"] is None
