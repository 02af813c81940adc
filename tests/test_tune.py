"""`glfnet tune`: menus checked before anything runs, inner folds, the rule, resume, reports.
The leak-freedom of nested selection is proved in tests/test_leakage.py."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from clirun import glfnet
from glfnet.config import Config
from glfnet.data.digest import data_digest
from glfnet.errors import ConfigError, DataError
from glfnet.eval import runner, tune
from glfnet.eval.menu import parse_menu, training_cost
from glfnet.eval.rundir import RunDir
from glfnet.eval.splits import loso_folds, subject_keys

BASE = Config(model="glfnet_s", epochs=1, batch_size=16, ensemble=1, jobs=1)
RECIPES = [
    {"name": "glfnet", "model": "glfnet_s"},
    {"name": "ststnet", "model": "ststnet", "epochs": 2},
    {"name": "both", "average": ["glfnet", "ststnet"]},
]


def _menu(recipes=RECIPES, base=BASE):
    return parse_menu({"recipes": recipes}, base)


# --------------------------------------------------------------------------- menus


@pytest.mark.parametrize(
    "recipes, words",
    [
        ([], ["non-empty"]),
        ([{"model": "ststnet"}], ["recipe 1", "name"]),
        ([{"name": "a", "model": "ststnet"}, {"name": "a", "model": "glfnet_s"}], ["'a'", "twice"]),
        ([{"name": "a", "epochz": 3}], ["recipe 'a'", "unknown option 'epochz'"]),
        ([{"name": "a", "epochs": "ten"}], ["recipe 'a'", "'epochs' expects a whole number", "'ten'"]),
        ([{"name": "a", "epochs": 0}], ["recipe 'a'", "'epochs' must be at least 1"]),
        ([{"name": "a", "model": "resnet"}], ["recipe 'a'", "resnet"]),
        ([{"name": "a", "loss": "hinge"}], ["recipe 'a'", "'loss'", "hinge"]),
        ([{"name": "a", "model_args": {"fusion": "max"}}], ["recipe 'a'", "fusion", "max"]),
        ([{"name": "a", "device": "cuda"}], ["recipe 'a'", "'device' is not a recipe option"]),
        ([{"name": "a", "seeds": [1]}], ["recipe 'a'", "'seeds' is not a recipe option"]),
        ([{"name": "a"}, {"name": "b", "average": ["a", "c"]}], ["recipe 'b'", "'c'"]),
        ([{"name": "a"}, {"name": "b", "average": ["a"]}], ["recipe 'b'", "two or more"]),
        (
            [{"name": "a"}, {"name": "b", "average": ["a", "a"], "epochs": 3}],
            ["recipe 'b'", "no training options"],
        ),
        ([{"name": "a b"}], ["recipe 1", "'a b'"]),
    ],
)
def test_bad_menus_are_refused_naming_the_recipe_and_key(recipes, words):
    with pytest.raises(ConfigError) as e:
        _menu(recipes)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_menu_needs_a_recipes_list_and_nothing_else():
    for data in (None, [1, 2], {"recipe": []}, {"recipes": [{"name": "a"}], "seeds": [0]}):
        with pytest.raises(ConfigError, match="recipes"):
            parse_menu(data, BASE)


def test_a_menu_of_averages_only_is_refused():
    with pytest.raises(ConfigError):
        _menu([{"name": "b", "average": ["x", "y"]}])


def test_recipes_start_from_the_base_and_keep_what_they_say():
    menu = _menu()
    assert menu.names == ["glfnet", "ststnet", "both"]
    assert menu["ststnet"].config.epochs == 2 and menu["ststnet"].config.batch_size == BASE.batch_size
    assert [p.name for p in menu.parts("both")] == ["glfnet", "ststnet"] and not menu["both"].trained
    assert menu.to_dict()["recipes"][1] == {"name": "ststnet", "model": "ststnet", "epochs": 2}


def test_training_cost_counts_networks_epochs_and_flops():
    one = training_cost(Config(model="ststnet", epochs=10, ensemble=1))
    assert training_cost(Config(model="ststnet", epochs=20, ensemble=2)) == pytest.approx(4 * one)
    assert training_cost(Config(model="glfnet_t", epochs=10, ensemble=1)) > 10 * one


def test_the_pre_registered_menu_loads():
    from pathlib import Path

    from glfnet.eval.menu import load_menu

    path = Path(__file__).resolve().parents[1] / "configs" / "menu-megc2019.yaml"
    menu = load_menu(path, Config())
    assert menu.names[:2] == ["glfnet-default", "ststnet"]
    assert menu["glfnet-default"].config == Config(model="glfnet_t")


# --------------------------------------------------------------------------- inner folds


def test_inner_groups_deal_every_database_into_every_group(tiny_set):
    samples = tiny_set.samples
    groups = tune.inner_groups(samples, 2, seed=0)
    keys = subject_keys(samples)
    assert set(groups) == set(keys)
    for db in samples["database"].unique():
        mine = {groups[k] for k in set(keys[samples["database"] == db])}
        assert mine == {0, 1}  # every database of the fixture has two subjects or more
    sizes = np.bincount(list(groups.values()))
    assert sizes.max() - sizes.min() <= 1
    shuffled = samples.sample(frac=1.0, random_state=3)
    assert tune.inner_groups(shuffled, 2, seed=0) == groups  # names and seed only
    assert any(tune.inner_groups(samples, 2, seed=s) != groups for s in range(1, 6))


def test_inner_folds_cover_the_training_subjects_once_and_share_one_training(tiny_set):
    samples = tiny_set.samples
    groups = tune.inner_groups(samples, 2, seed=0)
    folds = loso_folds(samples)
    shared = {}
    for fold in folds:
        splits = tune.inner_splits(samples, fold, groups, 2)
        used = np.concatenate([s.use_idx for s in splits])
        assert sorted(used) == sorted(fold.train_idx)  # every training row scored once
        names = [s.name for s in splits]
        assert sum(not n.startswith(fold.name) for n in names) == 1  # one shared training
        for s in splits:
            if s.name.startswith("g"):
                shared.setdefault(s.name, s.train_idx.tolist())
                assert s.train_idx.tolist() == shared[s.name]
    assert set(shared) == {"g0", "g1"}


def test_too_few_training_subjects_for_inner_folds_are_refused(tiny_set):
    samples = tiny_set.samples
    two = samples[samples["subject"].isin(samples["subject"].unique()[:2])].reset_index(drop=True)
    groups = tune.inner_groups(two, 2, seed=0)
    with pytest.raises(DataError, match="too few subjects"):
        tune.inner_splits(two, loso_folds(two)[0], groups, 2)


# --------------------------------------------------------------------------- the rule


def _row(recipe, uf1, se, cost):
    return {"recipe": recipe, "uf1": uf1, "se": se, "cost": cost, "gap": 0.0, "near_tie": False}


def _table(rows):
    best = max(r["uf1"] for r in rows)
    for r in rows:
        r["gap"] = best - r["uf1"]
        r["near_tie"] = r["gap"] <= r["se"]
    return rows


def test_one_se_takes_the_cheapest_near_tie_and_best_takes_the_top():
    rows = _table([_row("big", 0.80, 0.0, 2.0), _row("small", 0.78, 0.03, 0.1), _row("mid", 0.70, 0.05, 1.0)])
    assert tune.choose(rows, "one-se") == "small"  # 0.02 behind, within its 0.03
    assert tune.choose(rows, "best") == "big"
    rows = _table([_row("big", 0.80, 0.0, 2.0), _row("small", 0.74, 0.03, 0.1)])
    assert tune.choose(rows, "one-se") == "big"  # 0.06 behind: more than the noise
    rows = _table([_row("a", 0.80, 0.0, 1.0), _row("b", 0.80, 0.0, 1.0)])
    assert tune.choose(rows, "one-se") == tune.choose(rows, "best") == "a"  # menu order on ties


def test_the_paired_standard_error_is_zero_between_equal_predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    subjects = np.repeat(np.arange(12), 5)
    same = rng.integers(0, 3, 60)
    other = np.where(rng.random(60) < 0.3, rng.integers(0, 3, 60), same)
    se = tune.paired_se(y, {"a": same, "b": same.copy(), "c": other}, subjects, "a", 3, rng)
    assert se["a"] == 0.0 and se["b"] == 0.0 and se["c"] > 0


# --------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tune_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "run"
    metrics = tune.run_tune(tiny_set, BASE.replace(seeds=[0]), _menu(), tune.TuneSettings(), out)
    return out, metrics


@pytest.mark.slow
def test_a_tune_run_writes_a_run_directory_with_its_choices(tune_run, tiny_set):
    out, m = tune_run
    assert m.model == tune.TUNE_MODEL and "nested" in m.label("honest")
    folds = loso_folds(tiny_set.samples)
    assert m.selection["rule"] == "one-se" and sum(m.selection["choices"].values()) == len(folds)
    pred = pd.read_csv(out / "predictions.csv")
    assert set(pred["recipe"]) <= {"glfnet", "ststnet", "both"} and len(pred) == len(tiny_set)
    sel = pd.read_csv(out / "selection.csv")
    assert len(sel) == 3 * len(folds) and sel.groupby("fold")["chosen"].sum().eq(1).all()
    assert yaml.safe_load((out / "config.yaml").read_text())["tune"]["menu"][0]["name"] == "glfnet"


@pytest.mark.slow
def test_the_final_model_is_the_chosen_recipes_loso_fold(tune_run, tiny_set, tmp_path):
    """A fold that chose a trained recipe predicts exactly what `glfnet loso` of that recipe
    predicts for the fold: same training rows, same seed, same network."""
    from glfnet.eval import runner

    out, _ = tune_run
    rec = next(r for r in RunDir(out).fold_records(0) if r.selection["chosen"] != "both")
    cfg = _menu()[rec.selection["chosen"]].config
    fold = next(f for f in loso_folds(tiny_set.samples) if f.name == rec.fold)
    loso, _ = runner.run_fold(tiny_set, fold, cfg, seed=0)
    assert loso.probs == rec.probs


@pytest.mark.slow
def test_a_killed_tune_run_resumes_and_equals_an_uninterrupted_one(tune_run, tiny_set, tmp_path, monkeypatch):
    out, _ = tune_run
    real, calls = tune.train_tune_unit, []

    def dies(fs, cfg, unit):
        calls.append(unit)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(fs, cfg, unit)

    monkeypatch.setattr(tune, "train_tune_unit", dies)
    again = tmp_path / "again"
    base = BASE.replace(seeds=[0])
    with pytest.raises(KeyboardInterrupt):
        tune.run_tune(tiny_set, base, _menu(), tune.TuneSettings(), again)
    monkeypatch.setattr(tune, "train_tune_unit", real)
    steps = []
    tune.run_tune(tiny_set, base, _menu(), tune.TuneSettings(), again, progress=lambda *s: steps.append(s))
    assert steps[0][0] == 6 and steps[0][2] == "starting"  # six trainings kept
    assert steps[-1][0] == steps[-1][1]
    a, b = pd.read_csv(out / "predictions.csv"), pd.read_csv(again / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (out / "selection.csv").read_text() == (again / "selection.csv").read_text()


def test_a_tune_run_refuses_a_folder_of_another_menu(tiny_set, tmp_path):
    out, base = tmp_path / "run", BASE.replace(model="ststnet", epochs=1)

    def run(recipes, overwrite=False):
        tune.run_tune(tiny_set, base, _menu(recipes), tune.TuneSettings(), out, overwrite)

    run([{"name": "s"}, {"name": "t", "epochs": 2}])
    with pytest.raises(ConfigError, match="menu"):
        run([{"name": "s"}])
    # its folds are the chosen recipes': `glfnet loso` of the base configuration may not reuse them
    diff = runner.config_diff(out, base, data_digest(tiny_set))
    assert diff and "tune" in diff[0]
    # --overwrite replaces it even where its config.yaml names a removed option
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**cfg, "tta": True}))
    run([{"name": "s"}], overwrite=True)
    assert yaml.safe_load((out / "config.yaml").read_text())["tune"]["menu"] == [{"name": "s"}]


@pytest.mark.parametrize("option", ["oracle", "save_checkpoints"])
def test_a_tune_run_refuses_what_its_finals_would_not_write(tiny_set, tmp_path, option):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=option):
        tune.run_tune(tiny_set, BASE.replace(seeds=[0], **{option: True}), _menu(), tune.TuneSettings(), out)
    assert not out.exists()


def test_the_plan_counts_shared_and_own_inner_trainings(tiny_set, tmp_path):
    plan = tune.plan_tune(tiny_set, BASE.replace(seeds=[0, 1]), _menu(), tune.TuneSettings(), tmp_path / "x")
    n_folds = len(loso_folds(tiny_set.samples))
    assert [r["trainings"] for r in plan.recipes] == [2 * (2 + n_folds)] * 2  # K shared + 68 x (K-1)
    assert plan.finals_todo == 2 * n_folds and plan.final_seconds[0] <= plan.final_seconds[1]
    assert all(r["seconds"] > 0 for r in plan.recipes)
    assert not (tmp_path / "x").exists()  # planning writes nothing


# --------------------------------------------------------------------------- command line


def _write_menu(tmp_path, recipes):
    p = tmp_path / "menu.yaml"
    p.write_text(yaml.safe_dump({"recipes": recipes}))
    return p


def test_cli_refuses_a_bad_menu_before_writing_anything(flat_dir, tmp_path, capsys):
    menu = _write_menu(tmp_path, [{"name": "a", "model": "ststnet"}, {"name": "b", "epochs": -1}])
    out = tmp_path / "run"
    code, _, err = glfnet(capsys, "tune", str(flat_dir), "--menu", str(menu), "--out", str(out))
    assert (
        code == 2
        and "recipe 'b'" in err
        and "'epochs'" in err
        and "--epochs" not in err
        and "Traceback" not in err
    )
    assert not out.exists()
    code, _, err = glfnet(capsys, "tune", str(flat_dir), "--menu", str(tmp_path / "none.yaml"))
    assert code == 2 and "none.yaml" in err


def test_cli_plan_prints_the_cost_and_trains_nothing(flat_dir, tmp_path, capsys):
    menu = _write_menu(
        tmp_path, [{"name": "s", "model": "ststnet", "epochs": 1}, {"name": "g", "model": "glfnet_s"}]
    )
    out = tmp_path / "run"
    code, text, err = glfnet(capsys, "tune", str(flat_dir), "--menu", str(menu), "--plan", "--out", str(out))
    assert code == 0, err
    assert "cost plan" in text and "inner trainings" in text and "final (chosen)" in text
    assert not out.exists()


@pytest.mark.slow
def test_cli_tune_end_to_end(flat_dir, tmp_path, capsys):
    menu = _write_menu(
        tmp_path,
        [{"name": "s", "model": "ststnet", "epochs": 1}, {"name": "s2", "model": "ststnet", "epochs": 2}],
    )
    out = tmp_path / "run"
    args = ["tune", str(flat_dir), "--menu", str(menu), "--out", str(out), "--jobs", "1", "--quiet"]
    code, text, err = glfnet(capsys, *args, "--json")
    assert code == 0, err
    m = json.loads(text)
    assert m["model"] == "tune" and sum(m["selection"]["choices"].values()) == m["n_folds"]
    assert (out / "report.html").exists() and "Nested selection" in (out / "report.md").read_text()
    shutil.copytree(out, tmp_path / "copy")
    code, text, err = glfnet(
        capsys, "compare", str(out), str(tmp_path / "copy"), "--out", str(tmp_path / "cmp")
    )
    assert code == 0, err
    assert "tune:" in text and "(chose " in (tmp_path / "cmp" / "comparison.md").read_text()
