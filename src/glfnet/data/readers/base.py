"""What every raw-dataset reader shares: the sample record, sheet reading, frame listing.

Reference section 7: loaders match columns by name (the header row is found by search, not
assumed), read ids as strings (pandas would turn ``"01"`` into ``1``) and report each anomaly
(apex ``/``, apex outside [onset, offset], frames missing on disk, a clip folder without a
row, a row without a folder) per sample instead of crashing or dropping the sample.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glfnet.data import naming
from glfnet.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
SHEET_EXTS = (".xlsx", ".xlsm", ".xls", ".csv")
HEADER_SEARCH_ROWS = 40  # SAMM has 13 rows of notes before its header


@dataclass
class RawSample:
    """One annotated (or found-on-disk) clip of a raw database.

    ``onset``/``apex``/``offset`` are frame numbers in the numbering of the frame files
    (``frame_numbers``), i.e. as written in the sheet; ``None`` where the sheet has none or an
    unreadable value (then ``anomalies`` says so). ``frames`` lists every image of the clip
    folder sorted by its number (``img9`` before ``img10``).
    """

    database: str
    subject: str
    clip: str
    emotion: str = ""
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    frames: list[Path] = field(default_factory=list)
    frame_numbers: list[int] = field(default_factory=list)
    action_units: str = ""
    anomalies: list[str] = field(default_factory=list)
    clip_dir: Path | None = None
    annotated: bool = True  # False: a clip folder that has no row in the sheet
    extra: dict = field(default_factory=dict)  # database-specific columns (objective class...)

    @property
    def sample_id(self) -> str:
        return naming.sample_id(self.subject, self.clip)

    def frame_path(self, number: int | None) -> Path | None:
        """The frame file with this number, or None."""
        if number is None:
            return None
        try:
            return self.frames[self.frame_numbers.index(int(number))]
        except ValueError:
            return None


@dataclass
class DatasetScan:
    """What a reader found: samples plus notes that concern no single sample."""

    database: str
    root: Path
    frames_dir: Path
    annotations: Path | None
    samples: list[RawSample]
    notes: list[str] = field(default_factory=list)
    variant: str = ""  # raw / selected / cropped


# ---------------------------------------------------------------------------- names and numbers


def norm_key(text: object) -> str:
    """Column-name key: lower case, letters and digits only (``Onset Frame`` -> ``onsetframe``)."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def parse_frame_number(value: object) -> int | None:
    """``"46"``, ``"46.0"``, ``46`` -> 46; blanks, ``"/"``, ``"-"`` and text -> None."""
    s = str(value).strip() if value is not None else ""
    m = re.fullmatch(r"(\d+)(?:\.0+)?", s)
    return int(m.group(1)) if m else None


def frame_number_of(path: Path) -> int | None:
    """The number in a frame file name: its last run of digits (``reg_img46`` -> 46,
    ``006_05562`` -> 5562, ``image046462`` -> 46462)."""
    runs = re.findall(r"\d+", Path(path).stem)
    return int(runs[-1]) if runs else None


def list_frames(folder: Path) -> tuple[list[Path], list[int]]:
    """Image files of a clip folder sorted by their number, not as text; unnumbered files are
    ignored."""
    found = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return [], []
    for p in entries:
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not p.name.startswith("."):
            n = frame_number_of(p)
            if n is not None:
                found.append((n, p.name, p))
    found.sort()
    return [p for _, _, p in found], [n for n, _, _ in found]


def compress_ranges(numbers: Iterable[int]) -> str:
    """[3, 4, 5, 9] -> ``"3-5, 9"``."""
    nums = sorted({int(n) for n in numbers})
    parts, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(parts)


# ---------------------------------------------------------------------------- sheets


def read_sheet(
    path: Path,
    required: dict[str, tuple[str, ...]],
    optional: dict[str, tuple[str, ...]] | None = None,
    sheet: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read an annotation sheet with every cell as a string.

    ``required``/``optional`` map a field name (``onset``) to the accepted column spellings
    (compared with :func:`norm_key`). The header row is the first of the first
    ``HEADER_SEARCH_ROWS`` rows that holds every required column. Returns a frame whose
    columns are the field names (absent optional fields are empty strings) plus ``_row``, the
    1-based row number in the file, and the 1-based header row number.
    """
    optional = optional or {}
    raw = _read_table(path, sheet)
    want = {k: {norm_key(a) for a in v} for k, v in required.items()}
    best_row, best_hits = None, -1
    for i in range(min(len(raw), HEADER_SEARCH_ROWS)):
        keys = [norm_key(c) for c in raw.iloc[i].tolist()]
        hits = sum(any(k in names for k in keys) for names in want.values())
        if hits > best_hits:
            best_row, best_hits = i, hits
        if hits == len(want):
            return _table_from_header(raw, i, required, optional), i + 1
    expected = ", ".join(f"'{v[0]}'" for v in required.values())
    seen = ""
    if best_row is not None:
        cells = [str(c) for c in raw.iloc[best_row].tolist() if str(c).strip()]
        seen = f" The closest row ({best_row + 1}) has: {', '.join(cells[:20]) or 'nothing'}."
    raise DataError(
        f"{path}: no header row with the columns {expected} in its first "
        f"{HEADER_SEARCH_ROWS} rows.{seen} Is this the right annotation file?"
    )


def _table_from_header(
    raw: pd.DataFrame, i: int, required: dict[str, tuple[str, ...]], optional: dict[str, tuple[str, ...]]
) -> pd.DataFrame:
    import pandas as pd

    header = [norm_key(c) for c in raw.iloc[i].tolist()]
    body = raw.iloc[i + 1 :]
    out = {}
    for fieldname, names in {**required, **optional}.items():
        keys = {norm_key(a) for a in names}
        col = next((j for j, h in enumerate(header) if h in keys), None)
        if col is None:
            out[fieldname] = [""] * len(body)
        else:
            out[fieldname] = [str(v).strip() for v in body.iloc[:, col].tolist()]
    df = pd.DataFrame(out)
    df["_row"] = [int(r) + 1 for r in body.index]
    # drop rows that are entirely blank (formatting, trailing rows)
    blank = df.drop(columns="_row").apply(lambda col: col.str.len() == 0).all(axis=1)
    return df[~blank].reset_index(drop=True)


def _read_table(path: Path, sheet: str | None) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
                rows = list(csv.reader(fh))
            width = max((len(r) for r in rows), default=0)
            df = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=str)
        elif suffix in (".xlsx", ".xlsm", ".xls"):
            if suffix == ".xls":
                try:
                    import xlrd  # noqa: F401
                except ImportError:
                    raise DataError(
                        f"{path}: reading the old .xls format needs the xlrd "
                        "package (`pip install xlrd`); or save the sheet as .xlsx "
                        "or .csv and pass it as `annotations`."
                    ) from None
            book = pd.ExcelFile(path)
            name = sheet if sheet in book.sheet_names else None
            if name is None:
                name = next(
                    (s for s in book.sheet_names if sheet and s.lower() == sheet.lower()), book.sheet_names[0]
                )
            df = pd.read_excel(book, sheet_name=name, header=None, dtype=str, na_filter=False)
        else:
            raise DataError(
                f"{path}: unsupported annotation format '{suffix}'; expected .xlsx, .xls or .csv."
            )
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path}") from None
    except Exception as e:
        raise DataError(
            f"{path}: cannot read the annotation sheet ({type(e).__name__}: {e}). Is it a valid spreadsheet?"
        ) from None
    return df.fillna("").astype(str)


# ---------------------------------------------------------------------------- locating files


def check_root(root: str | Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"`root` {root} does not exist (expected the {what} folder).")
    if not root.is_dir():
        raise DataError(f"`root` {root} is a file; expected the {what} folder.")
    return root


def find_annotation(
    root: Path,
    names: tuple[str, ...],
    patterns: tuple[str, ...],
    given: str | Path | None = None,
    what: str = "annotation sheet",
    also: tuple[Path, ...] = (),
) -> Path:
    """The annotation file: ``given`` if set, else a known name in or beside ``root`` (or in
    ``also``), else a file matching one of ``patterns``. A DataError lists what was looked for.
    """
    if given is not None:
        p = Path(given).expanduser()
        if not p.is_file():
            raise DataError(f"`annotations` {p} does not exist (expected the {what}, e.g. {names[0]}).")
        return p
    places = []
    for d in (root, *also, root.parent):
        if d not in places and d.is_dir():
            places.append(d)
    for d in places:
        for n in names:
            if (d / n).is_file():
                return d / n
    for d in places:
        for pat in patterns:
            hits = sorted(
                p
                for p in d.glob(pat)
                if p.is_file() and not p.name.startswith("~$") and p.suffix.lower() in SHEET_EXTS
            )
            if hits:
                return hits[0]
    looked = ", ".join(str(d) for d in places)
    raise DataError(
        f"no {what} found in {looked}. Looked for: {', '.join(names)} "
        f"(or {', '.join(patterns)}). Pass it as `annotations`."
    )


def subject_dirs(folder: Path, pattern: str) -> dict[str, Path]:
    """Child folders whose name fully matches ``pattern`` (case-insensitive)."""
    out = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_dir() and re.fullmatch(pattern, p.name, flags=re.I):
                out[p.name] = p
    return out


def child_dir(folder: Path, name: str) -> Path:
    """``folder/name``, matching the name case-insensitively when the exact one is absent."""
    exact = Path(folder) / name
    if exact.is_dir() or not Path(folder).is_dir():
        return exact
    low = name.lower()
    return next((p for p in sorted(Path(folder).iterdir()) if p.name.lower() == low), exact)


def clip_dir_by_name(sdir: Path, clip: str, database: str) -> Path:
    """``sdir/clip``, else the child folder whose name normalises to ``clip`` (a folder spelt
    with other zero padding: SAMM ``6_1_2`` for ``006_1_2``, SMIC ``s1_ne_01`` for
    ``s01_ne_01``)."""
    exact = child_dir(sdir, clip)
    if exact.is_dir() or not sdir.is_dir():
        return exact
    return next(
        (p for p in sorted(sdir.iterdir()) if p.is_dir() and naming.normalize_clip(p.name, database) == clip),
        exact,
    )


def clip_folders(subjects: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    """``(subject, clip folder)`` for every child folder of each subject folder, sorted."""
    for subject, sdir in subjects.items():
        for cdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            yield subject, cdir


def search_dir(root: Path, test: Callable[[Path], bool], max_depth: int = 3) -> Path | None:
    """Breadth-first search (sorted, deterministic) for a folder satisfying ``test``."""
    level = [root]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            if test(d):
                return d
            with contextlib.suppress(OSError):
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
        level = nxt
    return None


# ---------------------------------------------------------------------------- anomalies


def check_sample(
    s: RawSample, apex_raw: str | None = None, onset_raw: str | None = None, offset_raw: str | None = None
) -> None:
    """Append the standard anomalies of a sample (in place)."""
    a = s.anomalies
    for name, raw, val in (("onset", onset_raw, s.onset), ("offset", offset_raw, s.offset)):
        if raw is not None and val is None:
            a.append(
                f"{name} {raw.strip()!r} is not a frame number"
                if raw.strip()
                else f"{name} frame is blank in the sheet"
            )
    if apex_raw is not None and s.apex is None:
        a.append(
            f"apex {apex_raw.strip()!r} is not a frame number"
            if apex_raw.strip()
            else "apex frame is blank in the sheet"
        )
    if s.onset is not None and s.offset is not None and s.onset > s.offset:
        a.append(f"onset {s.onset} is after offset {s.offset}")
    if s.apex is not None:
        if s.onset is not None and s.apex == s.onset:
            a.append(f"apex equals onset ({s.apex})")
        elif (s.onset is not None and s.apex < s.onset) or (s.offset is not None and s.apex > s.offset):
            a.append(f"apex {s.apex} outside [onset {s.onset}, offset {s.offset}]")
    if s.clip_dir is None:
        return
    if not s.clip_dir.is_dir():
        a.append(f"clip folder not found: {s.clip_dir}")
        return
    if not s.frames:
        a.append(f"no frame images in {s.clip_dir}")
        return
    first, last = s.frame_numbers[0], s.frame_numbers[-1]
    lo = s.onset if s.onset is not None else first
    hi = s.offset if s.offset is not None else last
    if lo < first or hi > last:
        a.append(f"frames on disk span {first}-{last} but the sheet says {lo}-{hi}")
    have = set(s.frame_numbers)
    lost = [n for n in range(max(lo, first), min(hi, last) + 1) if n not in have]
    if lost:
        a.append(f"frames missing on disk: {compress_ranges(lost)}")


def sheet_rows(table: pd.DataFrame, sheet: Path, notes: list[str]) -> Iterator[dict[str, Any]]:
    """The rows of a sheet table that name a Subject and a Filename; each other row is noted
    in ``notes`` and skipped."""
    for row in table.to_dict("records"):
        if not row["subject"] or not row["filename"]:
            notes.append(f"{sheet.name} row {row['_row']}: no Subject or Filename; ignored")
            continue
        yield row


def sample_from_row(
    database: str,
    row: dict,
    subject: str,
    clip: str,
    cdir: Path,
    emotion: str | None = None,
    extra: dict | None = None,
) -> RawSample:
    """The checked RawSample of a sheet row with onset/apex/offset columns (and optional
    ``aus``). ``emotion`` defaults to the row's, lower-cased; ``extra`` adds to
    ``{"row": <sheet row>}``."""
    frames, numbers = list_frames(cdir) if cdir.is_dir() else ([], [])
    s = RawSample(
        database=database,
        subject=subject,
        clip=clip,
        emotion=row["emotion"].strip().lower() if emotion is None else emotion,
        onset=parse_frame_number(row["onset"]),
        apex=parse_frame_number(row["apex"]),
        offset=parse_frame_number(row["offset"]),
        frames=frames,
        frame_numbers=numbers,
        action_units=row.get("aus", ""),
        clip_dir=cdir,
        extra={"row": row["_row"], **(extra or {})},
    )
    check_sample(s, apex_raw=row["apex"], onset_raw=row["onset"], offset_raw=row["offset"])
    return s


def folder_only_sample(
    database: str, subject: str, clip: str, clip_dir: Path, sheet: Path | None
) -> RawSample:
    """A clip folder that has no row in the sheet: kept, unlabelled, with an anomaly."""
    frames, numbers = list_frames(clip_dir)
    where = sheet.name if sheet else "the annotation sheet"
    return RawSample(
        database=database,
        subject=subject,
        clip=clip,
        frames=frames,
        frame_numbers=numbers,
        clip_dir=clip_dir,
        annotated=False,
        anomalies=[f"clip folder {clip_dir.name} has no row in {where}"],
    )


def unlisted_folder_samples(
    database: str, subjects: dict[str, Path], used: set, sheet: Path | None
) -> list[RawSample]:
    """A flagged, unlabelled sample for each clip folder that no sheet row named; ``used``
    holds the rows' (subject, normalised clip) pairs."""
    out = []
    for subject, cdir in clip_folders(subjects):
        clip = naming.normalize_clip(cdir.name, database)
        if (subject, clip) not in used:
            out.append(folder_only_sample(database, subject, clip, cdir, sheet))
    return out


def dedupe(samples: list[RawSample]) -> list[RawSample]:
    """Keep the first row of each sample id; the later duplicates are noted on it."""
    seen: dict[str, RawSample] = {}
    for s in samples:
        first = seen.get(s.sample_id)
        if first is None:
            seen[s.sample_id] = s
        else:
            first.anomalies.append(f"duplicate row for {s.sample_id} (row {s.extra.get('row', '?')}) ignored")
    return sorted(seen.values(), key=lambda s: (s.subject, s.clip))
