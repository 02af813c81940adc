"""SMIC-HS and SMIC-E readers (reference section 7).

SMIC-HS (100 fps): ``SMIC_all_raw/HS/s<k>/micro/{negative,positive,surprise}/s<k>_{ne,po,sur}_NN/``
with ``.bmp`` frames (cropped copies under ``SMIC_all_cropped/HS/...``). No spreadsheet and no
apex: each clip spans the micro-expression, the label is the folder name. Raw folders write
``s1_ne_01``; ids are normalised to ``s01`` / ``s01_ne_01``.

SMIC-E (the extended release): frames ``.../HS/s01/s1_ne_01/image<absolute frame>.jpg`` and
``SMIC-HS-E_annotation.xlsx`` sheet ``HS`` with ``Subject``, ``Filename``, ``OnsetF``,
``OffsetF``, ``FirstF``, ``LastF``, ``Emotion``. OnsetF/OffsetF are absolute frame numbers;
``OnsetF - FirstF`` is the index in the clip, used when the files are numbered from the clip
start instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from glfnet.data import naming
from glfnet.data.readers.base import (
    DatasetScan,
    RawSample,
    check_root,
    check_sample,
    child_dir,
    clip_dir_by_name,
    dedupe,
    find_annotation,
    list_frames,
    parse_frame_number,
    read_sheet,
    search_dir,
    sheet_rows,
    subject_dirs,
    unlisted_folder_samples,
)
from glfnet.errors import ConfigError, DataError

NAME = "smic"
NAME_E = "smic-e"
EMOTIONS = ("negative", "positive", "surprise")
_ABBREV = {"ne": "negative", "po": "positive", "sur": "surprise", "su": "surprise"}
VARIANTS = {
    "raw": ("SMIC_all_raw", "SMIC_all_raw_HS", "SMIC-all-raw"),
    "cropped": ("SMIC_all_cropped", "SMIC-all-cropped"),
}
SUBJECT_RE = r"s\d+"
CLIP_RE = r"s\d+_[a-z]+_\d+"

LAYOUT = """\
ROOT/
  SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/*.bmp
                          positive/s1_po_01/...
                          surprise/s1_sur_01/...
  or SMIC_all_cropped/HS/...   (already cropped: use `align=False`)
No sheet: the label is the folder name; the apex is chosen by `apex`.
`root` may also point at SMIC_all_raw or at HS."""

SHEET_NAMES_E = ("SMIC-HS-E_annotation.xlsx", "SMIC-E_annotation.xlsx", "SMIC-HS-E_annotation.csv")
SHEET_PATTERNS_E = ("SMIC*E*annot*.xls*", "SMIC*annot*.xls*", "SMIC*E*annot*.csv")
COLUMNS_E = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetF", "Onset Frame", "OnsetFrame", "Onset"),
    "offset": ("OffsetF", "Offset Frame", "OffsetFrame", "Offset"),
    "emotion": ("Emotion", "Estimated Emotion"),
}
OPTIONAL_E = {
    "first": ("FirstF", "First Frame", "FirstFrame"),
    "last": ("LastF", "Last Frame", "LastFrame"),
    "apex": ("ApexF", "Apex Frame", "ApexFrame", "Apex"),
}

LAYOUT_E = """\
ROOT/
  SMIC-HS-E_annotation.xlsx   sheet HS: Subject, Filename, OnsetF, OffsetF,
                              FirstF, LastF, Emotion (absolute frames)
  HS/s01/s1_ne_01/image<absolute frame>.jpg
`root` may also point at HS, with the sheet beside it."""


# ---------------------------------------------------------------------------- SMIC-HS


def _hs_dir(root: Path, variant: str) -> tuple[Path, str]:
    if variant not in ("auto", *VARIANTS):
        raise ConfigError(f"`variant` {variant!r} is not a SMIC variant; use auto, raw or cropped.")

    def is_hs(d: Path) -> bool:
        return any((p / "micro").is_dir() for p in subject_dirs(d, SUBJECT_RE).values())

    order = list(VARIANTS) if variant == "auto" else [variant]
    for v in order:
        for name in VARIANTS[v]:
            for d in (root / name / "HS", root / name):
                if d.is_dir():
                    found = search_dir(d, is_hs, max_depth=2)
                    if found is not None:
                        return found, v
    for d in (root / "HS", root):
        if variant == "auto" and d.is_dir() and is_hs(d):
            return d, "cropped" if "crop" in str(d).lower() else "raw"
    others = [n for n in ("VIS", "NIR") if (root / n).is_dir() or any(root.glob(f"*/{n}"))]
    extra = f" (found {', '.join(others)} but the composite and smic-3 use HS)" if others else ""
    raise DataError(
        f"no SMIC-HS clips under {root}{extra}: expected "
        f"SMIC_all_raw/HS/s<k>/micro/<emotion>/s<k>_<ne|po|sur>_NN/ inside `root`.\n"
        f"Expected layout:\n{LAYOUT}"
    )


def read(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read SMIC-HS micro clips: one RawSample per clip folder, label from its folder name,
    onset/offset = first/last frame, no apex."""
    root = check_root(root, "SMIC")
    hs, variant = _hs_dir(root, variant)
    notes: list[str] = []
    if annotations is not None:
        notes.append(
            f"`annotations` {annotations} ignored: SMIC-HS has no sheet (labels come from the folders)"
        )
    samples = []
    for sname, sdir in subject_dirs(hs, SUBJECT_RE).items():
        subject = naming.normalize_subject(sname, NAME)
        micro = child_dir(sdir, "micro")
        if not micro.is_dir():
            continue  # subjects without micro-expressions
        for edir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = edir.name.lower()
            if emotion not in EMOTIONS:
                notes.append(
                    f"unexpected emotion folder {edir} (expected negative, positive, "
                    "surprise); its clips are read with that label"
                )
            for cdir in sorted(p for p in edir.iterdir() if p.is_dir()):
                clip = naming.normalize_clip(cdir.name, NAME)
                frames, numbers = list_frames(cdir)
                s = RawSample(
                    database=NAME,
                    subject=subject,
                    clip=clip,
                    emotion=emotion,
                    onset=numbers[0] if numbers else None,
                    apex=None,
                    offset=numbers[-1] if numbers else None,
                    frames=frames,
                    frame_numbers=numbers,
                    clip_dir=cdir,
                    extra={"folder_label": emotion, "apex_column": False},
                )
                check_sample(s)
                tag = _clip_emotion(clip)
                if tag and tag != emotion:
                    s.anomalies.append(f"clip name says {tag} but it is filed under {emotion}")
                if not clip.startswith(subject + "_"):
                    s.anomalies.append(f"clip {cdir.name} is filed under subject {sname}")
                samples.append(s)
    if not samples:
        raise DataError(
            f"no SMIC-HS micro clips under {hs}: expected "
            f"s<k>/micro/<emotion>/s<k>_<ne|po|sur>_NN/ folders of frames."
        )
    return DatasetScan(NAME, root, hs, None, dedupe(samples), notes, variant)


def _clip_emotion(clip: str) -> str | None:
    m = re.fullmatch(r"(?i)s\d+_([a-z]+)_\d+", clip)
    return _ABBREV.get(m.group(1).lower()) if m else None


# ---------------------------------------------------------------------------- SMIC-E


def _e_dir(root: Path) -> Path:
    def is_e(d: Path) -> bool:
        return any(
            any(re.fullmatch(CLIP_RE, c.name, flags=re.I) for c in s.iterdir() if c.is_dir())
            for s in subject_dirs(d, SUBJECT_RE).values()
        )

    for d in (root / "HS", root):
        if d.is_dir() and is_e(d):
            return d
    found = search_dir(root, is_e, max_depth=4)
    if found is None:
        raise DataError(
            f"no SMIC-E clips under {root}: expected HS/s<k>/s<k>_<ne|po|sur>_NN/"
            f"image<absolute frame>.jpg inside `root`.\nExpected layout:\n{LAYOUT_E}"
        )
    return found


def read_e(root: str | Path, annotations: str | Path | None = None, variant: str = "auto") -> DatasetScan:
    """Read SMIC-E (HS): one RawSample per sheet row, frame numbers absolute."""
    root = check_root(root, "SMIC-E")
    if variant not in ("auto", "raw"):
        raise ConfigError(f"`variant` {variant!r}: SMIC-E has only the raw frames (auto/raw).")
    frames_dir = _e_dir(root)
    sheet = find_annotation(
        root,
        SHEET_NAMES_E,
        SHEET_PATTERNS_E,
        annotations,
        what="SMIC-E annotation sheet",
        also=(frames_dir.parent,),
    )
    table, _ = read_sheet(sheet, COLUMNS_E, OPTIONAL_E, sheet="HS")
    subjects = {
        naming.normalize_subject(k, NAME_E): v for k, v in subject_dirs(frames_dir, SUBJECT_RE).items()
    }
    samples, used = [], set()
    notes: list[str] = []
    for row in sheet_rows(table, sheet, notes):
        subject = naming.normalize_subject(row["subject"], NAME_E)
        clip = naming.normalize_clip(row["filename"], NAME_E)
        if not re.fullmatch(r"s\d+_.+", clip):  # Filename written without the subject
            clip = f"{subject}_{clip}"
        cdir = clip_dir_by_name(subjects.get(subject, frames_dir / subject), clip, NAME_E)
        used.add((subject, clip))
        frames, numbers = list_frames(cdir) if cdir.is_dir() else ([], [])
        onset, offset = parse_frame_number(row["onset"]), parse_frame_number(row["offset"])
        apex = parse_frame_number(row["apex"])
        first = parse_frame_number(row["first"])
        extra = {
            "row": row["_row"],
            "first_frame": first,
            "apex_column": bool(row["apex"]),
            "last_frame": parse_frame_number(row["last"]),
        }
        if numbers and first is not None and onset is not None and not numbers[0] <= onset <= numbers[-1]:
            # files numbered from the clip start: the sheet's absolute numbers less FirstF
            # give the index in the clip
            onset, offset, apex = (_rel(numbers, v, first) for v in (onset, offset, apex))
            extra["numbering"] = "relative (sheet - FirstF)"
        s = RawSample(
            database=NAME_E,
            subject=subject,
            clip=clip,
            emotion=row["emotion"].strip().lower(),
            onset=onset,
            apex=apex,
            offset=offset,
            frames=frames,
            frame_numbers=numbers,
            clip_dir=cdir,
            extra=extra,
        )
        check_sample(
            s, onset_raw=row["onset"], offset_raw=row["offset"], apex_raw=row["apex"] if row["apex"] else None
        )
        samples.append(s)
    samples += unlisted_folder_samples(NAME_E, subjects, used, sheet)
    return DatasetScan(NAME_E, root, frames_dir, sheet, dedupe(samples), notes, "raw")


def _rel(numbers: list[int], value: int | None, first: int) -> int | None:
    if value is None:
        return None
    i = value - first
    if 0 <= i < len(numbers):
        return numbers[i]
    return numbers[0] + i  # out of range: check_sample reports it
