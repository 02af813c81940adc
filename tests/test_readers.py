"""Raw-dataset readers on official-layout fixtures with the quirks found in the wild."""

from __future__ import annotations

from pathlib import Path

import pytest

import rawfixtures as rf
from glfnet.data.readers import READERS, get_reader, read_database
from glfnet.data.readers.base import (
    compress_ranges,
    frame_number_of,
    list_frames,
    norm_key,
    parse_frame_number,
)
from glfnet.errors import ConfigError, DataError


def by_id(scan):
    return {s.sample_id: s for s in scan.samples}


# ---------------------------------------------------------------------------- helpers


def test_frame_numbers_sort_numerically(tmp_path):
    for name in ["img10.jpg", "img9.jpg", "img100.jpg", "img46.jpg", "notes.txt", "Thumbs.db"]:
        (tmp_path / name).write_bytes(b"x")
    frames, numbers = list_frames(tmp_path)
    assert [p.name for p in frames] == ["img9.jpg", "img10.jpg", "img46.jpg", "img100.jpg"]
    assert numbers == [9, 10, 46, 100]
    assert frame_number_of(Path("006_05562.jpg")) == 5562
    assert frame_number_of(Path("reg_image046462.bmp")) == 46462


def test_small_parsers():
    assert parse_frame_number("46") == 46 and parse_frame_number("46.0") == 46
    assert parse_frame_number("/") is None and parse_frame_number("") is None
    assert norm_key(" Onset Frame ") == "onsetframe"
    assert compress_ranges([9, 3, 4, 5]) == "3-5, 9"


# ---------------------------------------------------------------------------- CASME II


@pytest.fixture(scope="module")
def casme2_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme2")
    rf.casme2_quirky(root)
    return root


def test_casme2_samples_and_ids(casme2_root):
    scan = read_database("casme2", casme2_root)
    assert scan.variant == "raw" and scan.annotations.name == "CASME2-coding-20140508.xlsx"
    s = by_id(scan)
    assert set(s) >= {"sub01_EP02_01f", "sub04_EP12_01f", "sub05_EP09_05f", "sub03_EP07_04"}
    a = s["sub01_EP02_01f"]
    assert (a.subject, a.clip, a.emotion) == ("sub01", "EP02_01f", "happiness")
    assert (a.onset, a.apex, a.offset) == (8, 10, 12)
    assert [p.name for p in a.frames] == ["img8.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg"]
    assert a.action_units == "4" and a.anomalies == []


def test_casme2_anomalies_are_reported_not_dropped(casme2_root):
    s = by_id(read_database("casme2", casme2_root))
    slash = s["sub04_EP12_01f"]
    assert slash.apex is None and any("'/'" in a for a in slash.anomalies)
    assert any("apex equals onset" in a for a in s["sub05_EP09_05f"].anomalies)
    assert any("frames missing on disk: 4" in a for a in s["sub02_EP14_01"].anomalies)
    no_folder = s["sub03_EP07_04"]
    assert no_folder.frames == [] and any("clip folder not found" in a for a in no_folder.anomalies)
    no_row = s["sub03_EP19_99"]
    assert not no_row.annotated and any("has no row" in a for a in no_row.anomalies)


def test_casme2_root_one_level_deeper(casme2_root):
    scan = read_database("casme2", casme2_root / "CASME2-RAW")
    assert scan.annotations == casme2_root / "CASME2-coding-20140508.xlsx"
    assert len(scan.samples) == 9


def test_casme2_other_sheet_versions_and_variants(tmp_path):
    clips = [
        rf.Clip(1, "EP02_01f", "happiness", onset=1, apex=2, offset=3),
        rf.Clip(12, "EP06_02_01", "others", onset=1, apex=2, offset=3),
    ]
    rf.write_casme2(tmp_path / "a", clips, sheet="CASME2-coding-20190701.xlsx")
    assert read_database("casme2", tmp_path / "a").annotations.name.endswith("20190701.xlsx")
    rf.write_casme2(tmp_path / "b", clips, variant="cropped", sheet="CASME2-coding-updated.xlsx")
    scan = read_database("casme2", tmp_path / "b")
    assert scan.variant == "cropped" and scan.samples[0].frames[0].name == "reg_img1.jpg"
    rf.write_casme2(tmp_path / "c", clips, variant="selected")
    assert read_database("casme2", tmp_path / "c").variant == "selected"
    with pytest.raises(DataError, match="CASME2-RAW"):
        read_database("casme2", tmp_path / "c", variant="raw")
    with pytest.raises(ConfigError):
        read_database("casme2", tmp_path / "c", variant="bogus")


def test_header_found_after_title_rows_and_csv(tmp_path):
    clips = [rf.Clip(3, "EP01_01", "surprise", onset=1, apex=2, offset=3)]
    rf.write_casme2(tmp_path, clips, sheet=None)
    header = [
        "Subject",
        "Filename",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Action Units",
        "Estimated Emotion",
    ]
    rf.write_xlsx(
        tmp_path / "CASME2-coding-20140508.xlsx",
        header,
        [["03", "EP01_01", "1", "2", "3", "1+2", "Surprise"]],
        preamble=[["CASME II coding"], ["version 2014"]],
    )
    s = read_database("casme2", tmp_path).samples[0]
    assert (s.subject, s.apex, s.emotion) == ("sub03", 2, "surprise")
    csv = tmp_path / "my.csv"
    csv.write_text("note\n" + ",".join(header) + "\n3,EP01_01,1,2,3,1,surprise\n")
    assert read_database("casme2", tmp_path, annotations=csv).samples[0].subject == "sub03"


# ---------------------------------------------------------------------------- SAMM


@pytest.fixture(scope="module")
def samm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("samm")
    rf.samm_quirky(root)
    return root


def test_samm_preamble_ids_and_absolute_frames(samm_root):
    scan = read_database("samm", samm_root)
    s = by_id(scan)
    a = s["006_006_1_2"]
    assert (a.subject, a.clip, a.emotion, a.onset, a.apex) == ("006", "006_1_2", "anger", 5562, 5564)
    assert a.frames[0].name == "006_05562.jpg" and a.extra["micro"].startswith("Micro")
    big = s["006_006_1_3"]
    assert big.frame_numbers == [99998, 99999, 100000, 100001]
    assert any("outside [onset 300, offset 304]" in x for x in s["011_011_3_2"].anomalies)
    assert "025_025_2_1" in s


def test_samm_root_at_frames_folder(samm_root):
    assert len(read_database("samm", samm_root / "SAMM").samples) == 5


# ---------------------------------------------------------------------------- SMIC


def test_smic_hs_folder_labels_and_names(tmp_path):
    rf.smic_quirky(tmp_path)
    scan = read_database("smic", tmp_path)
    s = by_id(scan)
    assert set(s) == {"s01_s01_ne_01", "s01_s01_po_01", "s02_s02_sur_01", "s12_s12_ne_03"}
    a = s["s01_s01_ne_01"]
    assert (a.emotion, a.apex, a.onset, a.offset) == ("negative", None, 46460, 46466)
    assert a.extra["apex_column"] is False
    assert read_database("smic", tmp_path / "SMIC_all_raw" / "HS").frames_dir == scan.frames_dir


def test_smic_misfiled_clip_is_flagged(tmp_path):
    rf.write_smic(tmp_path, [rf.Clip("s3", "s3_po_02", "negative", onset=1, offset=3)])
    s = read_database("smic", tmp_path).samples[0]
    assert s.emotion == "negative" and any("clip name says positive" in a for a in s.anomalies)


def test_smic_e_absolute_and_relative_numbering(tmp_path):
    clips = [
        rf.Clip("s1", "s1_ne_01", "negative", onset=46465, offset=46470, frames=list(range(46460, 46480))),
        rf.Clip(2, "s2_sur_03", "surprise", onset=1010, offset=1015, frames=list(range(1000, 1020))),
    ]
    rf.write_smic_e(tmp_path / "abs", clips)
    s = by_id(read_database("smic-e", tmp_path / "abs"))
    a = s["s01_s01_ne_01"]
    assert (a.onset, a.offset, a.apex) == (46465, 46470, None) and a.anomalies == []
    assert s["s02_s02_sur_03"].onset == 1010
    # the same clip with files numbered from 1: OnsetF - FirstF is the index in the clip
    root = tmp_path / "rel"
    c = rf.Clip("s1", "s1_ne_01", "negative", onset=1, offset=20, frames=list(range(1, 21)))
    rf.write_smic_e(root, [c], sheet=None)
    rf.write_xlsx(
        root / "SMIC-HS-E_annotation.xlsx",
        ["Subject", "Filename", "OnsetF", "OffsetF", "FirstF", "LastF", "Emotion"],
        [["s1", "s1_ne_01", 46465, 46470, 46460, 46479, "negative"]],
        sheet="HS",
    )
    r = read_database("smic-e", root).samples[0]
    assert (r.onset, r.offset) == (6, 11) and r.anomalies == []


# ---------------------------------------------------------------------------- CAS(ME)^3, MMEW


def test_casme3a_repeated_letters_and_color_folder(tmp_path):
    clips = [
        rf.Clip("spNO.1", "a", "happy", onset=10, apex=12, offset=14, frames=list(range(1, 30))),
        rf.Clip(
            "spNO.1", "a", "surprise", onset=20, apex=22, offset=24, frames=list(range(1, 30)), folder=False
        ),
        rf.Clip("spNO.2", "b", "disgust", onset=5, apex=6, offset=7),
    ]
    rf.write_casme3a(tmp_path, clips)
    s = by_id(read_database("casme3a", tmp_path))
    assert set(s) == {"spNO.1_a_10", "spNO.1_a_20", "spNO.2_b_5"}
    assert s["spNO.1_a_20"].frames and s["spNO.1_a_20"].frames[0].parent.name == "color"


def test_mmew_folder_emotion_mismatch(tmp_path):
    clips = [
        rf.Clip("S01", "S01_happiness_1", "happiness", onset=1, apex=2, offset=4),
        rf.Clip("S02", "S02_fear_2", "fear", onset=1, apex=2, offset=4, extra={"folder": "surprise"}),
    ]
    rf.write_mmew(tmp_path, clips)
    s = by_id(read_database("mmew", tmp_path))
    assert s["S01_S01_happiness_1"].anomalies == []
    assert any("filed under surprise" in a for a in s["S02_S02_fear_2"].anomalies)


# ---------------------------------------------------------------------------- errors


def test_wrong_root_and_layout_messages(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_database("casme2", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    for db, expected in [
        ("casme2", "CASME2-RAW"),
        ("samm", "SAMM/<SSS>"),
        ("smic", "SMIC_all_raw/HS"),
        ("smic-e", "HS/s<k>"),
        ("casme3a", "spNO"),
        ("mmew", "Micro_Expression"),
    ]:
        with pytest.raises(DataError, match="Expected layout") as e:
            read_database(db, tmp_path / "empty")
        assert expected in str(e.value)
    with pytest.raises(ConfigError, match="unknown database"):
        get_reader("fer2013")


def test_missing_or_misnamed_sheet_lists_names(tmp_path):
    rf.write_casme2(tmp_path, [rf.Clip(1, "EP02_01f", "happiness")], sheet="coding.xlsx")
    with pytest.raises(DataError) as e:
        read_database("casme2", tmp_path)
    msg = str(e.value)
    assert "CASME2-coding-20140508.xlsx" in msg and "`annotations`" in msg and "--" not in msg
    with pytest.raises(DataError, match="does not exist"):
        read_database("casme2", tmp_path, annotations=tmp_path / "nope.xlsx")
    assert read_database("casme2", tmp_path, annotations=tmp_path / "coding.xlsx").samples


def test_sheet_missing_column_names_it(tmp_path):
    rf.write_samm(tmp_path, [rf.Clip(6, "006_1_2", "Anger", onset=1, apex=2, offset=3)], sheet=None)
    rf.write_xlsx(
        tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx",
        ["Subject", "Filename", "Onset Frame", "Offset Frame", "Estimated Emotion"],
        [[6, "006_1_2", 1, 3, "Anger"]],
        preamble=rf.SAMM_PREAMBLE,
    )
    with pytest.raises(DataError, match="Apex Frame"):
        read_database("samm", tmp_path)


def test_unreadable_and_old_format_sheets(tmp_path):
    rf.write_casme2(tmp_path, [rf.Clip(1, "EP02_01f", "happiness")], sheet=None)
    bad = tmp_path / "CASME2-coding-20140508.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read the annotation sheet"):
        read_database("casme2", tmp_path)
    bad.unlink()
    xls = tmp_path / "CASME2_label_Ver_2.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    try:
        import xlrd  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="xlrd"):
            read_database("casme2", tmp_path)


def test_registry_is_complete():
    assert set(READERS) == {"casme2", "samm", "smic", "smic-e", "casme3a", "mmew"}
    for r in READERS.values():
        assert "ROOT" in r.layout
