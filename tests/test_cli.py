"""The command line: front-door behaviour, clean errors with non-zero exits, no tracebacks."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clirun import glfnet


def test_help_lists_commands(capsys):
    code, out, _ = glfnet(capsys, *["--help"])
    assert code == 0
    for cmd in ("inspect", "loso", "prepare", "report", "train", "predict", "demo"):
        assert cmd in out


@pytest.mark.slow
def test_loso_end_to_end(flat_dir, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = glfnet(
        capsys,
        *[
            "loso",
            str(flat_dir),
            "--model",
            "ststnet",
            "--epochs",
            "1",
            "--seeds",
            "0,1",
            "--oracle",
            "--out",
            str(out_dir),
            "--quiet",
            "--no-report",
        ],
    )
    assert code == 0, err
    assert "Leak-free results" in out and "oracle (test-selected, optimistic)" in out
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["seeds"] == [0, 1] and m["oracle"] is not None
    assert m["honest"]["full"]["n"] == m["n_samples"]
    # the same command again resumes: nothing retrained, same numbers
    code, out2, _ = glfnet(
        capsys,
        *[
            "loso",
            str(flat_dir),
            "--model",
            "ststnet",
            "--epochs",
            "1",
            "--seeds",
            "0,1",
            "--oracle",
            "--out",
            str(out_dir),
            "--no-report",
        ],
    )
    assert code == 0 and "14 folds reused from an earlier run" in out2
    assert "finished earlier" not in out2  # one summary line, not one line per fold
    assert "1 epoch," in out2 and "1 epochs" not in out2
    assert json.loads((out_dir / "metrics.json").read_text())["honest"] == m["honest"]


@pytest.mark.slow
def test_config_file_and_flags(flat_dir, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: ststnet\nepochs: 2\nbatch_size: 8\nseeds: [3]\n")
    code, _, err = glfnet(
        capsys,
        *[
            "loso",
            str(flat_dir),
            "--config",
            str(cfg),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
            "--no-report",
        ],
    )
    assert code == 0, err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["config"]["epochs"] == 1 and m["config"]["batch_size"] == 8 and m["seeds"] == [3]
    cfg.write_text("epochz: 2\n")
    code, _, err = glfnet(capsys, *["loso", str(flat_dir), "--config", str(cfg)])
    assert code == 2 and "unknown option(s) epochz" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "resnet"], "--model: 'resnet' is not allowed"),
        (["--seeds", "a,b"], "--seeds"),
        (["--device", "cuda"], "CUDA"),
        (["--protocol", "lodo", "--loss", "xx"], "loss"),
        (["--model-arg", "fusion"], "KEY=VALUE"),
    ],
)
def test_bad_options(flat_dir, tmp_path, capsys, argv, message):
    if "--device" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code, _, err = glfnet(
        capsys, *["loso", str(flat_dir), "--out", str(tmp_path / "r"), "--quiet", "--epochs", "1", *argv]
    )
    assert code == 2 and message in err and "Traceback" not in err


def _truncate(d):
    p = sorted(d.glob("*.png"))[0]
    p.write_bytes(p.read_bytes()[:50])
    return p.name


def _bad_label(d):
    lines = (d / "labels.csv").read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:3] + ["5"] + lines[2].split(",")[4:])
    (d / "labels.csv").write_text("\n".join(lines) + "\n")
    return "labels.csv line 3"


def _duplicate(d):
    lines = (d / "labels.csv").read_text().splitlines()
    (d / "labels.csv").write_text("\n".join(lines + [lines[5]]) + "\n")
    return lines[5].split(",")[2]


def _no_image(d):
    p = sorted(d.glob("*.png"))[3]
    p.unlink()
    return p.name.replace(" .png", "")


def _no_row(d):
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(d / "s42_s42_po_01 .png")
    return "s42_s42_po_01 .png"


def _mixed(d):
    p = sorted(d.glob("*.png"))[4]
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(p)
    return p.name


@pytest.mark.parametrize("spoil", [_truncate, _bad_label, _duplicate, _no_image, _no_row, _mixed])
@pytest.mark.slow
def test_bad_inputs_stop_with_a_named_message(copy_flat, tmp_path, capsys, spoil):
    named = spoil(copy_flat)
    args = [
        "loso",
        str(copy_flat),
        "--model",
        "ststnet",
        "--epochs",
        "1",
        "--quiet",
        "--no-report",
        "--out",
        str(tmp_path / "r"),
    ]
    code, _, err = glfnet(capsys, *args)
    assert code == 2 and named in err and "--skip-bad" in err and "Traceback" not in err
    code, _, err = glfnet(capsys, *["inspect", str(copy_flat)])
    assert code == 1
    code, _, err = glfnet(capsys, *args, "--skip-bad")
    assert code == 0 and "excluded" in err and named.split(" ")[0][:8] in err


def test_empty_folder(tmp_path, capsys):
    code, _, err = glfnet(capsys, *["inspect", str(tmp_path)])
    assert code == 2 and "holds no flow images" in err


def test_inspect_json(flat_dir, capsys, tiny_rows):
    code, out, _ = glfnet(capsys, *["inspect", str(flat_dir), "--json"])
    assert code == 0
    info = json.loads(out)
    assert list(info)[:6] == ["n_samples", "n_subjects", "databases", "classes", "image_shape", "problems"]
    assert info["n_samples"] == len(tiny_rows) and info["problems"] == []
    assert info["databases"] == {
        db: sum(r["database"] == db for r in tiny_rows) for db in ("casme2", "samm", "smic")
    }


@pytest.mark.slow
def test_process_exit_code_and_no_traceback(tmp_path):
    """The installed entry point: a user error gives exit 2 and one clear line."""
    r = subprocess.run(
        [sys.executable, "-m", "glfnet", "loso", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_set_size_counts_subjects_per_database():
    """Equal subject names in two databases are two subjects, as the folds count them."""
    import pandas as pd

    from glfnet.cli.steps import set_size

    class Set:
        samples = pd.DataFrame({"database": ["samm", "samm", "casme2"], "subject": ["006", "006", "006"]})

        def __len__(self):
            return 3

    assert set_size(Set()) == "3 samples, 2 subjects"
