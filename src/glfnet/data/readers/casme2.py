"""CASME II reader (reference section 7).

Frames ``CASME2-RAW/subXX/<Filename>/img<N>.jpg`` (N not zero-padded), or
``CASME2_RAW_selected/`` (onset..offset only) or the author crops
``Cropped/subXX/<Filename>/reg_img<N>.jpg``. Coding sheet ``CASME2-coding-20140508.xlsx``
(``Subject`` as an integer, ``Filename``, ``OnsetFrame``, ``ApexFrame`` (one is "/"),
``OffsetFrame``, ``Action Units``, ``Estimated Emotion``); the 2019, "updated" and
``Ver_2`` versions have the same columns.
"""

from __future__ import annotations

from pathlib import Path

from glfnet.data import naming
from glfnet.data.readers.base import (
    DatasetScan,
    check_root,
    child_dir,
    clip_folders,
    dedupe,
    find_annotation,
    folder_only_sample,
    read_sheet,
    sample_from_row,
    search_dir,
    sheet_rows,
    subject_dirs,
)
from glfnet.errors import ConfigError, DataError

NAME = "casme2"
SHEET_NAMES = (
    "CASME2-coding-20140508.xlsx",
    "CASME2-coding-20190701.xlsx",
    "CASME2-coding-updated.xlsx",
    "CASME2_label_Ver_2.xls",
    "CASME2-coding-20140508.csv",
)
SHEET_PATTERNS = ("CASME2*coding*.xls*", "CASME2*label*.xls*", "CASME2*coding*.csv")
VARIANTS = {
    "raw": ("CASME2-RAW", "CASME2_RAW", "CASME2-RAW-full"),
    "selected": ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW-selected"),
    "cropped": ("Cropped", "CASME2_Cropped", "CASME2-Cropped"),
}
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion", "Estimated Emotions"),
}
OPTIONAL = {"aus": ("Action Units", "AU", "AUs"), "objective": ("Objective Class",)}
SUBJECT_RE = r"sub\d+"

LAYOUT = """\
ROOT/
  CASME2-coding-20140508.xlsx         the coding sheet (or -20190701.xlsx,
                                      -updated.xlsx, CASME2_label_Ver_2.xls)
  CASME2-RAW/sub01/EP02_01f/img1.jpg  frames img<N>.jpg, N not zero-padded
  or CASME2_RAW_selected/sub01/EP02_01f/img<N>.jpg
  or Cropped/sub01/EP02_01f/reg_img<N>.jpg  (already cropped: `align=False`)
`root` may also point at CASME2-RAW, with the sheet beside it."""


def _frames_dir(root: Path, variant: str) -> tuple[Path, str]:
    has_subjects = lambda d: bool(subject_dirs(d, SUBJECT_RE))  # noqa: E731
    if variant not in ("auto", *VARIANTS):
        raise ConfigError(
            f"`variant` {variant!r} is not a CASME II variant; use one of auto, {', '.join(VARIANTS)}."
        )
    order = list(VARIANTS) if variant == "auto" else [variant]
    for v in order:
        for name in VARIANTS[v]:
            d = root / name
            if d.is_dir():
                found = search_dir(d, has_subjects, max_depth=2)
                if found is not None:
                    return found, v
    if variant == "auto" and has_subjects(root):
        guess = next(
            (v for v, names in VARIANTS.items() if root.name.lower() in {n.lower() for n in names}), "raw"
        )
        return root, guess
    wanted = " or ".join(VARIANTS[variant][:1] if variant != "auto" else [VARIANTS[v][0] for v in VARIANTS])
    raise DataError(
        f"no CASME II frames under {root}: expected {wanted}/subXX/<Filename>/"
        f"img<N>.jpg inside `root` (or `root` pointing at that folder).\n"
        f"Expected layout:\n{LAYOUT}"
    )


def read(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read CASME II under ``root``: one RawSample per sheet row, plus one per clip folder
    that has no row (unlabelled, flagged)."""
    root = check_root(root, "CASME II")
    frames_dir, variant = _frames_dir(root, variant)
    sheet = find_annotation(
        root,
        SHEET_NAMES,
        SHEET_PATTERNS,
        annotations,
        what="CASME II coding sheet",
        also=(frames_dir.parent,),
    )
    table, _ = read_sheet(sheet, COLUMNS, OPTIONAL)
    subjects = {naming.normalize_subject(k, NAME): v for k, v in subject_dirs(frames_dir, SUBJECT_RE).items()}
    prefix = "reg_img" if variant == "cropped" else "img"
    samples, used = [], set()
    notes: list[str] = []
    for row in sheet_rows(table, sheet, notes):
        subject = naming.normalize_subject(row["subject"], NAME)
        clip = row["filename"].strip()
        cdir = child_dir(subjects.get(subject, frames_dir / subject), clip)
        used.add((subject, cdir.name.lower()))
        samples.append(
            sample_from_row(
                NAME, row, subject, clip, cdir, extra={"objective": row["objective"], "frame_prefix": prefix}
            )
        )
    for subject, cdir in clip_folders(subjects):
        if (subject, cdir.name.lower()) not in used:
            samples.append(folder_only_sample(NAME, subject, cdir.name, cdir, sheet))
    return DatasetScan(NAME, root, frames_dir, sheet, dedupe(samples), notes, variant)
