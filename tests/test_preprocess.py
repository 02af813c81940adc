"""Face alignment, flow, strain, apex rules and the cache writer on a real face photo
(``skimage.data.astronaut()``) warped with a known motion."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import cv2
import numpy as np
import pytest

import rawfixtures as rf
from glfnet.data import cache
from glfnet.data.flowsets import encode_flow_image
from glfnet.data.protocols import get_protocol
from glfnet.data.readers import read_database
from glfnet.errors import ConfigError
from glfnet.preprocess import apex as apex_rules
from glfnet.preprocess.export import export_png
from glfnet.preprocess.face import align_face, detect_landmarks, predictor_path
from glfnet.preprocess.flow import optical_strain, resize_flow
from glfnet.preprocess.pipeline import (
    PrepParams,
    flow_from_frames,
    flow_from_pair,
    pick_onset_apex,
    prepare_cache,
    to_gray,
)


@pytest.fixture(scope="module")
def face():
    return rf.face_image()


def expected_crop_motion(crop, dx, dy):
    """A frame-space displacement seen in crop pixels: rotated and scaled by the transform."""
    return crop.matrix[:, :2] @ np.array([dx, dy]) * crop.scale


# ---------------------------------------------------------------------------- face


def test_face_found_with_landmarks(face):
    assert predictor_path().is_file()
    pts = detect_landmarks(face)
    assert pts is not None and pts.shape == (68, 2)
    assert 0 < pts[:, 0].min() < pts[:, 0].max() < face.shape[1]


def test_eyes_are_levelled(face):
    h, w = face.shape
    tilted = cv2.warpAffine(
        face, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT
    )
    base, rot = align_face(face), align_face(tilted)
    assert base.face_found and rot.face_found
    assert rot.angle == pytest.approx(base.angle - 10, abs=2.0)
    crop = rot.apply(tilted)
    assert crop.shape == (128, 128)
    pts = detect_landmarks(crop)
    assert pts is not None
    le, re_ = pts[36:42].mean(0), pts[42:48].mean(0)
    assert abs(math.degrees(math.atan2(re_[1] - le[1], re_[0] - le[0]))) < 2.5


def test_no_face_falls_back_to_whole_frame():
    flat = np.full((120, 160), 128, np.uint8)
    flat[40:80, 60:100] = 30
    flow, info = flow_from_pair(flat, rf.shift(flat, 1, 0), PrepParams(size=28))
    assert info["face_found"] is False
    assert any("no face" in w for w in info["warnings"])
    assert flow.shape == (3, 28, 28)


# ---------------------------------------------------------------------------- flow and strain


def test_flow_direction_and_magnitude_match_the_motion(face):
    dx, dy = 1.5, -1.0
    params = PrepParams(size=128)
    flow, info = flow_from_pair(face, rf.shift(face, dx, dy), params)
    assert info["face_found"] and flow.shape == (3, 128, 128) and flow.dtype == np.float32
    crop = align_face(face)
    want = expected_crop_motion(crop, dx, dy)
    got = flow[:2, 16:-16, 16:-16].reshape(2, -1).mean(axis=1)
    assert np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)) > 0.99
    assert np.linalg.norm(got) == pytest.approx(np.linalg.norm(want), rel=0.15)
    # resizing to 28 px keeps the vectors in pixels of the new grid
    small, _ = flow_from_pair(face, rf.shift(face, dx, dy), PrepParams(size=28))
    got28 = small[:2, 4:-4, 4:-4].reshape(2, -1).mean(axis=1)
    assert got28 == pytest.approx(want * 28 / 128, rel=0.2)


def test_strain_is_where_the_motion_changes(face):
    u = rf.band_displacement(face.shape, 2.0, x0=80)
    apex = rf.warp_local(face, u)
    flow, _ = flow_from_pair(face, apex, PrepParams(size=128, align=False))
    strain = flow[2, 20:-20, :].mean(axis=0)
    peak = int(np.argmax(strain[8:-8])) + 8
    assert abs(peak - 64) <= 6  # x0 = 80 of 160 px -> 64 of 128
    assert strain[peak] > 4 * max(strain[10:30].mean(), strain[100:120].mean())
    assert flow[0, 20:-20, 100:120].mean() == pytest.approx(2.0 * 128 / 160, rel=0.2)
    assert abs(flow[0, 20:-20, 8:30].mean()) < 0.2


def test_strain_formula_and_resize_scaling():
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    assert optical_strain(0.1 * x, 0.2 * y) == pytest.approx(np.sqrt(0.01 + 0.04), abs=1e-6)
    assert optical_strain(0.3 * y, 0 * y) == pytest.approx(np.sqrt(0.5) * 0.3, abs=1e-6)
    flow = np.stack([np.full((128, 128), 4.0), np.full((128, 128), -2.0), np.full((128, 128), 0.5)]).astype(
        np.float32
    )
    small = resize_flow(flow, 28)
    assert small.shape == (3, 28, 28)
    assert small[0] == pytest.approx(4.0 * 28 / 128) and small[1] == pytest.approx(-2 * 28 / 128)
    assert small[2] == pytest.approx(0.5)


def test_deterministic(face):
    apex = rf.shift(face, 0.8, 0.4)
    a, _ = flow_from_pair(face, apex)
    b, _ = flow_from_pair(face, apex)
    assert np.array_equal(a, b)


def test_fast_methods_agree_in_direction(face):
    for method in ("farneback", "dis"):
        flow, _ = flow_from_pair(face, rf.shift(face, 1.5, 0), PrepParams(size=32, flow=method))
        assert flow[0, 6:-6, 6:-6].mean() > 0.2 and abs(flow[1, 6:-6, 6:-6].mean()) < 0.2


def test_to_gray_and_params():
    rgb = rf.face_image(rgb=True)
    assert to_gray(rgb).shape == rgb.shape[:2]
    assert to_gray(rgb / 255.0).dtype == np.uint8
    p = PrepParams()
    assert json.loads(json.dumps(asdict(p)))["crop_size"] == 128
    for bad in ({"flow": "lk"}, {"apex": "label"}, {"size": 2}, {"margin": -1}):
        with pytest.raises(ConfigError):
            PrepParams(**bad)


# ---------------------------------------------------------------------------- apex


def test_apex_rules():
    assert apex_rules.midpoint([1, 2, 3, 4, 5], 1, 5) == 3
    assert apex_rules.midpoint([1, 2, 5, 6], 1, 6) == 2  # 3.5 is as near 2 as 5: the earlier
    assert apex_rules.midpoint([1], 1, 1) is None
    assert apex_rules.annotated_apex_problem(3, 1, 5, [1, 2, 3]) is None
    assert "not after the onset" in apex_rules.annotated_apex_problem(1, 1, 5, [1, 2])
    assert "after the offset" in apex_rules.annotated_apex_problem(9, 1, 5, [9])
    assert "not on disk" in apex_rules.annotated_apex_problem(3, 1, 5, [1, 2])


def test_flow_peak_finds_the_largest_motion(face):
    amps = [0, 0.3, 0.7, 0.9, 1.0, 0.6, 0.2]
    frames = [rf.shift(face, 2.0 * a, -1.0 * a) for a in amps]
    onset, apex, info = pick_onset_apex(frames)
    assert (onset, apex) == (0, 4) and info["face_found"]
    flow, info = flow_from_frames(frames, PrepParams(flow="dis"))
    assert info["apex_index"] == 4 and flow.shape == (3, 28, 28)
    # a long clip: the coarse-then-fine search still finds the peak
    many = [max(0.0, 1 - abs(i - 77) / 10) for i in range(120)]
    best, _ = apex_rules.flow_peak(len(many), lambda i: rf.shift(face, 2 * many[i], 0))
    assert best == 77


# ---------------------------------------------------------------------------- cache


@pytest.fixture(scope="module")
def smic_face(tmp_path_factory):
    root = tmp_path_factory.mktemp("smicface")
    clips = [
        rf.Clip("s1", "s1_ne_01", "negative", onset=1, offset=7, motion=(1.5, 0.5), extra={"peak": 3}),
        rf.Clip("s2", "s2_po_01", "positive", onset=1, offset=5, motion=(-1.0, 0.0)),
        rf.Clip("s2", "s2_sur_01", "surprise", onset=11, offset=15, motion=(0, 1.0)),
    ]
    rf.write_smic(root, clips, kind="face")
    return root


def _selection(root, db="smic", protocol="smic-3"):
    scan = read_database(db, root)
    return scan, get_protocol(protocol).select(scan.samples)


def test_prepare_cache_resume_and_settings_check(smic_face, tmp_path):
    scan, sel = _selection(smic_face)
    out = tmp_path / "cache"
    params = PrepParams(flow="dis")
    res = prepare_cache(sel, out, params, scans=[scan])
    assert res.status_counts() == {"ok": 3, "failed": 0, "missing": 0}
    meta = cache.read_meta(out)
    assert meta["classes"] == ["negative", "positive", "surprise"]
    assert meta["params"] == asdict(params) and meta["size"] == 28 and meta["glfnet_version"]
    m = cache.read_manifest(out)
    assert list(m.columns[: len(cache.MANIFEST_COLUMNS)]) == cache.MANIFEST_COLUMNS
    row = m.set_index("sample_id").loc["s01_s01_ne_01"]
    assert (row["apex_source"], row["apex_used"], row["face"]) == ("midpoint", "4", "found")
    assert cache.load_flow(out / row["file"]).shape == (3, 28, 28)
    again = prepare_cache(sel, out, params, scans=[scan])
    assert (again.computed, again.skipped) == (0, 3)
    with pytest.raises(ConfigError, match="other settings"):
        prepare_cache(sel, out, PrepParams(flow="dis", size=32), scans=[scan])
    redo = prepare_cache(sel, out, PrepParams(flow="dis", size=32), scans=[scan], overwrite=True)
    assert redo.computed == 3 and cache.read_meta(out)["size"] == 32
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.docx").write_text("x")
    with pytest.raises(ConfigError, match="not a glfnet cache"):
        prepare_cache(sel, tmp_path / "foreign", params)


@pytest.mark.slow
def test_flow_peak_apex_and_parallel_is_bit_identical(smic_face, tmp_path):
    _, sel = _selection(smic_face)
    params = PrepParams(apex="flow-peak")
    one = prepare_cache(sel, tmp_path / "one", params, jobs=1)
    two = prepare_cache(sel, tmp_path / "two", params, jobs=2)
    row = one.manifest.set_index("sample_id").loc["s01_s01_ne_01"]
    assert (row["apex_source"], row["apex_used"]) == ("flow-peak", "3")
    for sid, rel in zip(one.manifest["sample_id"], one.manifest["file"]):
        assert np.array_equal(
            cache.load_flow(tmp_path / "one" / rel), cache.load_flow(tmp_path / "two" / rel)
        ), sid
    assert one.manifest.drop(columns="clip_dir").equals(two.manifest.drop(columns="clip_dir"))


def test_unreadable_frame_fails_that_sample_only(smic_face, tmp_path):
    import shutil

    root = tmp_path / "smic"
    shutil.copytree(smic_face, root)
    bad = sorted((root / "SMIC_all_raw/HS/s2/micro/positive/s2_po_01").iterdir())[0]
    bad.write_bytes(b"garbage")
    _, sel = _selection(root)
    res = prepare_cache(sel, tmp_path / "c", PrepParams(flow="dis"))
    m = res.manifest.set_index("sample_id")
    assert m.loc["s02_s02_po_01", "status"] == "failed"
    assert bad.name in m.loc["s02_s02_po_01", "anomalies"]
    assert (m["status"] == "ok").sum() == 2


def test_export_png_layout(smic_face, tmp_path):
    from PIL import Image

    _, sel = _selection(smic_face)
    out = tmp_path / "c"
    prepare_cache(sel, out, PrepParams(flow="dis", size=32), export_png=tmp_path / "png")
    labels = (tmp_path / "png" / "labels.csv").read_text().splitlines()
    assert labels[0] == "dataset,sub,filename_o,label,apex,imagename,sub_filename"
    assert "smic,s02,s02_sur_01,2,,s02_s02_sur_01 .png," in labels
    img = np.asarray(Image.open(tmp_path / "png" / "s01_s01_ne_01 .png"))
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    flow = resize_flow(cache.load_flow(out / "flows" / "s01_s01_ne_01.npz"), 28)
    assert np.array_equal(img, encode_flow_image(flow))  # R, G, B = u, v, strain
    for c in range(3):
        assert img[..., c].min() == 0 and img[..., c].max() == 255
    assert export_png(out, tmp_path / "png2").is_file()
