"""`glfnet prepare` end to end on official-layout fixtures, and its messages for user mistakes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import rawfixtures as rf
from clirun import glfnet as run
from glfnet.cli.main import main
from glfnet.data import cache


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    rf.casme2_quirky(root / "casme2", kind="face")
    rf.samm_quirky(root / "samm", kind="face")
    rf.smic_quirky(root / "smic", kind="face")
    return root


@pytest.fixture(scope="module")
def megc_cache(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("megc") / "cache"
    png = out.parent / "png"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "prepare",
                "megc2019",
                "--casme2",
                str(raw / "casme2"),
                "--samm",
                str(raw / "samm"),
                "--smic",
                str(raw / "smic"),
                "--out",
                str(out),
                "--jobs",
                "1",
                "--export-png",
                str(png),
            ]
        )
    assert e.value.code in (0, None)
    return out


def test_help_teaches_the_layouts(capsys):
    code, out, _ = run(capsys, "prepare", "--help")
    assert code == 0
    for db in ("casme2", "samm", "smic", "smic-e", "casme3a", "mmew", "megc2019"):
        assert db in out
    _, out, _ = run(capsys, "prepare", "samm", "--help")
    assert "SAMM/006/006_1_2/006_05562.jpg" in out and "row 14" in out
    _, out, _ = run(capsys, "prepare", "megc2019", "--help")
    assert "CASME2-RAW/sub01/EP02_01f" in out and "SMIC_all_raw/HS" in out


@pytest.mark.slow
def test_megc2019_cache_contents(megc_cache):
    meta = cache.read_meta(megc_cache)
    assert meta["classes"] == ["negative", "positive", "surprise"]
    assert meta["protocol"] == "megc2019" and meta["size"] == 28
    assert {"params", "glfnet_version"} <= set(meta)
    m = cache.read_manifest(megc_cache).set_index("sample_id")
    assert set(m.index) == {
        "sub01_EP02_01f",
        "sub01_EP03_02",
        "sub02_EP14_01",
        "sub03_EP07_04",
        "006_006_1_2",
        "006_006_1_3",
        "011_011_3_2",
        "s01_s01_ne_01",
        "s01_s01_po_01",
        "s02_s02_sur_01",
        "s12_s12_ne_03",
    }
    assert m.loc["sub03_EP07_04", "status"] == "missing"
    assert (m["status"] == "ok").sum() == 10 and (m.loc[m.status == "ok", "face"] == "found").all()
    assert m.loc["006_006_1_2", "label"] == "negative" and m.loc["006_006_1_2", "subject"] == "006"
    assert "frames missing on disk: 4" in m.loc["sub02_EP14_01", "anomalies"]
    assert "outside [onset 300, offset 304]" in m.loc["011_011_3_2", "anomalies"]
    assert m.loc["011_011_3_2", "apex_source"] == "midpoint"
    assert m.loc["s01_s01_ne_01", "apex_source"] == "midpoint"
    excluded = (megc_cache / "excluded.csv").read_text()
    assert "sub04_EP12_01f" in excluded and "025_025_2_1" in excluded
    assert "sub03_EP19_99" in excluded  # a folder without a row is listed, not dropped
    flow = cache.load_flow(megc_cache / m.loc["sub01_EP02_01f", "file"])
    assert flow.shape == (3, 28, 28) and np.isfinite(flow).all()
    # the fixture's CASME II motion is (+1.5, -1.0) px: rightward and upward
    assert flow[0].mean() > 0.2 and flow[1].mean() < -0.1
    png = megc_cache.parent / "png"
    assert (png / "sub01_EP02_01f .png").is_file() and (png / "labels.csv").is_file()


@pytest.mark.slow
def test_megc2019_screen_report_and_resume(raw, megc_cache, capsys):
    code, out, err = run(
        capsys,
        "prepare",
        "megc2019",
        "--casme2",
        raw / "casme2",
        "--samm",
        raw / "samm",
        "--smic",
        raw / "smic",
        "--out",
        megc_cache,
    )
    assert code == 0
    assert "0 computed, 10 already there" in out
    assert "negative" in out and "4/5" in out and "10/11" in out  # counts table
    assert "sub02_EP14_01 [ok]: frames missing on disk: 4" in out
    assert "Expected but not found on disk (1)" in out and "sub03_EP07_04" in out
    assert "sub03_EP19_99: clip folder EP19_99 has no row" in out  # folder without a row
    assert "the complete database gives 88/32/25" in err
    code, _, err = run(
        capsys,
        "prepare",
        "megc2019",
        "--casme2",
        raw / "casme2",
        "--samm",
        raw / "samm",
        "--smic",
        raw / "smic",
        "--out",
        megc_cache,
        "--size",
        "32",
    )
    assert code == 2 and "other settings" in err and "--overwrite" in err


def test_single_database_default_protocol(raw, tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "prepare",
        "casme2",
        "--root",
        raw / "casme2" / "CASME2-RAW",
        "--out",
        tmp_path / "c",
        "--flow",
        "dis",
        "--jobs",
        "1",
    )
    assert code == 0 and "casme2-5" in out
    meta = cache.read_meta(tmp_path / "c")
    assert meta["classes"] == ["happiness", "disgust", "repression", "surprise", "others"]
    m = cache.read_manifest(tmp_path / "c").set_index("sample_id")
    assert m.loc["sub04_EP12_01f", "apex_source"] == "midpoint"
    assert "apex '/'" in m.loc["sub04_EP12_01f", "anomalies"]
    assert "sub04_EP12_01f [ok]: apex '/' is not a frame number" in out


def test_no_align_for_cropped_frames(tmp_path, capsys):
    rf.write_casme2(
        tmp_path,
        [rf.Clip(1, "EP02_01f", "happiness", onset=1, apex=3, offset=5, motion=(1, 0))],
        kind="face",
        variant="cropped",
    )
    code, _, err = run(
        capsys,
        "prepare",
        "casme2",
        "--root",
        tmp_path,
        "--out",
        tmp_path / "c",
        "--no-align",
        "--flow",
        "dis",
        "--jobs",
        "1",
    )
    assert code == 0 and "pre-cropped" not in err  # the --no-align hint only when aligning
    m = cache.read_manifest(tmp_path / "c")
    assert m.loc[0, "face"] == "not aligned"
    assert cache.read_meta(tmp_path / "c")["params"]["align"] is False


# ---------------------------------------------------------------------------- user mistakes


def test_clear_messages_for_bad_input(raw, tmp_path, capsys):
    code, _, err = run(capsys, "prepare", "casme2", "--root", tmp_path / "nope", "--out", tmp_path / "c")
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "prepare", "samm", "--root", raw / "casme2", "--out", tmp_path / "c")
    assert code == 2 and "SAMM/<SSS>/<SSS_i_n>" in err
    no_sheet = tmp_path / "nosheet"
    shutil.copytree(raw / "casme2" / "CASME2-RAW", no_sheet / "CASME2-RAW")
    (no_sheet / "CASME2_coding.xlsx.bak").write_text("x")
    code, _, err = run(capsys, "prepare", "casme2", "--root", no_sheet, "--out", tmp_path / "c")
    assert code == 2 and "CASME2-coding-20140508.xlsx" in err and "--annotations" in err
    bad_sheet = tmp_path / "bad.xlsx"
    rf.write_xlsx(bad_sheet, ["Subject", "Filename", "OnsetFrame", "OffsetFrame"], [[1, "x", 1, 2]])
    code, _, err = run(
        capsys, "prepare", "casme2", "--root", no_sheet, "--annotations", bad_sheet, "--out", tmp_path / "c"
    )
    assert code == 2 and "ApexFrame" in err
    code, _, err = run(capsys, "prepare", "megc2019", "--out", tmp_path / "c")
    assert code == 2 and "--casme2" in err
    code, _, err = run(
        capsys, "prepare", "samm", "--root", raw / "samm", "--out", tmp_path / "c", "--protocol", "casme2-5"
    )
    assert code == 2 and "samm-5" in err
    code, _, err = run(
        capsys, "prepare", "samm", "--root", raw / "samm", "--out", tmp_path / "c", "--flow", "lucas-kanade"
    )
    assert code == 2 and "tvl1" in err


def test_unreadable_frames_are_named(tmp_path, capsys):
    rf.write_smic(tmp_path, [rf.Clip("s1", "s1_ne_01", "negative", onset=1, offset=3)])
    for p in (tmp_path / "SMIC_all_raw/HS/s1/micro/negative/s1_ne_01").iterdir():
        p.write_bytes(b"broken")
    code, out, err = run(
        capsys, "prepare", "smic", "--root", tmp_path, "--out", tmp_path / "c", "--jobs", "1"
    )
    assert code == 2 and "no sample could be processed" in err
    assert "unreadable frame" in out and "reg_image000001.bmp" in out
    m = cache.read_manifest(tmp_path / "c")
    assert m.loc[0, "status"] == "failed"
