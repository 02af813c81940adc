"""The synthetic generator: layouts and sheets as the real databases, ground truth, AU motion
in the right place and direction, dlib finds the faces, same seed -> same bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from glfnet.data import synthetic as syn
from glfnet.data.naming import MEGC_CLASSES
from glfnet.errors import ConfigError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = syn.generate(out, subjects_per_db=2, clips_per_subject=4, seed=3, others_per_db=1)
    return out, summary, json.loads((out / "synthetic.json").read_text())


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _frame(out: Path, clip: dict, number: int) -> np.ndarray:
    folder = out / clip["path"]
    name = {
        "casme2": f"img{number}.jpg",
        "samm": f"{clip['subject']}_{number:05d}.jpg",
        "smic": f"image{number:06d}.bmp",
    }[clip["database"]]
    return cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)


def _clips(truth, db):
    return [c for c in truth["clips"] if c["database"] == db]


@pytest.mark.slow
def test_casme2_layout_and_sheet(dataset):
    out, _, truth = dataset
    wb = openpyxl.load_workbook(out / "CASME2" / "CASME2-coding-20140508.xlsx")
    rows = list(wb.active.iter_rows(values_only=True))
    assert list(rows[0]) == [
        "Subject",
        "Filename",
        None,
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        None,
        "Action Units",
        "Estimated Emotion",
    ]
    clips = _clips(truth, "casme2")
    assert len(rows) - 1 == len(clips)
    by_id = {(f"sub{r[0]:02d}", r[1]): r for r in rows[1:]}
    for c in clips:
        assert re.fullmatch(r"CASME2/CASME2-RAW/sub\d\d/EP\d\d_\d\df?", c["path"])
        names = _files(out / c["path"])
        assert all(re.fullmatch(r"img[1-9]\d*\.jpg", n) for n in names)  # not zero-padded
        numbers = sorted(int(n[3:-4]) for n in names)
        assert numbers == list(range(c["first_frame"], c["last_frame"] + 1))
        subject, _, _, onset, apex, offset, _, aus, emotion = by_id[(c["subject"], c["clip"])]
        assert isinstance(subject, int)
        assert (onset, apex, offset) == (c["onset"], c["apex"], c["offset"])
        assert c["first_frame"] <= onset < apex < offset <= c["last_frame"]
        assert str(aus) == c["action_units"] and emotion == c["emotion"]
        assert cv2.imread(str(out / c["path"] / names[0]), cv2.IMREAD_UNCHANGED).ndim == 3
    emotions = {c["emotion"] for c in clips}
    assert emotions <= {"disgust", "repression", "happiness", "surprise", "others"}


@pytest.mark.slow
def test_samm_layout_and_sheet(dataset):
    out, _, truth = dataset
    rows = list(
        openpyxl.load_workbook(out / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx").active.iter_rows(
            values_only=True
        )
    )
    assert "Subject" not in [v for r in rows[:13] for v in r]  # 13 rows of notes first
    assert list(rows[13]) == syn.SAMM_COLUMNS  # header on row 14
    table = {r[1]: r for r in rows[14:]}
    clips = _clips(truth, "samm")
    assert len(table) == len(clips)
    for c in clips:
        row = table[c["clip"]]
        subject, clip, inducement, onset, apex, offset, duration, micro, _, emotion = row[:10]
        assert re.fullmatch(r"SAMM/SAMM/\d{3}/\d{3}_\d_\d+", c["path"])
        assert subject == int(c["subject"]) and clip.startswith(c["subject"] + "_")
        assert int(clip.split("_")[1]) == inducement
        assert (onset, apex, offset, duration) == (
            c["onset"],
            c["apex"],
            c["offset"],
            c["offset"] - c["onset"] + 1,
        )
        names = _files(out / c["path"])
        assert all(re.fullmatch(rf"{c['subject']}_\d{{5}}\.jpg", n) for n in names)  # 5 digits
        assert [int(n[4:9]) for n in names] == list(range(c["first_frame"], c["last_frame"] + 1))
        assert cv2.imread(str(out / c["path"] / names[0]), cv2.IMREAD_UNCHANGED).ndim == 2  # grey
        assert micro == "Micro" and emotion == c["emotion"]


@pytest.mark.slow
def test_smic_layout(dataset):
    out, _, truth = dataset
    codes = {"negative": "ne", "positive": "po", "surprise": "sur"}
    assert not list((out / "SMIC").glob("*.xls*"))  # SMIC-HS has no sheet
    for c in _clips(truth, "smic"):
        k = int(c["subject"][1:])
        folder = rf"SMIC/SMIC_all_raw/HS/s{k}/micro/{c['class']}/s{k}_{codes[c['class']]}_\d\d"
        assert re.fullmatch(folder, c["path"])  # raw spelling s1_ne_01, unpadded subject
        names = _files(out / c["path"])
        assert all(re.fullmatch(r"image\d+\.bmp", n) for n in names)
        numbers = [int(n[5:-4]) for n in names]
        assert (numbers[0], numbers[-1]) == (c["onset"], c["offset"])  # the clip spans the ME
        assert c["onset"] < c["apex"] < c["offset"]


@pytest.mark.slow
def test_class_counts_match_truth(dataset):
    out, summary, truth = dataset
    per_db = summary["databases"].values()
    assert summary["clips"] == len(truth["clips"]) == sum(s["clips"] for s in per_db)
    for db, s in summary["databases"].items():
        clips = _clips(truth, db)
        counts = {c: sum(x["class"] == c for x in clips) for c in (*MEGC_CLASSES, "others")}
        assert counts == s["classes"] == truth["databases"][db]["classes"]
        assert all(counts[c] > 0 for c in MEGC_CLASSES)  # every class in every database
        assert counts["negative"] >= counts["positive"] >= counts["surprise"]
        assert counts["others"] == (0 if db == "smic" else 1)
        assert len(s["subjects"]) == 2 and {x["subject"] for x in clips} == set(s["subjects"])
        for c in clips:
            assert len(_files(out / c["path"])) == c["n_frames"]
    smic = [p.parent.name for p in (out / "SMIC").glob("SMIC_all_raw/HS/*/micro/*/*")]
    assert sorted(smic) == sorted(x["class"] for x in _clips(truth, "smic"))
    text = syn.format_summary(summary)
    assert "CASME2" in text and "negative" in text


@pytest.mark.slow
def test_displacement_field_directions(dataset):
    _, _, truth = dataset
    lm = np.array(truth["subjects"][0]["landmarks"], np.float32)
    shape = syn.FRAME_SIZE[truth["subjects"][0]["database"]][::-1]

    def at(au, parts):
        field = syn.displacement_field(lm, {au: [1.5] * len(syn.AU_MODEL[au])}, shape)
        centres = (lm[list(p)].mean(0) for p in parts)
        return [field[int(round(y)), int(round(x))] for x, y in centres]

    (l12, r12) = at("12", [(48,), (54,)])  # lip corners up and outward
    assert l12[1] < 0 and r12[1] < 0 and l12[0] < 0 < r12[0]
    for brow in at("1", [(20, 21), (22, 23)]) + at("2", [(17, 18), (25, 26)]):
        assert brow[1] < -0.5 * abs(brow[0])  # brows raised
    (l4, r4) = at("4", [(19, 20, 21), (22, 23, 24)])  # brows lowered and drawn together
    assert l4[1] > 0 and r4[1] > 0 and l4[0] > 0 > r4[0]
    assert all(v[1] > 0 for v in at("15", [(48,), (54,)]))  # lip corners down
    assert at("26", [(57, 8)])[0][1] > 0  # jaw drops
    face_w = np.linalg.norm(lm[16] - lm[0])
    peak = np.linalg.norm(syn.displacement_field(lm, {"26": [1.5]}, shape), axis=2).max()
    assert peak == pytest.approx(1.5 * face_w / syn.FACE_PX, rel=0.02)  # px at a 128 px face


def test_time_course():
    s = syn.time_course(12, 2, 6, 10)
    assert s[:3].tolist() == [0, 0, 0] and s[6] == 1 and s[10:].tolist() == [0, 0]
    assert np.all(np.diff(s[2:7]) > 0) and np.all(np.diff(s[6:11]) < 0)


@pytest.mark.slow
def test_flow_at_apex_shows_the_action_units(dataset):
    """Measured onset -> apex flow at each coded action unit goes the model's way."""
    out, _, truth = dataset
    landmarks = {(s["database"], s["subject"]): np.array(s["landmarks"]) for s in truth["subjects"]}
    checked = 0
    for c in truth["clips"]:
        lm = landmarks[(c["database"], c["subject"])]
        on, ap = _frame(out, c, c["onset"]), _frame(out, c, c["apex"])
        flow = cv2.calcOpticalFlowFarneback(on, ap, None, 0.5, 2, 9, 3, 5, 1.1, 0)
        for au, gains in c["au_gains"].items():
            for (points, direction, _), gain in zip(syn.AU_MODEL[au], gains):
                if gain < 0.8:  # a weak (one-sided) part
                    continue
                x, y = lm[list(points)].mean(0).astype(int)
                v = flow[y - 5 : y + 6, x - 5 : x + 6].reshape(-1, 2).mean(0)
                along = v @ np.asarray(direction) / np.linalg.norm(direction)
                assert along > 0.1, (c["sample_id"], au)
                checked += 1
    assert checked >= 30


@pytest.mark.slow
def test_tvl1_on_face_crop_sees_the_main_action_unit(dataset):
    """As the pipeline does: TV-L1 on a 128 px face crop, onset -> apex, one clip per class."""
    out, _, truth = dataset
    landmarks = {(s["database"], s["subject"]): np.array(s["landmarks"]) for s in truth["subjects"]}
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for cls in MEGC_CLASSES:
        c = next(x for x in truth["clips"] if x["class"] == cls)
        lm = landmarks[(c["database"], c["subject"])]
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        side = 1.25 * max(x1 - x0, y1 - y0)
        k = 128 / side
        m = np.float32([[k, 0, 64 - k * (x0 + x1) / 2], [0, k, 64 - k * (y0 + y1) / 2]])
        crop = [cv2.warpAffine(_frame(out, c, n), m, (128, 128)) for n in (c["onset"], c["apex"])]
        flow = tvl1.calc(crop[0], crop[1], None)
        au = max(set(c["au_gains"]) - {"45"}, key=lambda a: max(c["au_gains"][a]))  # not a blink
        part = int(np.argmax(c["au_gains"][au]))
        points, direction, _ = syn.AU_MODEL[au][part]
        x, y = (m[:, :2] @ lm[list(points)].mean(0) + m[:, 2]).astype(int)
        v = flow[y - 5 : y + 6, x - 5 : x + 6].reshape(-1, 2).mean(0)
        assert v @ np.asarray(direction) / np.linalg.norm(direction) > 0.1, (c["sample_id"], au)


@pytest.mark.slow
def test_dlib_finds_the_face_on_every_onset_frame(dataset):
    out, _, truth = dataset
    detector, _ = syn._dlib()
    for c in truth["clips"]:
        onset = _frame(out, c, c["onset"])
        assert len(detector(onset, 0)) == 1 and len(detector(onset, 1)) == 1, c["sample_id"]


@pytest.mark.slow
def test_same_seed_same_bytes(tmp_path):
    def tree(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    args = dict(subjects_per_db=1, clips_per_subject=3, others_per_db=1)
    syn.generate(tmp_path / "a", seed=7, **args)
    syn.generate(tmp_path / "b", seed=7, **args)
    syn.generate(tmp_path / "c", seed=8, databases="smic", **args)
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert "CASME2/CASME2-coding-20140508.xlsx" in a and "SAMM/SAMM_Micro_FACS_Codes_v2.xlsx" in a
    smic_a = {k: v for k, v in a.items() if k.startswith("SMIC/")}
    smic_c = {k: v for k, v in c.items() if k.startswith("SMIC/")}
    assert smic_a != smic_c and a["synthetic.json"] != c["synthetic.json"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(subjects_per_db=0),
        dict(subjects_per_db=2.5),
        dict(clips_per_subject=0),
        dict(subjects_per_db=1, clips_per_subject=2),
        dict(others_per_db=-1),
        dict(databases=("casme2", "mmew")),
        dict(databases=()),
        dict(amplitude=(2, 1)),
        dict(amplitude="big"),
        dict(subjects_per_db=True),
    ],
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        syn.generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite(tmp_path):
    args = dict(subjects_per_db=1, clips_per_subject=3, databases=("smic",))
    syn.generate(tmp_path / "out", **args)
    with pytest.raises(ConfigError, match="overwrite"):
        syn.generate(tmp_path / "out", **args)
    (tmp_path / "out" / "SMIC" / "stale.txt").write_text("x")
    syn.generate(tmp_path / "out", overwrite=True, **args)
    assert not (tmp_path / "out" / "SMIC" / "stale.txt").exists()
    (tmp_path / "real" / "SAMM").mkdir(parents=True)  # not ours: never removed
    with pytest.raises(ConfigError, match="real data"):
        syn.generate(tmp_path / "real", overwrite=True, **args)
    assert (tmp_path / "real" / "SAMM").is_dir()


def test_replaces_an_unfinished_set(tmp_path):
    args = dict(subjects_per_db=1, clips_per_subject=3, databases=("samm",))
    syn.generate(tmp_path / "out", **args)
    (tmp_path / "out" / "synthetic.json").unlink()  # as if killed before the end
    syn.generate(tmp_path / "out", **args)  # no overwrite needed
    assert (tmp_path / "out" / "synthetic.json").is_file()
