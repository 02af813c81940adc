"""The command line's one contract (help, errors, validation before anything starts) and the
library pieces the commands call: ablation variants, allowed values, model options."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from clirun import glfnet
from glfnet.cli.messages import flagify, plural
from glfnet.cli.options import parse_int_list
from glfnet.config import Config, build_config
from glfnet.data.digest import data_digest
from glfnet.data.flowsets import load_flowset
from glfnet.errors import ConfigError, DataError
from glfnet.eval.runner import config_diff

SRC = Path(__file__).resolve().parents[1] / "src" / "glfnet"


def _commands() -> list[list[str]]:
    """Every command path, prepare's sub-commands included."""
    from glfnet.cli.main import app

    paths = [[c.name] for c in app.registered_commands]
    for group in app.registered_groups:
        paths.append([group.name])
        paths += [[group.name, c.name] for c in group.typer_instance.registered_commands]
    return paths


# ---------------------------------------------------------------------------- help


def test_commands_listed_in_workflow_order(capsys):
    code, out, _ = glfnet(capsys, "--help")
    assert code == 0
    listed = re.findall(r"^│ (\w+) ", out.split("Commands")[1], re.M)
    assert listed[:3] == ["prepare", "inspect", "loso"] and listed[-1] == "demo"


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_follows_the_contract(capsys, command):
    code, out, _ = glfnet(capsys, *command, "--help")
    assert code == 0
    assert "<bool>" not in out  # plain flags take no value
    assert "list[" not in out  # repeatable options and argument lists: their element's type
    assert "{" not in re.search(r"Usage: .*", out).group(0)  # usage line: DATA, not {data}
    assert "[default: (" not in out  # one way to show a default
    assert "{models}" not in out and "{model_options}" not in out  # placeholders filled


def test_starting_the_cli_imports_neither_torch_nor_opencv():
    code = "import sys\nfrom glfnet.cli.main import app\nprint(sorted({'torch', 'cv2'} & set(sys.modules)))\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_help_derives_choices_and_defaults(capsys):
    from glfnet.models import list_models

    _, out, _ = glfnet(capsys, "loso", "--help")
    for field in ("loss", "protocol", "device"):
        assert "<" + "|".join(Config.choices(field)) + ">" in out
        assert f"[default: {getattr(Config, field)}]" in out
    assert "[default: 0]" in out and f"[default: {Config.epochs}]" in out
    assert all(name in out for name in list_models())
    assert "fusion=aff|concat|sum" in out  # the model's own Literal, via the registry


# the commands whose options come from one table (cli/options.py)
TRAINING_COMMANDS = ("loso", "ablate", "train", "tune", "demo")
# one flag, two meanings (a run directory, a model directory, the demo's folder; train's
# training seed, the demo's data seed): declared by each command
PER_COMMAND = {"--out", "--seed"}
# loso's options that concern the evaluation, not one final model
EVALUATION_ONLY = {"--seeds", "--protocol", "--oracle", "--jobs", "--backend", "--ray-address"}
EVALUATION_ONLY |= {"--save-checkpoints", "--no-report"}


def _options(command: str) -> dict:
    """{long flag: click parameter} of ``glfnet COMMAND``."""
    from typer.main import get_command

    from glfnet.cli.main import app

    params = get_command(app).commands[command].params
    return {max(p.opts, key=len): p for p in params if p.param_type_name == "option"}


def test_a_flag_reads_the_same_in_every_command(capsys):
    from glfnet.cli.contract import fill_help

    declared: dict[str, dict[str, tuple]] = {}
    for command in TRAINING_COMMANDS:
        for flag, p in _options(command).items():
            if flag not in PER_COMMAND:
                declared.setdefault(flag, {})[command] = (p.help, p.show_default, p.default)
    shared = {flag: by_command for flag, by_command in declared.items() if len(by_command) > 1}
    assert {"--epochs", "--seeds", "--config", "--device", "--jobs", "--labels", "--quiet"} <= set(shared)
    for flag, by_command in shared.items():
        assert len(set(by_command.values())) == 1, (flag, by_command)
    for command in ("loso", "ablate", "train"):  # and so it reads on screen
        _, out, _ = glfnet(capsys, command, "--help")
        text = " ".join(out.replace("│", " ").split())
        for flag, by_command in shared.items():
            if command in by_command:
                assert " ".join(fill_help(by_command[command][0]).split()) in text, (command, flag)


def test_train_takes_the_training_options_of_loso():
    assert set(_options("loso")) - EVALUATION_ONLY <= set(_options("train"))


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--epochs", "abc"], "--epochs expects a whole number, got 'abc'"),
        (["--lr", "fast"], "--lr expects a number, got 'fast'"),
        (["--loss", "xx"], "--loss: 'xx' is not allowed; choose cb | ce"),
        (["--seeds", "4-0"], "--seeds: 4-0 is a reversed range; write 0-4"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--batch-size", "1"], "--batch-size must be at least 2, got 1"),
        (
            ["--model", "ststnet", "--model-arg", "fusion=concat"],
            "model `ststnet`: it has no option `fusion`; its options are: img_size, widths, drop_rate",
        ),
        (["--model-arg", "fusion=foo"], "option `fusion`: 'foo' is not allowed; choose aff | concat"),
    ],
)
def test_errors_name_flags(flat_dir, tmp_path, capsys, argv, message):
    code, out, err = glfnet(capsys, "loso", flat_dir, "--out", tmp_path / "r", *argv)
    assert code == 2 and message in err, err
    assert err.startswith("error: ") and "Input should be" not in err
    assert "Traceback" not in err and "__init__()" not in err
    assert "folds" not in out  # no progress bar before an error
    assert not (tmp_path / "r").exists()  # nothing written


def _quick_loso(data: Path, out: Path, *extra: str) -> list:
    """`glfnet loso` arguments of a quick run: STSTNet, one epoch, no report."""
    return ["loso", data, "--model", "ststnet", "--epochs", "1", "--out", out, "--no-report", *extra]


@pytest.mark.slow
def test_rejected_model_arg_leaves_nothing_behind(flat_dir, tmp_path, capsys):
    """Defect 1: the corrected command is not refused as 'a different configuration'."""
    run = _quick_loso(flat_dir, tmp_path / "r", "--quiet")
    code, _, err = glfnet(capsys, *run, "--model-arg", "widths=foo")
    assert code == 2 and not (tmp_path / "r").exists()
    assert "model `ststnet` option `widths` expects a list of integers, got 'foo'" in err
    code, _, err = glfnet(capsys, *run)
    assert code == 0, err


@pytest.mark.slow
def test_different_configuration_error_comes_without_a_bar(flat_dir, tmp_path, capsys):
    run = ["loso", flat_dir, "--model", "ststnet", "--out", tmp_path / "r", "--no-report"]
    assert glfnet(capsys, *run, "--epochs", "1", "--quiet")[0] == 0
    code, out, err = glfnet(capsys, *run, "--epochs", "2")
    assert code == 2 and "different configuration" in err and "--overwrite" in err
    assert "folds" not in out
    # the check `glfnet demo` uses to start its own stale run again instead of refusing it
    digest = data_digest(load_flowset(flat_dir))
    assert config_diff(tmp_path / "r", build_config(model="ststnet", epochs=1, report=False), digest) == []
    assert config_diff(tmp_path / "r", build_config(model="ststnet", epochs=2), digest) == ["epochs: 1 -> 2"]
    assert config_diff(tmp_path / "nothing-here", build_config(), digest) == []


def test_a_run_of_an_earlier_preset_revision_is_not_resumed_with_the_revised_network(tmp_path):
    """The same configuration names another network once its preset is revised (glfnet_t
    revision 3 added the stem skip): a run directory written before must not be continued
    with the new network, which would mix two networks' folds in one result."""
    from glfnet.config import Config, dump_yaml
    from glfnet.models.registry import preset_revision

    cfg = build_config(report=False)
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml(cfg, {"data_digest": "d"}))  # revision unrecorded
    assert preset_revision(Config.model) > 2
    diff = config_diff(run, cfg, "d")
    assert len(diff) == 1 and diff[0].startswith(f"model revision: {Config.model} not recorded ->")
    extra = {"data_digest": "d", "model_revision": preset_revision(cfg.model)}
    (run / "config.yaml").write_text(dump_yaml(cfg, extra))
    assert config_diff(run, cfg, "d") == []
    assert build_config(run / "config.yaml") == cfg  # the recorded revision reads back
    sst = cfg.replace(model="ststnet")  # an unrevised preset: revision 1, recorded or not
    (run / "config.yaml").write_text(dump_yaml(sst, {"data_digest": "d"}))
    assert config_diff(run, sst, "d") == []


@pytest.mark.slow
def test_loso_json(flat_dir, tmp_path, capsys):
    code, out, err = glfnet(capsys, *_quick_loso(flat_dir, tmp_path / "r", "--json"))
    assert code == 0, err
    metrics = json.loads(out)  # stdout holds the JSON object only
    assert metrics["honest"]["full"]["n"] == metrics["n_samples"]
    assert "samples" in err and "results in" in err


def test_labels_refused_where_they_do_not_apply(tmp_path, capsys, tiny_rows, tiny_flows, flat_dir):
    """Defect 5: --labels is not silently ignored for a per-subject tree (or a cache)."""
    from glfnet.data.flowsets import load_flowset
    from glfnet.data.synthflow import write_tree

    write_tree(tmp_path / "tree", tiny_rows, tiny_flows)
    code, _, err = glfnet(capsys, "inspect", tmp_path / "tree", "--labels", flat_dir / "labels.csv")
    assert code == 2 and "--labels" in err and "per-subject LOSO tree" in err
    with pytest.raises(DataError, match="`labels`"):
        load_flowset(tmp_path / "tree", labels=flat_dir / "labels.csv")


def test_video_decoder_says_nothing_of_its_own(tmp_path):
    """Defect 8: FFmpeg's own 'moov atom not found' line does not precede the clean error."""
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 100)
    code = (
        "from glfnet.preprocess.media import read_video\n"
        "from glfnet.errors import DataError\n"
        f"try:\n    read_video({str(bad)!r})\nexcept DataError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "cannot read" in r.stdout and r.stderr == ""


# ---------------------------------------------------------------------------- pieces


def test_flagify():
    assert (
        flagify("pass `labels` or `align=False`; `protocol=all`; `cb_beta`")
        == "pass --labels or --no-align; --protocol all; `cb_beta`"
    )


def test_parse_int_list_and_plural():
    assert parse_int_list("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(ConfigError, match="reversed range"):
        parse_int_list("4-0")
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"


def test_choices_are_spelled_once():
    hints = typing.get_type_hints(Config)
    literal = [f for f, h in hints.items() if typing.get_origin(h) is typing.Literal]
    assert {"protocol", "loss", "input_norm", "device"} <= set(literal)
    for field in literal:
        allowed = typing.get_args(hints[field])
        assert Config.choices(field) == allowed
        with pytest.raises(ConfigError, match=" | ".join(allowed).replace("|", r"\|")):
            build_config(**{field: "nope"})


def test_model_options_checked_without_touching_the_random_state():
    import torch

    from glfnet.models import list_models
    from glfnet.models.registry import check_model_args, model_description, model_options

    state = torch.random.get_rng_state()
    check_model_args("glfnet", {"fusion": "sum"}, input_size=28)
    assert torch.equal(state, torch.random.get_rng_state())
    assert "fusion" in model_options("glfnet_t") and "num_classes" not in model_options("glfnet_t")
    with pytest.raises(ConfigError, match="`glfnet_t`, option `local_branch`"):
        check_model_args("glfnet_t", {"local_branch": "maybe"})
    assert all(model_description(n) for n in list_models())


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("ststnet", {"widths": "foo"}, "option `widths` expects a list of integers, got 'foo'"),
        ("ststnet", {"widths": [3, "a"]}, "option `widths` expects a list of integers"),
        ("glfnet_t", {"attn_reduction": 2.5}, "option `attn_reduction` expects an integer, got 2.5"),
        ("glfnet_t", {"drop_rate": "high"}, "option `drop_rate` expects a number, got 'high'"),
        ("glfnet_s", {"strides": [1, True]}, "option `strides` expects a list of integers"),
    ],
)
def test_model_option_values_are_checked_against_their_types(name, options, expected):
    """A wrong value type is named in words, not by Python's own message (e.g. 'not all
    arguments converted during string formatting' for widths='foo')."""
    from glfnet.models.registry import check_model_args

    with pytest.raises(ConfigError, match=f"model `{name}` {re.escape(expected)}"):
        check_model_args(name, options)
    check_model_args("ststnet", {"widths": [4, 4, 4], "drop_rate": 0})  # an int is a number


def test_ablation_variants_are_library():
    from glfnet.eval.ablation import VARIANTS, variant_configs

    cfgs = variant_configs(Config(model="ststnet", epochs=3), ["full", "ststnet", "concat"])
    assert list(cfgs) == ["full", "concat", "ststnet"]  # in the order of VARIANTS
    assert cfgs["full"].model == Config.model and cfgs["concat"].model_args == {"fusion": "concat"}
    assert cfgs["ststnet"].model == "ststnet" and all(c.epochs == 3 for c in cfgs.values())
    assert next(iter(VARIANTS)) == "full"
    with pytest.raises(ConfigError, match="unknown variant"):
        variant_configs(Config(), ["nope"])


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
    }
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


@pytest.mark.parametrize("package", ["data", "preprocess", "config.py"])
def test_library_messages_name_parameters_not_flags(package):
    root = SRC / package
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    flags = [
        (f.name, line, text)
        for f in files
        for line, text in _string_constants(f)
        if re.search(r"(?<![\w`-])--[a-z]", text) and "glfnet " not in text
    ]
    assert flags == []


def test_prepare_plan_is_library(tmp_path):
    """Reading, selecting and the hints about them come back as values, not prints."""
    import rawfixtures as rf
    from glfnet.preprocess.prepare import Source, count_warnings, plan_prepare

    rf.write_casme2(
        tmp_path,
        [rf.Clip(1, "EP02_01f", "happiness", onset=1, apex=3, offset=5, motion=(1, 0))],
        kind="tiny",
        variant="cropped",
    )
    plan = plan_prepare([Source("casme2", tmp_path)])
    assert plan.protocol.name == "casme2-5" and len(plan.selection.included) == 1
    hint = next(w for w in plan.warnings if "pre-cropped" in w)
    assert "`align=False`" in hint and "--no-align" in flagify(hint)
    assert any("the complete database gives" in w for w in count_warnings(plan.selection))
    with pytest.raises(ConfigError, match="`protocol` samm-5 does not use casme2"):
        plan_prepare([Source("casme2", tmp_path)], protocol="samm-5")


def test_hints_point_the_right_way(tmp_path, capsys):
    """`inspect` on a clip's raw frames points to `prepare`, not to a label file; `report` on
    a flow cache says to evaluate it first, not to write a run into the cache."""
    from PIL import Image

    clip = tmp_path / "009_5_1"
    clip.mkdir()
    for i in range(1936, 1948):
        Image.new("RGB", (8, 8)).save(clip / f"009_{i:05d}.jpg")
    code, _, err = glfnet(capsys, "inspect", str(clip))
    assert code == 2 and "frames of one clip" in err and "glfnet prepare" in err and "--labels" not in err
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cache.json").write_text("{}")
    code, _, err = glfnet(capsys, "report", str(cache))
    assert code == 2 and "flow cache" in err and "glfnet loso" in err and "into it" not in err
