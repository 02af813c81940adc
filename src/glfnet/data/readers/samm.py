"""SAMM reader (reference section 7).

Frames ``SAMM/<SSS>/<SSS_i_n>/<SSS>_<FFFFF>.jpg`` (5-digit absolute frame number, greyscale,
2040x1088). Sheet ``SAMM_Micro_FACS_Codes_v2.xlsx``: 13 rows of notes, header on row 14:
``Subject`` (int), ``Filename``, ``Inducement Code``, ``Onset Frame``, ``Apex Frame``,
``Offset Frame``, ``Duration``, ``Micro``, ``Action Units``, ``Estimated Emotion``,
``Objective Classes``, ``Notes``. Onset/apex/offset are absolute frame numbers, as in the
file names.
"""

from __future__ import annotations

from pathlib import Path

from glfnet.data import naming
from glfnet.data.readers.base import (
    DatasetScan,
    check_root,
    clip_dir_by_name,
    dedupe,
    find_annotation,
    read_sheet,
    sample_from_row,
    search_dir,
    sheet_rows,
    subject_dirs,
    unlisted_folder_samples,
)
from glfnet.errors import ConfigError, DataError

NAME = "samm"
SHEET_NAMES = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM_Micro_FACS_Codes_v2.csv", "SAMM_Micro_FACS_Codes.xlsx")
SHEET_PATTERNS = ("SAMM*FACS*.xls*", "SAMM*Micro*.xls*", "SAMM*FACS*.csv")
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion", "Estimated Emotions"),
}
OPTIONAL = {
    "aus": ("Action Units", "AU", "AUs"),
    "micro": ("Micro", "Type", "Micro/Macro"),
    "objective": ("Objective Classes", "Objective Class"),
    "inducement": ("Inducement Code",),
    "notes": ("Notes",),
}
SUBJECT_RE = r"\d{1,3}"

LAYOUT = """\
ROOT/
  SAMM_Micro_FACS_Codes_v2.xlsx   13 rows of notes, header on row 14
  SAMM/006/006_1_2/006_05562.jpg  <SSS>_<FFFFF>.jpg, 5-digit absolute frame
`root` may also point at SAMM, with the sheet beside it."""


def _frames_dir(root: Path, variant: str) -> Path:
    if variant not in ("auto", "raw"):
        raise ConfigError(f"`variant` {variant!r}: SAMM has only the raw frames (auto/raw).")
    has_subjects = lambda d: bool(subject_dirs(d, SUBJECT_RE))  # noqa: E731
    for d in (root / "SAMM", root / "samm"):
        if d.is_dir():
            found = search_dir(d, has_subjects, max_depth=2)
            if found is not None:
                return found
    if has_subjects(root):
        return root
    raise DataError(
        f"no SAMM frames under {root}: expected SAMM/<SSS>/<SSS_i_n>/"
        f"<SSS>_<FFFFF>.jpg inside `root` (or `root` pointing at SAMM).\n"
        f"Expected layout:\n{LAYOUT}"
    )


def is_micro(value: str) -> bool:
    """The ``Micro`` column: everything except an explicit macro/no marks a micro-expression."""
    v = str(value).strip().lower()
    return not (v.startswith("macro") or v in ("no", "n", "0", "false"))


def read(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read SAMM under ``root``: one RawSample per sheet row plus flagged unlabelled folders."""
    root = check_root(root, "SAMM")
    frames_dir = _frames_dir(root, variant)
    sheet = find_annotation(
        root,
        SHEET_NAMES,
        SHEET_PATTERNS,
        annotations,
        what="SAMM FACS coding sheet",
        also=(frames_dir.parent,),
    )
    table, _ = read_sheet(sheet, COLUMNS, OPTIONAL)
    subjects = {naming.normalize_subject(k, NAME): v for k, v in subject_dirs(frames_dir, SUBJECT_RE).items()}
    samples, used = [], set()
    notes: list[str] = []
    for row in sheet_rows(table, sheet, notes):
        subject = naming.normalize_subject(row["subject"], NAME)
        clip = naming.normalize_clip(row["filename"], NAME)
        cdir = clip_dir_by_name(subjects.get(subject, frames_dir / subject), clip, NAME)
        used.add((subject, naming.normalize_clip(cdir.name, NAME)))
        samples.append(
            sample_from_row(
                NAME,
                row,
                subject,
                clip,
                cdir,
                extra={"micro": row["micro"], "objective": row["objective"], "notes": row["notes"]},
            )
        )
    samples += unlisted_folder_samples(NAME, subjects, used, sheet)
    return DatasetScan(NAME, root, frames_dir, sheet, dedupe(samples), notes, "raw")
