"""Protocol sample sets: exact composite counts and every exclusion with its reason."""

from __future__ import annotations

from collections import Counter

import pytest

import rawfixtures as rf
from glfnet.data.protocols import DEFAULT_PROTOCOL, PROTOCOLS, check_protocol_for, get_protocol
from glfnet.data.readers import read_database
from glfnet.data.readers.base import RawSample
from glfnet.errors import ConfigError


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    """The three databases at full size (sheets; SMIC folders with two tiny frames)."""
    root = tmp_path_factory.mktemp("composite")
    clips = rf.composite_clips()
    rf.write_casme2(root / "casme2", clips["casme2"])
    rf.write_samm(root / "samm", clips["samm"])
    rf.write_smic(root / "smic", clips["smic"])
    (root / "casme2" / "CASME2-RAW").mkdir()  # frames absent: rows without folders
    (root / "casme2" / "CASME2-RAW" / "sub01").mkdir()
    (root / "samm" / "SAMM" / "006").mkdir(parents=True)
    return {db: read_database(db, root / db) for db in ("casme2", "samm", "smic")}


def test_megc2019_exact_counts(composite):
    samples = [s for scan in composite.values() for s in scan.samples]
    assert len(samples) == 255 + 159 + 164
    sel = get_protocol("megc2019").select(samples)
    assert sel.classes == ["negative", "positive", "surprise"]
    assert len(sel.included) == 442
    assert len({(s.database, s.subject) for s, _ in sel.included}) == 68
    assert Counter(lab for _, lab in sel.included) == {"negative": 250, "positive": 109, "surprise": 83}
    counts = sel.counts()
    assert counts["casme2"] == {"negative": 88, "positive": 32, "surprise": 25}
    assert counts["samm"] == {"negative": 92, "positive": 26, "surprise": 15}
    assert counts["smic"] == {"negative": 70, "positive": 51, "surprise": 43}
    per_db_subjects = Counter(db for db, _ in {(s.database, s.subject) for s, _ in sel.included})
    assert per_db_subjects == {"casme2": 24, "samm": 28, "smic": 16}
    # nothing vanishes silently: every sample is included or excluded with a reason
    assert len(sel.included) + len(sel.excluded) == len(samples)
    assert all(reason for _, reason in sel.excluded)


def test_megc2019_exclusions(composite):
    sel = get_protocol("megc2019").select(composite["casme2"].samples + composite["samm"].samples)
    reasons = {s.sample_id: r for s, r in sel.excluded}
    assert "apex '/'" in reasons["sub04_EP12_01f"]
    assert "apex equals onset" in reasons["sub05_EP09_05f"]
    assert {s.subject for s, _ in sel.included if s.database == "samm"}.isdisjoint({"025"})
    assert any(s.subject == "025" for s, _ in sel.excluded)
    excluded_emotions = Counter(s.emotion for s, _ in sel.excluded if s.database == "casme2")
    assert excluded_emotions == {"others": 99, "sadness": 7, "fear": 2, "disgust": 1, "repression": 1}


def test_single_database_protocols(composite):
    casme = get_protocol("casme2-5").select(composite["casme2"].samples)
    assert Counter(l for _, l in casme.included) == {
        "others": 99,
        "disgust": 63,
        "happiness": 32,
        "repression": 27,
        "surprise": 25,
    }
    assert casme.classes == ["happiness", "disgust", "repression", "surprise", "others"]
    samm = get_protocol("samm-5").select(composite["samm"].samples)
    assert Counter(l for _, l in samm.included) == {
        "anger": 57,
        "other": 26,
        "happiness": 26,
        "surprise": 15,
        "contempt": 12,
    }
    smic = get_protocol("smic-3").select(composite["smic"].samples)
    assert len(smic.included) == 164
    everything = get_protocol("all").select(composite["samm"].samples)
    assert everything.classes == sorted(everything.classes) and len(everything.included) == 159


def test_rows_without_frames_are_still_expected(composite):
    sel = get_protocol("megc2019").select(composite["casme2"].samples)
    assert all(not s.frames for s, _ in sel.included)
    assert all(any("clip folder not found" in a for a in s.anomalies) for s, _ in sel.included)


def _s(db, emotion, subject="sub01", clip="EP01_01", **kw):
    return RawSample(database=db, subject=subject, clip=clip, emotion=emotion, **kw)


def test_rules_on_single_samples():
    megc = get_protocol("megc2019")
    assert megc.label(_s("casme2", "Repression")) == ("negative", "")
    assert megc.label(_s("samm", "Contempt", "006", "006_1_2")) == ("negative", "")
    macro = _s("samm", "Anger", "006", "006_1_2", extra={"micro": "Macro"})
    assert megc.label(macro)[0] is None and "micro" in megc.label(macro)[1]
    assert megc.label(_s("smic", "surprise", "s01", "s01_sur_01")) == ("surprise", "")
    assert megc.label(_s("smic-e", "surprise", "s01", "s01_sur_01"))[0] is None
    unlabelled = _s("casme2", "", annotated=False)
    assert "no row" in megc.label(unlabelled)[1]
    # the apex never decides, except for the composite's two listed samples
    assert megc.label(_s("casme2", "happiness", apex=None, anomalies=["apex '/'"]))[0] == "positive"


def test_protocol_lookup_and_checks():
    assert set(PROTOCOLS) == {"megc2019", "casme2-5", "samm-5", "smic-3", "all"}
    assert set(DEFAULT_PROTOCOL) == {"casme2", "samm", "smic", "smic-e", "casme3a", "mmew"}
    with pytest.raises(ConfigError, match="unknown protocol"):
        get_protocol("casme2-7")
    with pytest.raises(ConfigError, match="samm-5"):
        check_protocol_for(get_protocol("casme2-5"), ["samm"])
    check_protocol_for(get_protocol("megc2019"), ["casme2", "samm", "smic"])
