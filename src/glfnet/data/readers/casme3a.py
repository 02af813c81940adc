"""CAS(ME)^3 Part A reader (reference section 7).

Sheet ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, sheet ``label``: ``Subject``
(``spNO.<k>``), ``Filename`` (a letter, repeated when a video holds several MEs), ``Onset``,
``Apex``, ``Offset``, ``AU``, ``Objective class``, ``emotion``. Frames
``.../spNO.<k>/<letter>/color/<n>.jpg`` (30 fps; dropped frames occur). Because one video can
hold several micro-expressions, the clip id is ``<letter>_<onset>`` (``spNO.1_a_1234``).
"""

from __future__ import annotations

from pathlib import Path

from glfnet.data.readers.base import (DatasetScan, RawSample, check_root, check_sample,
                                      child_dir, dedupe, find_annotation, folder_only_sample,
                                      list_frames, parse_frame_number, read_sheet, search_dir,
                                      subject_dirs)
from glfnet.errors import ConfigError, DataError

NAME = "casme3a"
SHEET_NAMES = ("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
               "cas(me)3_part_A_ME_label_JpgIndex_v2_emotion.xlsx",
               "cas(me)3_part_A_ME_label_JpgIndex.xlsx")
SHEET_PATTERNS = ("*part_A*label*.xls*", "cas(me)3*.xlsx", "*part_A*label*.csv")
COLUMNS = {"subject": ("Subject",), "filename": ("Filename", "File name"),
           "onset": ("Onset", "Onset Frame", "OnsetFrame"),
           "apex": ("Apex", "Apex Frame", "ApexFrame"),
           "offset": ("Offset", "Offset Frame", "OffsetFrame"),
           "emotion": ("emotion", "Estimated Emotion")}
OPTIONAL = {"aus": ("AU", "Action Units", "AUs"),
            "objective": ("Objective class", "Objective classes")}
SUBJECT_RE = r"spNO\.\d+"

LAYOUT = """\
ROOT/
  cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx   sheet 'label'
  .../spNO.1/a/color/1.jpg, 2.jpg, ...        up to 4 levels below ROOT
Clip ids are <letter>_<onset>: a video can hold several micro-expressions."""


def normalize_subject(value: str) -> str:
    """``spno.1`` / ``spNO.1`` / ``1`` -> ``spNO.1``."""
    v = str(value).strip()
    num = parse_frame_number(v.split(".")[-1]) if "." in v else parse_frame_number(v)
    return f"spNO.{num}" if num is not None else v


def _frames_dir(root: Path, variant: str) -> Path:
    if variant not in ("auto", "raw"):
        raise ConfigError(f"--variant {variant!r}: CAS(ME)^3 has only one frame set (auto/raw).")
    found = search_dir(root, lambda d: bool(subject_dirs(d, SUBJECT_RE)), max_depth=4)
    if found is None:
        raise DataError(f"no CAS(ME)^3 Part A frames under {root}: expected folders "
                        f"spNO.<k>/<letter>/color/<n>.jpg within 4 levels of --root.\n"
                        f"Expected layout:\n{LAYOUT}")
    return found


def _clip_frames_dir(sdir: Path, letter: str) -> Path:
    vdir = child_dir(sdir, letter)
    color = child_dir(vdir, "color")
    return color if color.is_dir() else vdir


def read(root, annotations=None, variant: str = "auto") -> DatasetScan:
    """Read CAS(ME)^3 Part A: one RawSample per sheet row, plus flagged unlabelled videos."""
    root = check_root(root, "CAS(ME)^3 Part A")
    frames_dir = _frames_dir(root, variant)
    sheet = find_annotation(root, SHEET_NAMES, SHEET_PATTERNS, annotations,
                            what="CAS(ME)^3 Part A label sheet", also=(frames_dir.parent,))
    table, _ = read_sheet(sheet, COLUMNS, OPTIONAL, sheet="label")
    subjects = {normalize_subject(k): v for k, v in subject_dirs(frames_dir, SUBJECT_RE).items()}
    samples, notes, used = [], [], set()
    for row in table.to_dict("records"):
        if not row["subject"] or not row["filename"]:
            notes.append(f"{sheet.name} row {row['_row']}: no Subject or Filename; ignored")
            continue
        subject = normalize_subject(row["subject"])
        letter = row["filename"].strip()
        onset = parse_frame_number(row["onset"])
        clip = f"{letter}_{onset}" if onset is not None else f"{letter}_row{row['_row']}"
        sdir = subjects.get(subject, frames_dir / subject)
        cdir = _clip_frames_dir(sdir, letter)
        used.add((subject, letter.lower()))
        frames, numbers = list_frames(cdir) if cdir.is_dir() else ([], [])
        s = RawSample(database=NAME, subject=subject, clip=clip,
                      emotion=row["emotion"].strip().lower(), onset=onset,
                      apex=parse_frame_number(row["apex"]),
                      offset=parse_frame_number(row["offset"]),
                      frames=frames, frame_numbers=numbers, action_units=row["aus"],
                      clip_dir=cdir, extra={"row": row["_row"], "objective": row["objective"]})
        check_sample(s, apex_raw=row["apex"], onset_raw=row["onset"], offset_raw=row["offset"])
        samples.append(s)
    for subject, sdir in subjects.items():
        for vdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            if (subject, vdir.name.lower()) not in used:
                samples.append(folder_only_sample(NAME, subject, vdir.name,
                                                  _clip_frames_dir(sdir, vdir.name), sheet))
    return DatasetScan(NAME, root, frames_dir, sheet, dedupe(samples), notes, "raw")
