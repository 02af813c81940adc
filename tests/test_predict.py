"""Train once, predict anywhere (issue 4, part 3): `glfnet train`, `glfnet predict`, Recognizer
(glfnet.train.final, glfnet.train.modeldir, glfnet.infer, glfnet.preprocess.media).

One small synthetic CASME II set (3 subjects x 3 clips, glfnet.data.synthetic) is prepared into
a cache with `glfnet prepare` and one final model is trained on all of it. What the class
checks prove, honestly stated: the model has seen every clip in training, so recovering a
clip's class is NOT a measure of recognition. It proves that the prediction path (raw frames
-> face crop -> TV-L1 -> encoding -> network) repeats the training preprocessing: the
probabilities from raw frames equal those from the cached flow the model was trained on, so a
class the model learnt is recovered from an image pair, a frame folder and a video file.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from clirun import glfnet as cli
from glfnet.cli.main import main
from glfnet.config import Config
from glfnet.data import cache
from glfnet.errors import ConfigError, DataError, ModelFileError

# fixed, short schedule that fits 9 samples (no augmentation, higher lr) and one network per
# model directory (the default trains two; these tests read its weights as one); loso's
# defaults otherwise
FAST = (
    "ensemble: 1\nepochs: 15\nlr: 0.01\nwarmup_epochs: 1\n"
    "hflip: 0.0\nrotate: 0.0\nscale: 0.0\ntranslate: 0.0\n"
)


def _quiet_main(*args) -> None:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    assert e.value.code in (0, None)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from glfnet.data import synthetic as syn

    root = tmp_path_factory.mktemp("predict_raw")
    syn.generate(root, subjects_per_db=3, clips_per_subject=3, seed=0, databases=("casme2",), others_per_db=0)
    return root, json.loads((root / "synthetic.json").read_text())


@pytest.fixture(scope="session")
def cache_dir(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_cache") / "cache"
    _quiet_main(
        "prepare",
        "casme2",
        "--root",
        synth[0] / "CASME2",
        "--out",
        out,
        "--jobs",
        "1",
        "--protocol",
        "megc2019",
    )
    return out


@pytest.fixture(scope="session")
def model_dir(cache_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("predict_model")
    (d / "fast.yaml").write_text(FAST)
    _quiet_main("train", cache_dir, "--out", d / "model", "--config", d / "fast.yaml", "--quiet")
    return d / "model"


@pytest.fixture(scope="session")
def rec(model_dir):
    from glfnet import Recognizer

    return Recognizer.load(model_dir)


@pytest.fixture(scope="session")
def clip(synth, cache_dir, rec):
    """A minority-class clip (positive or surprise) with its frames, the manifest's onset/apex
    and the model's probabilities on its *cached* flow (the training input)."""
    root, truth = synth
    m = cache.read_manifest(cache_dir).set_index("sample_id")
    c = next(c for c in truth["clips"] if c["class"] in ("positive", "surprise"))
    row = m.loc[c["sample_id"]]
    folder = root / c["path"]
    cached = rec.predict_flow(cache.load_flow(cache_dir / row["file"]))
    return {
        "truth": c,
        "folder": folder,
        "onset": int(row["onset_used"]),
        "apex": int(row["apex_used"]),
        "cached": cached,
        "onset_img": folder / f"img{row['onset_used']}.jpg",
        "apex_img": folder / f"img{row['apex_used']}.jpg",
    }


def _write_video(path: Path, folder: Path, first: int, n: int, fourcc: str) -> bool:
    frames = [cv2.imread(str(folder / f"img{first + i}.jpg"), cv2.IMREAD_GRAYSCALE) for i in range(n)]
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (w, h), False)
    if not writer.isOpened():
        return False
    for f in frames:
        writer.write(f)
    writer.release()
    return path.is_file() and path.stat().st_size > 0


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_model_directory(model_dir, cache_dir):
    from safetensors import safe_open

    cfg = json.loads((model_dir / "config.json").read_text())
    meta = cache.read_meta(cache_dir)
    assert cfg["classes"] == ["negative", "positive", "surprise"]
    assert cfg["preprocessing"]["params"] == meta["params"]
    assert cfg["preprocessing"]["source"] == "glfnet prepare"
    assert cfg["prediction_encoding"] == "raw"
    assert cfg["model"] == {
        "name": Config.model,
        "args": {},
        "input_size": 28,
        "num_classes": 3,
        "ensemble": 1,
        "revision": 3,
    }
    assert set(cfg["pipeline"]) == {"encoding", "input_norm", "size", "mean", "std"}
    assert cfg["data"]["n_samples"] == 9 and len(cfg["data"]["digest"]) == 16
    assert cfg["training"]["config"]["epochs"] == 15 and cfg["training"]["seed"] == 0
    assert "NOT an evaluation" in cfg["purpose"]
    assert {"glfnet", "torch"} <= set(cfg["versions"])
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["glfnet"])["model_id"] == cfg["model_id"]


@pytest.mark.slow
def test_train_says_it_is_not_an_evaluation_and_refuses_to_overwrite(capsys, model_dir, cache_dir):
    code, _, err = cli(capsys, "train", cache_dir, "--out", model_dir, "--epochs", "1")
    assert code == 2 and "already holds a model" in err and "--overwrite" in err
    code, _, err = cli(capsys, "train", cache_dir / "nope", "--out", model_dir.parent / "x")
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
@pytest.mark.slow
def test_train_on_release_png_set(capsys, flat_dir, tmp_path, synth):
    """A model trained on the STSTNet PNG layout records that, and predicts through glfnet's
    preprocessing with the release's min-max 8-bit encoding."""
    from glfnet import Recognizer

    code, out, err = cli(capsys, "train", flat_dir, "--out", tmp_path / "m", "--epochs", "1")
    assert code == 0, err
    assert "not an evaluation" in out and "STSTNet PNG release" in err
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["preprocessing"]["source"] == "ststnet-release"
    assert cfg["prediction_encoding"] == "minmax8" and cfg["pipeline"]["encoding"] == "minmax"
    r = Recognizer.load(tmp_path / "m")
    enc = r.encode(np.random.default_rng(0).normal(size=(3, 28, 28)))
    assert enc.min() == 0 and enc.max() == 1 and np.allclose(enc * 255, np.round(enc * 255))
    folder = synth[0] / synth[1]["clips"][0]["path"]
    first = synth[1]["clips"][0]["first_frame"]
    p = r.predict(folder / f"img{first}.jpg", folder / f"img{first + 3}.jpg")
    assert set(p.probabilities) == set(r.classes) and abs(sum(p.probabilities.values()) - 1) < 1e-5


# ----------------------------------------------------------------------------- prediction


@pytest.mark.slow
def test_api_recovers_the_class_through_the_raw_path(rec, clip):
    """Raw onset/apex frames -> Recognizer gives the probabilities of the cached training
    flow (same preprocessing), hence the clip's class."""
    p = rec.predict(clip["onset_img"], clip["apex_img"])
    np.testing.assert_allclose([p.probabilities[c] for c in rec.classes], clip["cached"], atol=1e-5)
    assert p.label == clip["truth"]["class"]
    assert p.info["face_found"] and p.info["aligned"] and not p.info["picked"]
    # arrays work the same as paths
    a = cv2.imread(str(clip["onset_img"]), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(clip["apex_img"]), cv2.IMREAD_GRAYSCALE)
    assert rec.predict(a, b).probabilities == pytest.approx(p.probabilities, abs=1e-6)


@pytest.mark.slow
def test_cli_images_json_and_table(capsys, model_dir, clip):
    code, out, err = cli(
        capsys,
        "predict",
        "--model",
        model_dir,
        "--onset",
        clip["onset_img"],
        "--apex",
        clip["apex_img"],
        "--json",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["label"] == clip["truth"]["class"] and obj["mode"] == "images"
    assert [obj["probabilities"][c] for c in ("negative", "positive", "surprise")] == pytest.approx(
        list(clip["cached"]), abs=1e-5
    )
    code, out, err = cli(
        capsys, "predict", "--model", model_dir, "--onset", clip["onset_img"], "--apex", clip["apex_img"]
    )
    assert code == 0 and "<- prediction" in out and clip["truth"]["class"] in out
    assert "surprise" in out and "negative" in out


@pytest.mark.slow
def test_cli_frames_given_and_picked(capsys, model_dir, clip):
    code, out, err = cli(
        capsys,
        "predict",
        "--model",
        model_dir,
        "--frames",
        clip["folder"],
        "--onset",
        clip["onset"],
        "--apex",
        clip["apex"],
        "--json",
    )
    assert code == 0, err
    obj = json.loads(out)
    assert obj["label"] == clip["truth"]["class"] and not obj["picked"]
    assert (obj["onset_frame"], obj["apex_frame"]) == (clip["onset"], clip["apex"])
    assert [obj["probabilities"][c] for c in ("negative", "positive", "surprise")] == pytest.approx(
        list(clip["cached"]), abs=1e-5
    )
    code, out, err = cli(capsys, "predict", "--model", model_dir, "--frames", clip["folder"])
    assert code == 0, err
    first = clip["truth"]["first_frame"]
    assert f"picked onset img{first}.jpg and apex img" in out and "flow-peak" in out


@pytest.mark.slow
def test_video_lossless_recovers_the_class_and_mp4_picks_frames(capsys, tmp_path, model_dir, clip, rec):
    t = clip["truth"]
    avi = tmp_path / "clip.avi"
    lossless = _write_video(avi, clip["folder"], t["first_frame"], t["n_frames"], "FFV1")
    assert lossless or _write_video(avi, clip["folder"], t["first_frame"], t["n_frames"], "MJPG")
    o, a = clip["onset"] - t["first_frame"], clip["apex"] - t["first_frame"]
    code, out, err = cli(
        capsys, "predict", "--model", model_dir, "--video", avi, "--onset", o, "--apex", a, "--json"
    )
    assert code == 0, err
    obj = json.loads(out)
    assert obj["label"] == t["class"] and (obj["onset_index"], obj["apex_index"]) == (o, a)
    if lossless:  # same pixels as the frame files: same flow, same probabilities
        assert [obj["probabilities"][c] for c in rec.classes] == pytest.approx(list(clip["cached"]), abs=1e-5)
    mp4 = tmp_path / "clip.mp4"
    if not _write_video(mp4, clip["folder"], t["first_frame"], t["n_frames"], "mp4v"):
        pytest.skip("this OpenCV cannot write mp4v")
    p = rec.predict_video(mp4)
    assert p.info["picked"] and p.info["onset_index"] == 0
    assert 0 < p.info["apex_index"] < t["n_frames"] and p.info["face_found"]
    assert abs(sum(p.probabilities.values()) - 1) < 1e-5
    code, out, err = cli(capsys, "predict", "--model", model_dir, "--video", mp4)
    assert code == 0 and "picked onset frame 0 and apex frame" in out


# ----------------------------------------------------------------------------- model files


def _copy(model_dir, tmp_path) -> Path:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    return d


def _load_error(d) -> str:
    from glfnet import Recognizer

    with pytest.raises(ModelFileError) as e:
        Recognizer.load(d)
    return str(e.value)


@pytest.mark.slow
def test_missing_and_incomplete_model_dirs(capsys, tmp_path, model_dir):
    assert "does not exist" in _load_error(tmp_path / "nowhere")
    d = _copy(model_dir, tmp_path)
    (d / "model.safetensors").unlink()
    msg = _load_error(d)
    assert "model.safetensors is missing" in msg and "glfnet train" in msg
    (d / "config.json").unlink()
    assert "config.json is missing" in _load_error(d)
    code, _, err = cli(capsys, "predict", "--model", d, "--onset", "a.jpg", "--apex", "b.jpg")
    assert code == 2 and "config.json is missing" in err


@pytest.mark.slow
def test_corrupt_truncated_and_foreign_weights(tmp_path, model_dir):
    d = _copy(model_dir, tmp_path)
    w = d / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    msg = _load_error(d)
    assert str(w) in msg and "truncated" in msg
    w.write_bytes(b"\x00garbage" * 100)
    assert str(w) in _load_error(d)
    # a pickle is never unpickled: loading it must not run its payload
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    w.write_bytes(pickle.dumps({"state": Payload()}))
    assert str(w) in _load_error(d)
    assert not marker.exists()


@pytest.mark.slow
def test_config_damaged_or_mismatched(tmp_path, model_dir):
    import torch

    from glfnet import checkpoint, create_model

    d = _copy(model_dir, tmp_path)
    c = d / "config.json"
    good = json.loads(c.read_text())
    c.write_text(c.read_text()[:100])
    assert "config.json is unreadable" in _load_error(d)
    bad = dict(good)
    del bad["pipeline"]
    c.write_text(json.dumps(bad))
    assert "lacks pipeline" in _load_error(d)
    # the config describes another network than the weights hold
    bad = json.loads(json.dumps(good))
    bad["model"]["args"] = {"stem_width": 8}
    c.write_text(json.dumps(bad))
    msg = _load_error(d)
    assert "does not match the model its config describes" in msg
    # weights of another run next to this config
    c.write_text(json.dumps(good))
    other = create_model(good["model"]["name"], num_classes=3)
    checkpoint.save(d / "model.safetensors", other, {"model_id": "another-run"})
    assert "different training runs" in _load_error(d)
    # same run id, changed bytes
    state, meta = checkpoint.load(model_dir / "model.safetensors")
    other.load_state_dict({k: v + 1 if v.dtype == torch.float32 else v for k, v in state.items()})
    checkpoint.save(d / "model.safetensors", other, meta)
    assert "SHA-256" in _load_error(d)


@pytest.mark.slow
def test_a_model_directory_naming_a_removed_option(capsys, tmp_path, model_dir, cache_dir, rec, clip):
    """Written before options were removed (glfnet.removed): at their no-op values they are
    ignored and the model predicts as before; a test-time flip or a network this version no
    longer builds stops with the file and the option named, exit code 2."""
    from glfnet import Recognizer

    d = _copy(model_dir, tmp_path)
    c = d / "config.json"
    good = json.loads(c.read_text())
    old = json.loads(json.dumps(good))
    old["pipeline"]["tta"] = False  # as commit 75f388f wrote every model directory
    old["model"]["args"].update(region_halo=0, branch_stride=2, branch_block="basic", branch_drop=0.0)
    c.write_text(json.dumps(old))
    flow = cache.load_flow(cache_dir / cache.read_manifest(cache_dir)["file"].iloc[0])
    assert np.array_equal(Recognizer.load(d).predict_flow(flow), rec.predict_flow(flow))
    refused = (("pipeline", "tta", True), ("args", "fusion", "gate"), ("args", "region_halo", 2))
    for where, key, value in refused:
        bad = json.loads(json.dumps(old))
        (bad["pipeline"] if where == "pipeline" else bad["model"]["args"])[key] = value
        c.write_text(json.dumps(bad))
        msg = _load_error(d)
        assert str(c) in msg and f"`{key}`" in msg and "removed from glfnet in this version" in msg
    code, _, err = cli(capsys, "predict", "--model", d, "--frames", clip["folder"])
    assert code == 2 and "`region_halo`" in err and "removed" in err


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.slow
def test_missing_files_and_wrong_options(capsys, model_dir, clip, tmp_path):
    m = ("predict", "--model", model_dir)
    code, _, err = cli(capsys, *m, "--onset", tmp_path / "none.jpg", "--apex", clip["apex_img"])
    assert code == 2 and "none.jpg does not exist" in err
    code, _, err = cli(capsys, *m, "--onset", clip["onset_img"])
    assert code == 2 and "--apex is missing" in err
    code, _, err = cli(capsys, *m)
    assert code == 2 and "nothing to predict" in err
    code, _, err = cli(capsys, *m, "--frames", tmp_path / "nodir")
    assert code == 2 and "does not exist" in err
    code, _, err = cli(capsys, *m, "--video", tmp_path / "none.mp4")
    assert code == 2 and "none.mp4 does not exist" in err
    code, _, err = cli(capsys, *m, "--frames", clip["folder"], "--onset", "x.jpg")
    assert code == 2 and "frame number" in err


@pytest.mark.slow
def test_image_without_a_face(capsys, model_dir, rec, tmp_path):
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(120, 10, (200, 256)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), blank)
    cv2.imwrite(str(tmp_path / "b.png"), np.roll(blank, 1, axis=1))
    code, _, err = cli(
        capsys, "predict", "--model", model_dir, "--onset", tmp_path / "a.png", "--apex", tmp_path / "b.png"
    )
    assert code == 2 and "no face found in" in err and "a.png" in err and "--no-align" in err
    # the documented way out for frames that are already cropped faces
    p = rec.predict(tmp_path / "a.png", tmp_path / "b.png", align=False)
    assert not p.info["aligned"] and p.label in rec.classes
    code, out, err = cli(
        capsys,
        "predict",
        "--model",
        model_dir,
        "--onset",
        tmp_path / "a.png",
        "--apex",
        tmp_path / "b.png",
        "--no-align",
        "--json",
    )
    assert code == 0 and json.loads(out)["aligned"] is False and "alignment off" in err


@pytest.mark.slow
def test_frames_of_different_sizes(capsys, rec, model_dir, clip, tmp_path):
    small = cv2.resize(cv2.imread(str(clip["apex_img"])), (128, 100))
    cv2.imwrite(str(tmp_path / "apex_small.jpg"), small)
    with pytest.raises(DataError, match=r"256x200 but .*apex_small.jpg is 128x100"):
        rec.predict(clip["onset_img"], tmp_path / "apex_small.jpg")
    folder = tmp_path / "frames"
    shutil.copytree(clip["folder"], folder)
    cv2.imwrite(str(folder / clip["apex_img"].name), small)
    code, _, err = cli(capsys, "predict", "--model", model_dir, "--frames", folder)
    assert code == 2 and "differ in size" in err and clip["apex_img"].name in err


@pytest.mark.slow
def test_onset_after_apex_and_out_of_range(capsys, rec, model_dir, clip, tmp_path):
    m = ("predict", "--model", model_dir)
    code, _, err = cli(
        capsys, *m, "--frames", clip["folder"], "--onset", clip["apex"], "--apex", clip["onset"]
    )
    assert code == 2 and "is not before --apex" in err
    code, _, err = cli(capsys, *m, "--frames", clip["folder"], "--onset", clip["onset"], "--apex", 99999)
    assert code == 2 and "no frame numbered 99999" in err
    frames = [clip["onset_img"], clip["apex_img"], clip["apex_img"]]
    with pytest.raises(ConfigError, match="not before the apex"):
        rec.predict_frames(frames, onset=2, apex=1)
    with pytest.raises(ConfigError, match="out of range"):
        rec.predict_frames(frames, onset=0, apex=7)
    t = clip["truth"]
    avi = tmp_path / "v.avi"
    assert _write_video(avi, clip["folder"], t["first_frame"], 4, "MJPG")
    code, _, err = cli(capsys, *m, "--video", avi, "--onset", 0, "--apex", 50)
    assert code == 2 and "beyond the end" in err and "4 frames" in err


@pytest.mark.slow
def test_unsupported_video(capsys, model_dir, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("this is not a video\n" * 50)
    code, _, err = cli(capsys, "predict", "--model", model_dir, "--video", bad)
    assert code == 2 and "cannot read" in err and "clip.mp4" in err and "ffmpeg" in err


@pytest.mark.slow
def test_an_ensemble_model_directory_loads_and_predicts(cache_dir, tmp_path):
    """`glfnet train --ensemble 2` writes one model directory holding both networks; loading it
    rebuilds the ensemble, and its prediction is the mean of its members'."""
    import torch

    from glfnet import Recognizer
    from glfnet.data import cache

    (tmp_path / "fast.yaml").write_text("epochs: 2\n")
    _quiet_main(
        "train",
        cache_dir,
        "--out",
        tmp_path / "m",
        "--config",
        tmp_path / "fast.yaml",
        "--ensemble",
        "2",
        "--quiet",
    )
    r = Recognizer.load(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["ensemble"] == 2
    assert len(r.model.members) == 2
    m = cache.read_manifest(cache_dir)
    flow = cache.load_flow(cache_dir / m["file"].iloc[0])
    p = r.predict_flow(flow)
    X = torch.tensor(r.encode(flow[None]))
    with torch.no_grad():
        xs = r.pipeline(r.pipeline.prepare(X))
        members = [torch.softmax(net(xs), 1)[0].numpy() for net in r.model.members]
    np.testing.assert_allclose(p, np.mean(members, axis=0), atol=1e-5)


# ----------------------------------------------------------------------------- issue 11


def test_train_checks_out_before_the_data_and_rejects_bad_model_args(capsys, flat_dir, tmp_path):
    """--out is checked before the data are read, a bad --model-arg before anything is
    written: neither leaves a folder behind."""
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "config.json").write_text("{}")
    code, _, err = cli(capsys, "train", tmp_path / "no-data", "--out", taken)
    assert code == 2 and "already holds a model" in err and "does not exist" not in err
    code, _, err = cli(capsys, "train", flat_dir, "--out", tmp_path / "m", "--model-arg", "fusion=foo")
    assert code == 2 and "fusion" in err and "foo" in err
    code, _, err = cli(
        capsys, "train", flat_dir, "--out", tmp_path / "m2", "--model", "ststnet", "--model-arg", "fusion=aff"
    )
    assert code == 2 and "fusion" in err and "unexpected keyword" not in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "m2").exists()


def test_train_failure_leaves_no_folder(capsys, monkeypatch, flat_dir, tmp_path):
    """Training fails (here: made to): --out and the parents it would have made stay absent;
    so does a folder whose writing fails."""
    from glfnet.train import modeldir

    def boom(*args, **kwargs):
        raise DataError("training failed on purpose")

    monkeypatch.setattr("glfnet.train.final.train_fold", boom)
    out = tmp_path / "a" / "b" / "model"
    code, _, err = cli(capsys, "train", flat_dir, "--out", out, "--epochs", "1")
    assert code == 2 and "on purpose" in err
    assert not (tmp_path / "a").exists()

    def no_disk(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(modeldir.io, "write_json", no_disk)
    with pytest.raises(OSError):
        modeldir.write_model_dir(out, _tiny_net(), _record())
    assert not (tmp_path / "a").exists()


def _tiny_net():
    from glfnet import create_model

    return create_model("ststnet", num_classes=3)


def _record() -> dict:
    return {"purpose": "test", "classes": ["a", "b", "c"], "model": {"name": "ststnet"}}


def test_train_runs_single_threaded_on_cpu_like_a_loso_fold(tiny_set, tmp_path):
    """`glfnet train` limits PyTorch to one thread on the CPU during training (as loso's fold
    workers do) and restores the caller's setting afterwards."""
    import torch

    from glfnet.train.final import train_final

    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_final(
            tiny_set,
            Config(epochs=1, ensemble=1),
            tmp_path / "m",
            on_epoch=lambda rec: seen.append(torch.get_num_threads()),
        )
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_train_json_summary_and_singular_epoch(capsys, flat_dir, tiny_set, tmp_path):
    code, out, err = cli(capsys, "train", flat_dir, "--out", tmp_path / "m", "--epochs", "1", "--json")
    assert code == 0, err
    summary = json.loads(out)  # stdout holds the JSON object only
    n, n_subjects = len(tiny_set), tiny_set.samples["subject"].nunique()
    assert summary["model_dir"] == str(tmp_path / "m") and summary["samples"] == n
    assert summary["epochs"] == 1 and summary["subjects"] == n_subjects and summary["seed"] == 0
    assert summary["wall_seconds"] >= summary["train_seconds"] > 0
    assert summary["model_id"] == json.loads((tmp_path / "m" / "config.json").read_text())["model_id"]
    assert "1 epoch," in err and "not an evaluation" in err  # the human lines go to stderr
    code, out, err = cli(capsys, "train", flat_dir, "--out", tmp_path / "m1", "--epochs", "1", "--quiet")
    assert code == 0 and "1 epoch," in out and "1 epochs" not in out and f"{n} samples" in out


@pytest.mark.slow
def test_predict_several_inputs_each_on_its_own(capsys, model_dir, rec, clip, tmp_path):
    """One bad input among several: an error line naming it, results for the good ones,
    exit status 2."""
    bad = tmp_path / "nodir"
    code, out, err = cli(
        capsys, "predict", "--model", model_dir, "--frames", clip["folder"], "--frames", bad, "--json"
    )
    assert code == 2
    good_line, bad_line = [json.loads(line) for line in out.strip().splitlines()]
    assert good_line["input"] == str(clip["folder"])
    assert good_line["label"] == rec.predict_clip(clip["folder"]).label
    assert bad_line["input"] == str(bad) and "does not exist" in bad_line["error"]
    assert "error:" in err and str(bad) in err
    code, out, err = cli(capsys, "predict", "--model", model_dir, "--frames", bad, "--frames", clip["folder"])
    assert code == 2 and "<- prediction" in out and str(bad) in err


@pytest.mark.slow
def test_predict_folder_api(rec, clip, tmp_path):
    """Recognizer.predict_folder: one result per clip folder and video, errors kept apart."""
    folder = tmp_path / "clips"
    shutil.copytree(clip["folder"], folder / "clipA")
    (folder / "broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("not a clip")
    results = rec.predict_folder(folder)
    assert [Path(r.input).name for r in results] == ["broken.mp4", "clipA"]
    broken, good = results
    assert not broken.ok and isinstance(broken.error, DataError)
    assert "cannot read" in broken.to_dict()["error"]
    assert good.ok and good.prediction.label == rec.predict_clip(folder / "clipA").label
    assert good.prediction.info["picked"] and good.to_dict()["input"] == str(folder / "clipA")
    with pytest.raises(DataError, match="no clip folders"):
        rec.predict_folder(tmp_path / "clips" / "clipA")


def test_predict_on_a_loso_run_directory_points_to_glfnet_train(capsys, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "seed0").mkdir(parents=True)
    (run / "config.yaml").write_text("model: glfnet_t\n")
    (run / "metrics.json").write_text("{}")
    (run / "predictions.csv").write_text("sample_id\n")
    from glfnet.eval.rundir import RunDir

    assert RunDir(run).holds_run() and not RunDir(tmp_path).holds_run()
    code, _, err = cli(capsys, "predict", "--model", run, "--onset", "a.jpg", "--apex", "b.jpg")
    assert code == 2 and "`glfnet loso` run directory" in err and "keeps no model for use" in err
    assert "glfnet train DATA --out DIR" in err and "inspection only" in err
    assert "its checkpoints/ hold" in err and "Re-create it" not in err
    (run / "checkpoints" / "seed0").rmdir()
    (run / "checkpoints").rmdir()
    code, _, err = cli(capsys, "predict", "--model", run, "--onset", "a.jpg", "--apex", "b.jpg")
    assert code == 2 and "--save-checkpoints keeps the network of each fold" in err


@pytest.mark.slow
def test_library_errors_name_parameters_not_flags(rec, clip, model_dir):
    from glfnet.train.modeldir import check_out_dir

    with pytest.raises(ConfigError) as e:
        check_out_dir(model_dir)
    assert "`out_dir`" in str(e.value) and "`overwrite`" in str(e.value)
    assert "--" not in str(e.value)
    with pytest.raises(ConfigError, match=r"`onset` 99999: .* no frame numbered 99999"):
        rec.predict_frame_folder(clip["folder"], onset=99999)
    with pytest.raises(ConfigError, match=r"`device`: 'tpu' is not allowed; choose cpu \| cuda"):
        rec.load(model_dir, device="tpu")


@pytest.mark.slow
def test_an_older_model_directory_still_loads(tmp_path, model_dir, rec, clip):
    """Directories written before `model.ensemble` (and `weights.bytes`) existed read as one
    network, with the same predictions."""
    d = _copy(model_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["model"]["ensemble"], cfg["weights"]["bytes"]
    (d / "config.json").write_text(json.dumps(cfg))
    from glfnet import Recognizer

    old = Recognizer.load(d)
    np.testing.assert_allclose(
        old.predict_flow(np.zeros((3, 28, 28), np.float32)),
        rec.predict_flow(np.zeros((3, 28, 28), np.float32)),
        atol=1e-6,
    )


def test_unreadable_video_gives_only_the_clean_error(tmp_path):
    """FFmpeg's own 'moov atom not found' line does not precede glfnet's message (checked in a
    fresh process: FFmpeg reads its log level once)."""
    import subprocess
    import sys

    bad = tmp_path / "clip.mp4"  # an mp4 header without its moov atom
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(200))
    code = (
        "from glfnet.preprocess.media import read_video\n"
        "from glfnet.errors import DataError\n"
        f"try:\n    read_video({str(bad)!r})\nexcept DataError as e:\n    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "cannot read" in run.stdout and "clip.mp4" in run.stdout
    assert "moov" not in run.stderr, run.stderr


def test_a_model_directory_of_an_earlier_preset_revision_still_builds(model_dir):
    """`glfnet_t` gained wider branches in revision 2 and the stem skip in revision 3; a
    directory without `revision` (written before revisions) rebuilds revision 1's network, one
    with it that revision's."""
    from glfnet.models.registry import preset_args_at, preset_revision
    from glfnet.train.modeldir import _build

    assert preset_revision("glfnet_t") == 3 and preset_args_at("glfnet_t", 3) == {}
    assert preset_args_at("glfnet_t", 1) == {"branch_width": 32, "stem_skip": False}
    assert preset_args_at("glfnet_t", 2) == {"stem_skip": False} and preset_args_at("ststnet", 1) == {}
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["model"].update(name="glfnet_t", args={})
    cfg["model"].pop("revision", None)
    assert _build(cfg, model_dir / "config.json")[0].num_features == 32 * 25
    cfg["model"]["revision"] = 2
    assert _build(cfg, model_dir / "config.json")[0].num_features == 48 * 25
    cfg["model"]["revision"] = 3
    assert _build(cfg, model_dir / "config.json")[0].num_features == (48 + 16) * 25
