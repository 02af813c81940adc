"""Options removed after commit 75f388f (glfnet.removed): files written before that name one
still read where it is at its no-op value, and stop with a message naming the file and the
option where it changed the training or the network. (Model directories: test_predict.py.)"""

import pytest
import yaml

from clirun import glfnet
from glfnet import removed
from glfnet.config import Config, build_config, dump_yaml
from glfnet.errors import ConfigError

# what a config.yaml of commit 75f388f recorded for the removed options, all at their defaults
OLD_DEFAULTS = {
    "tta": False,
    "mixup": 0.0,
    "swa_epochs": 0,
    "swa_lr": 0.25,
    "base_loss": "ce",
    "focal_gamma": 2.0,
}
OLD_MODEL_ARGS = {
    "region_halo": 0,
    "branch_stride": 2,
    "branch_block": "basic",
    "branch_drop": 0.0,
    "global_attn": "nonlocal",
}
ACTIVE = [
    ({"tta": True}, "`tta`"),
    ({"mixup": 0.4}, "`mixup`"),
    ({"swa_epochs": 8, "swa_lr": 0.25}, "`swa_epochs`"),
    ({"base_loss": "focal", "focal_gamma": 2.0}, "`base_loss`"),
    ({"model_args": {"fusion": "gate"}}, "`fusion` 'gate'"),
    ({"model_args": {"region_halo": 2}}, "`region_halo`"),
    ({"model_args": {"branch_stride": 1}}, "`branch_stride`"),
    ({"model_args": {"branch_block": "conv"}}, "`branch_block`"),
    ({"model_args": {"branch_drop": 0.3}}, "`branch_drop`"),
    ({"model_args": {"global_attn": "cbam"}}, "`global_attn`"),
    ({"model_args": {"global_attn": "none"}}, "`global_attn`"),
]


def _old_yaml(cfg: Config, **changes) -> str:
    """A config.yaml as commit 75f388f wrote it for ``cfg``, with ``changes``."""
    data = yaml.safe_load(dump_yaml(cfg, {"data_digest": "d", "model_revision": 1}))
    data.update(OLD_DEFAULTS)
    data["model_args"] = {**OLD_MODEL_ARGS, **data["model_args"]}
    for key, value in changes.items():
        data[key] = {**data[key], **value} if key == "model_args" else value
    return yaml.safe_dump(data, sort_keys=False)


def test_an_old_config_file_at_the_removed_defaults_reads_as_today(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text(_old_yaml(Config(epochs=7, model="glfnet_t")))
    assert build_config(p) == Config(epochs=7, model="glfnet_t")
    # options that acted only through another removed one are dropped while that one is off
    assert removed.config_options({"swa_lr": 0.5, "focal_gamma": 1.0}, "f") == {}


@pytest.mark.parametrize("changes, named", ACTIVE, ids=[n for _, n in ACTIVE])
def test_a_removed_option_that_acted_stops_naming_the_file_and_the_option(tmp_path, changes, named):
    p = tmp_path / "config.yaml"
    p.write_text(_old_yaml(Config(model="glfnet_t"), **changes))
    with pytest.raises(ConfigError) as e:
        build_config(p)
    msg = str(e.value)
    assert str(p) in msg and named in msg and "removed from glfnet in this version" in msg
    assert removed.LAST_COMMIT in msg


def test_a_removed_model_option_given_today_is_named_as_removed():
    with pytest.raises(ConfigError, match=r"no option `branch_drop` \(`branch_drop` was removed after"):
        build_config(model_args={"branch_drop": 0.3})
    with pytest.raises(ConfigError, match=r"'gate' is not allowed \('gate' was removed after .*\); choose"):
        build_config(model_args={"fusion": "gate"})


def test_a_run_directory_of_commit_75f388f_is_compared_without_its_removed_options(tmp_path):
    from glfnet.eval.runner import config_diff

    cfg = build_config(model="ststnet", epochs=1, report=False)
    (tmp_path / "config.yaml").write_text(_old_yaml(cfg))
    assert config_diff(tmp_path, cfg, "d") == []
    (tmp_path / "config.yaml").write_text(_old_yaml(cfg, tta=True))
    with pytest.raises(ConfigError, match=r"config.yaml: option `tta` \(set to True\) was removed"):
        config_diff(tmp_path, cfg, "d")


def test_a_menu_recipe_naming_a_removed_option():
    from glfnet.eval.menu import parse_menu

    menu = parse_menu({"recipes": [{"name": "a", "mixup": 0.0, "model_args": {"region_halo": 0}}]}, Config())
    assert menu["a"].options == {"model_args": {}}
    with pytest.raises(ConfigError, match=r"recipe 'a': option `mixup` \(set to 0.4\) was removed"):
        parse_menu({"recipes": [{"name": "a", "mixup": 0.4}]}, Config())


@pytest.mark.slow
def test_an_old_run_directory_resumes_and_one_that_used_a_removed_option_stops(flat_dir, tmp_path, capsys):
    run = ["loso", flat_dir, "--model", "ststnet", "--epochs", "1", "--out", tmp_path / "r", "--no-report"]
    assert glfnet(capsys, *run, "--quiet")[0] == 0
    path = tmp_path / "r" / "config.yaml"
    written = yaml.safe_load(path.read_text())
    assert not set(written) & set(OLD_DEFAULTS)
    cfg = Config(**{k: v for k, v in written.items() if k in Config().to_dict()})
    extra = {k: written[k] for k in ("data", "labels", "data_digest", "model_revision", "glfnet_version")}
    data = {**yaml.safe_load(_old_yaml(cfg)), **extra}
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # as commit 75f388f wrote it
    code, out, err = glfnet(capsys, *run)
    assert code == 0, err
    assert "reused from an earlier run" in out + err
    assert glfnet(capsys, *run[:-3], "--config", path, "--out", tmp_path / "again", "--quiet")[0] == 0
    path.write_text(yaml.safe_dump({**data, "tta": True}, sort_keys=False))
    code, out, err = glfnet(capsys, *run)
    assert code == 2 and str(path) in err and "`tta`" in err and "removed from glfnet in this version" in err
    code, _, err = glfnet(capsys, *run[:-3], "--config", path, "--out", tmp_path / "other")
    assert code == 2 and "`tta`" in err and "removed" in err and not (tmp_path / "other").exists()
