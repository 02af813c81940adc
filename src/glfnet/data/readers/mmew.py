"""MMEW reader (reference section 7).

Frames ``MMEW_Final/Micro_Expression/<emotion>/<Filename>/<n>.jpg`` (90 fps); sheet
``MMEW_Micro_Exp.xlsx``: ``Subject``, ``Filename``, ``OnsetFrame``, ``ApexFrame``,
``OffsetFrame``, ``Action Units``, ``Estimated Emotion``, ``remarks``. Clip folders are found
by their Filename under any emotion folder; a folder filed under another emotion than the
sheet's is flagged.
"""

from __future__ import annotations

from pathlib import Path

from glfnet.data import naming
from glfnet.data.readers.base import (
    DatasetScan,
    check_root,
    dedupe,
    find_annotation,
    folder_only_sample,
    read_sheet,
    sample_from_row,
    search_dir,
    sheet_rows,
)
from glfnet.errors import ConfigError, DataError

NAME = "mmew"
SHEET_NAMES = ("MMEW_Micro_Exp.xlsx", "MMEW_Micro_Exp.csv")
SHEET_PATTERNS = ("MMEW*Micro*.xls*", "MMEW*.xlsx", "MMEW*Micro*.csv")
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
OPTIONAL = {"aus": ("Action Units", "AU", "AUs"), "remarks": ("remarks", "Notes")}

LAYOUT = """\
ROOT/
  MMEW_Micro_Exp.xlsx
  MMEW_Final/Micro_Expression/<emotion>/<Filename>/1.jpg, 2.jpg, ...
`root` may also point at MMEW_Final, with the sheet in or beside it."""


def _frames_dir(root: Path, variant: str) -> Path:
    if variant not in ("auto", "raw"):
        raise ConfigError(f"`variant` {variant!r}: MMEW has only one frame set (auto/raw).")
    found = search_dir(root, lambda d: d.name.lower() == "micro_expression", max_depth=3)
    if found is None:
        raise DataError(
            f"no MMEW frames under {root}: expected "
            f"MMEW_Final/Micro_Expression/<emotion>/<Filename>/<n>.jpg inside "
            f"`root`.\nExpected layout:\n{LAYOUT}"
        )
    return found


def read(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read MMEW micro-expressions: one RawSample per sheet row plus flagged unlabelled folders."""
    root = check_root(root, "MMEW")
    frames_dir = _frames_dir(root, variant)
    sheet = find_annotation(
        root,
        SHEET_NAMES,
        SHEET_PATTERNS,
        annotations,
        what="MMEW micro-expression sheet",
        also=(frames_dir.parent, frames_dir.parent.parent),
    )
    table, _ = read_sheet(sheet, COLUMNS, OPTIONAL)
    folders: dict[str, Path] = {}
    for edir in sorted(p for p in frames_dir.iterdir() if p.is_dir()):
        for cdir in sorted(p for p in edir.iterdir() if p.is_dir()):
            folders.setdefault(cdir.name.lower(), cdir)
    samples, used = [], set()
    notes: list[str] = []
    for row in sheet_rows(table, sheet, notes):
        subject = naming.normalize_subject(row["subject"], NAME)
        clip = row["filename"].strip()
        emotion = row["emotion"].strip().lower()
        cdir = folders.get(clip.lower(), frames_dir / (emotion or "unknown") / clip)
        used.add(clip.lower())
        s = sample_from_row(
            NAME, row, subject, clip, cdir, emotion=emotion, extra={"remarks": row["remarks"]}
        )
        if cdir.is_dir() and cdir.parent.name.lower() != emotion:
            s.anomalies.append(
                f"clip folder is filed under {cdir.parent.name}, the sheet says {emotion or 'nothing'}"
            )
        samples.append(s)
    for name, cdir in folders.items():
        if name not in used:
            subject = cdir.name.split("_")[0]
            samples.append(folder_only_sample(NAME, subject, cdir.name, cdir, sheet))
    return DatasetScan(NAME, root, frames_dir, sheet, dedupe(samples), notes, "raw")
