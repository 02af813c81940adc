"""CAS(ME)^3 Part A reader (reference section 7).

Sheet ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, sheet ``label``: ``Subject``
(``spNO.<k>``), ``Filename`` (a letter, repeated when a video holds several MEs), ``Onset``,
``Apex``, ``Offset``, ``AU``, ``Objective class``, ``emotion``. Frames
``.../spNO.<k>/<letter>/color/<n>.jpg`` (30 fps; dropped frames occur). Because one video can
hold several micro-expressions, the clip id is ``<letter>_<onset>`` (``spNO.1_a_1234``).
"""

from __future__ import annotations

from pathlib import Path

from glfnet.data.readers.base import (
    DatasetScan,
    check_root,
    child_dir,
    clip_folders,
    dedupe,
    find_annotation,
    folder_only_sample,
    parse_frame_number,
    read_sheet,
    sample_from_row,
    search_dir,
    sheet_rows,
    subject_dirs,
)
from glfnet.errors import ConfigError, DataError

NAME = "casme3a"
SHEET_NAMES = (
    "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    "cas(me)3_part_A_ME_label_JpgIndex_v2_emotion.xlsx",
    "cas(me)3_part_A_ME_label_JpgIndex.xlsx",
)
SHEET_PATTERNS = ("*part_A*label*.xls*", "cas(me)3*.xlsx", "*part_A*label*.csv")
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"),
    "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
    "emotion": ("emotion", "Estimated Emotion"),
}
OPTIONAL = {"aus": ("AU", "Action Units", "AUs"), "objective": ("Objective class", "Objective classes")}
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
        raise ConfigError(f"`variant` {variant!r}: CAS(ME)^3 has only one frame set (auto/raw).")
    found = search_dir(root, lambda d: bool(subject_dirs(d, SUBJECT_RE)), max_depth=4)
    if found is None:
        raise DataError(
            f"no CAS(ME)^3 Part A frames under {root}: expected folders "
            f"spNO.<k>/<letter>/color/<n>.jpg within 4 levels of `root`.\n"
            f"Expected layout:\n{LAYOUT}"
        )
    return found


def _clip_frames_dir(sdir: Path, letter: str) -> Path:
    vdir = child_dir(sdir, letter)
    color = child_dir(vdir, "color")
    return color if color.is_dir() else vdir


def read(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read CAS(ME)^3 Part A: one RawSample per sheet row, plus flagged unlabelled videos."""
    root = check_root(root, "CAS(ME)^3 Part A")
    frames_dir = _frames_dir(root, variant)
    sheet = find_annotation(
        root,
        SHEET_NAMES,
        SHEET_PATTERNS,
        annotations,
        what="CAS(ME)^3 Part A label sheet",
        also=(frames_dir.parent,),
    )
    table, _ = read_sheet(sheet, COLUMNS, OPTIONAL, sheet="label")
    subjects = {normalize_subject(k): v for k, v in subject_dirs(frames_dir, SUBJECT_RE).items()}
    samples, used = [], set()
    notes: list[str] = []
    for row in sheet_rows(table, sheet, notes):
        subject = normalize_subject(row["subject"])
        letter = row["filename"].strip()
        onset = parse_frame_number(row["onset"])
        clip = f"{letter}_{onset}" if onset is not None else f"{letter}_row{row['_row']}"
        cdir = _clip_frames_dir(subjects.get(subject, frames_dir / subject), letter)
        used.add((subject, letter.lower()))
        samples.append(sample_from_row(NAME, row, subject, clip, cdir, extra={"objective": row["objective"]}))
    for subject, vdir in clip_folders(subjects):
        if (subject, vdir.name.lower()) not in used:
            samples.append(
                folder_only_sample(NAME, subject, vdir.name, _clip_frames_dir(vdir.parent, vdir.name), sheet)
            )
    return DatasetScan(NAME, root, frames_dir, sheet, dedupe(samples), notes, "raw")
