"""Flow sets: every sample's (u, v, strain) input with its database, subject and label.

Three on-disk forms are read into one in-memory :class:`FlowSet` (a manifest of samples plus
an array ``X`` of shape (N, 3, H, W)):

* **flat** -- the STSTNet/HTNet release: ``<subject>_<clip> .png`` (note the space) in one
  folder plus a label CSV, either the HTNet one (header ``dataset,sub,filename_o,label,...``)
  or the official MEGC2019 ``combined_3class_gt.csv`` (no header, blank lines, SAMM subjects
  unpadded).
* **tree** -- the same release as 68 per-subject LOSO folders
  ``<root>/<subject>/u_{train,test}/<label>/<file>``; read as one set of unique samples.
* **cache** -- what ``glfnet prepare`` writes (see :mod:`glfnet.data.cache`).

PNG channels read as RGB are (u, v, strain), each min-max scaled per image to 0..255
(``encoding="minmax"``, values here in [0, 1]); caches hold raw float flow (``encoding="raw"``).

Problems (unreadable images, labels outside the label set, duplicates, rows without images,
images without rows, mixed sizes, empty folders) are collected, never dropped silently: by
default they raise :class:`~glfnet.errors.DataError` listing each; with ``skip_bad=True`` the
affected samples are excluded and listed in ``FlowSet.problems``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from glfnet.data import cache, naming
from glfnet.data.readers.base import list_frames
from glfnet.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Problem:
    """One thing wrong with the input: what kind, where (file or row), and what to do."""

    kind: str
    where: str
    message: str
    sample_id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "message": self.message, "sample_id": self.sample_id}


@dataclass
class FlowSet:
    """Samples (``samples`` DataFrame: sample_id, database, subject, clip, label, source) and
    their inputs ``X`` (N, 3, H, W) float32, channels (u, v, strain)."""

    samples: pd.DataFrame
    X: np.ndarray
    classes: tuple[str, ...]
    encoding: str  # "minmax" (per-image min-max, in [0, 1]) or "raw" (float flow)
    kind: str  # "flat" | "tree" | "cache"
    source: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how it was read, e.g. where labels came from
    labels_path: str | None = None  # the label CSV of a flat folder
    #: what a user should be told on loading it: samples the source holds but the set leaves
    #: out (a cache's samples `prepare` could not process), with why
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.samples = self.samples.reset_index(drop=True)
        if len(self.samples) != len(self.X):
            raise ValueError("samples and X differ in length")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def y(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return self.samples["label"].map(index).to_numpy(dtype=np.int64)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def subset(self, idx) -> FlowSet:
        idx = np.asarray(idx)
        return FlowSet(
            self.samples.iloc[idx].reset_index(drop=True),
            self.X[idx],
            self.classes,
            self.encoding,
            self.kind,
            self.source,
            self.problems,
            self.notes,
            self.labels_path,
            self.warnings,
        )

    def summary(self) -> dict:
        """The object ``glfnet inspect --json`` prints."""
        return {
            "source": self.source,
            "kind": self.kind,
            "encoding": self.encoding,
            "n_samples": int(len(self)),
            "n_subjects": int(self.samples["subject"].nunique()),
            "databases": {k: int(v) for k, v in self.samples["database"].value_counts().sort_index().items()},
            "classes": {c: int((self.samples["label"] == c).sum()) for c in self.classes},
            "image_shape": list(self.image_shape) if len(self) else None,
            "problems": [p.to_dict() for p in self.problems],
            "notes": [*self.notes, *self.warnings],
        }


# --------------------------------------------------------------------------- entry point


def load_flowset(
    path: str | Path,
    labels: str | Path | None = None,
    skip_bad: bool = False,
    classes: tuple[str, ...] | None = None,
) -> FlowSet:
    """Read a flat PNG folder + CSV, a per-subject LOSO tree, or a glfnet cache."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path} does not exist. Give a folder of flow images (with its label "
            "CSV), a per-subject LOSO tree, or a cache made by `glfnet prepare`."
        )
    if not path.is_dir():
        raise DataError(f"{path} is a file; give the folder that holds the flow images or cache.")
    if cache.is_cache(path):
        _no_labels_for(path, "a `glfnet prepare` cache", "its manifest.csv", labels)
        return _load_cache(path, skip_bad)
    if _is_tree(path):
        _no_labels_for(path, "a per-subject LOSO tree", "its <label> folder names", labels)
        return _load_tree(path, skip_bad, classes or naming.MEGC_CLASSES)
    images = _list_images(path)
    if not images:
        raise DataError(
            f"{path} holds no flow images (.png/.jpg/.bmp), no per-subject "
            "u_train/u_test folders and no cache.json: nothing to read. Check the "
            "path; a raw dataset folder needs `glfnet prepare` first."
        )
    return _load_flat(path, images, labels, skip_bad, classes or naming.MEGC_CLASSES)


def _no_labels_for(path: Path, kind: str, source: str, labels: str | Path | None) -> None:
    """A label file applies to a flat folder only; refuse it rather than ignore it."""
    if labels is not None:
        raise DataError(
            f"`labels` ({labels}) applies to a flat folder of flow images, but "
            f"{path} is {kind}, whose labels come from {source}. Leave `labels` "
            "out."
        )


def _finish(
    path: Path,
    kind: str,
    encoding: str,
    records: list[dict],
    arrays: dict,
    problems: list[Problem],
    skip_bad: bool,
    classes,
    notes=(),
    labels_path=None,
    warnings=(),
) -> FlowSet:
    """Apply the mixed-size check, then raise (strict) or exclude (skip_bad) problem samples."""
    shapes = Counter(a.shape for a in arrays.values())
    if len(shapes) > 1:
        common = shapes.most_common(1)[0][0]
        for sid, a in arrays.items():
            if a.shape != common:
                problems.append(
                    Problem(
                        "mixed_size",
                        _where(records, sid),
                        f"input is {_fmt_shape(a.shape)} but most are "
                        f"{_fmt_shape(common)}; all samples must share one size",
                        sid,
                    )
                )
    if problems and not skip_bad:
        raise DataError(
            f"{len(problems)} problem(s) in {path}. Fix them, or pass `skip_bad` to "
            "exclude the affected samples (they are then listed).",
            [str(p) for p in problems],
        )
    bad = {p.sample_id for p in problems}
    keep = [r for r in records if r["sample_id"] not in bad and r["sample_id"] in arrays]
    if not keep:
        raise DataError(f"no usable samples in {path}", [str(p) for p in problems])
    keep.sort(key=lambda r: (r["database"], r["subject"], r["clip"]))
    X = np.stack([arrays[r["sample_id"]] for r in keep]).astype(np.float32, copy=False)
    df = pd.DataFrame(keep, columns=["sample_id", "database", "subject", "clip", "label", "source"])
    return FlowSet(
        df,
        X,
        tuple(classes),
        encoding,
        kind,
        str(path),
        problems,
        list(notes),
        str(labels_path) if labels_path else None,
        list(warnings),
    )


def _where(records, sid) -> str:
    for r in records:
        if r["sample_id"] == sid:
            return r["source"]
    return sid


def _fmt_shape(shape) -> str:
    return f"{shape[1]}x{shape[2]}x{shape[0]}" if len(shape) == 3 else str(shape)


# --------------------------------------------------------------------------- images


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _stem(p: Path) -> str:
    """``sub01_EP02_01f .png`` -> ``sub01_EP02_01f`` (the release puts a space before .png)."""
    return p.name[: -len(p.suffix)].strip()


def encode_flow_image(flow: np.ndarray) -> np.ndarray:
    """Raw (3, H, W) (u, v, strain) -> the release's 8-bit (H, W, 3) RGB: each channel min-max
    scaled per image to exactly 0..255, ``round(255 (x - min) / (max - min))`` (a constant
    channel becomes 0). :func:`read_flow_image` reads it back."""
    out = np.zeros(flow.shape[1:] + (3,), dtype=np.uint8)
    for c in range(3):
        ch = flow[c].astype(np.float64)
        lo, hi = float(ch.min()), float(ch.max())
        if hi > lo:
            out[..., c] = np.round((ch - lo) / (hi - lo) * 255.0).astype(np.uint8)
    return out


def read_flow_image(p: Path) -> tuple[np.ndarray | None, str | None]:
    """Read an 8-bit RGB flow image as (3, H, W) float32 in [0, 1] = (u, v, strain).

    Returns (array, None) or (None, reason). PIL reads RGB; OpenCV would give BGR, i.e.
    (strain, v, u), which is why we never use cv2.imread here.
    """
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode not in ("RGB", "RGBA"):
                return None, (
                    f"has {len(im.getbands())} channel(s) ({mode}); flow images are "
                    "3-channel RGB = (u, v, strain)"
                )
            a = np.asarray(im.convert("RGB"))
    except Exception as e:  # truncated, not an image, ...
        return None, f"unreadable image ({type(e).__name__}: {e}); re-export or remove it"
    return a.transpose(2, 0, 1).astype(np.float32) / 255.0, None


# --------------------------------------------------------------------------- flat layout


def _numbered_frames(folder: Path) -> int:
    """How many images of ``folder`` are numbered frames of one clip (same name stem, a
    run of consecutive frame numbers: ``009_01936.jpg``, ``img12.jpg``, ``reg_img46.jpg``); 0
    when the names do not look like that (flow sets name one image per clip)."""
    frames, numbers = list_frames(folder)  # the raw-data readers' view of a clip folder
    if len(frames) < 8 or len(frames) < len(_list_images(folder)):
        return 0
    if len({re.sub(r"\d+$", "", p.stem) for p in frames}) > 1:  # one name stem
        return 0
    return len(numbers) if numbers[-1] - numbers[0] + 1 == len(numbers) else 0  # consecutive


def _find_labels(folder: Path, labels) -> Path:
    if labels is not None:
        p = Path(labels)
        if not p.is_file():
            raise DataError(f"label file {p} does not exist (given as `labels`).")
        return p
    here = sorted(folder.glob("*.csv"))
    if len(here) == 1:
        return here[0]
    if len(here) > 1:
        raise DataError(
            f"{folder} holds several CSV files ({', '.join(p.name for p in here)}); "
            "say which is the label file with `labels`."
        )
    frames = _numbered_frames(folder)
    if frames:
        raise DataError(
            f"{folder} looks like the frames of one clip ({frames} numbered images such as "
            f"{_list_images(folder)[0].name}), not a flow set (one flow image per "
            "clip): run `glfnet prepare` on the dataset folder to compute flows, or `glfnet "
            "predict` on the clip with a trained model."
        )
    raise DataError(
        f"no label CSV in {folder}. Pass `labels` (the label file): the HTNet CSV "
        "(header dataset,sub,filename_o,label,...) or the MEGC2019 "
        "combined_3class_gt.csv."
    )


def _parse_label(value: str, classes) -> str | None:
    v = str(value).strip()
    if re.fullmatch(r"\d+(\.0)?", v):
        i = int(float(v))
        return classes[i] if 0 <= i < len(classes) else None
    low = v.lower()
    return low if low in classes else None


def read_label_csv(path: Path, classes=naming.MEGC_CLASSES) -> tuple[list[dict], list[Problem]]:
    """Rows of either label CSV as dicts (sample_id, database, subject, clip, label, source)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read label file {path}: {e}") from None
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(text.splitlines()))]
    rows = [(n, [c.strip() for c in r]) for n, r in rows if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"label file {path} is empty.")
    header = [c.lower() for c in rows[0][1]]
    if "label" in header:
        try:
            col = {k: header.index(k) for k in ("label",)}
            col["dataset"] = next(header.index(k) for k in ("dataset", "database") if k in header)
            col["subject"] = next(header.index(k) for k in ("sub", "subject") if k in header)
            col["clip"] = next(header.index(k) for k in ("filename_o", "filename", "clip") if k in header)
        except StopIteration:
            raise DataError(
                f"label file {path} has a header ({', '.join(rows[0][1])}) but lacks "
                "a dataset, sub/subject or filename_o/clip column."
            ) from None
        body = rows[1:]
    else:
        if len(rows[0][1]) < 4:
            raise DataError(
                f"label file {path}, line {rows[0][0]}: expected 4 columns "
                "dataset,subject,clip,label (the MEGC2019 ground-truth format) or a "
                "header with dataset,sub,filename_o,label."
            )
        col = {"dataset": 0, "subject": 1, "clip": 2, "label": 3}
        body = rows
    records, problems = [], []
    names = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    for n, r in body:
        where = f"{path.name} line {n}"
        if len(r) <= max(col.values()):
            problems.append(
                Problem(
                    "bad_row", where, f"has {len(r)} column(s); expected at least {max(col.values()) + 1}"
                )
            )
            continue
        db = naming.normalize_database(r[col["dataset"]]) or naming.database_from_subject(r[col["subject"]])
        subject = naming.normalize_subject(r[col["subject"]], db)
        db = db or naming.database_from_subject(subject) or r[col["dataset"]].lower()
        clip = naming.normalize_clip(r[col["clip"]], db)
        sid = naming.sample_id(subject, clip)
        label = _parse_label(r[col["label"]], classes)
        if label is None:
            problems.append(
                Problem(
                    "bad_label",
                    where,
                    f"label {r[col['label']]!r} of {sid} is outside the label set ({names})",
                    sid,
                )
            )
        records.append(
            {
                "sample_id": sid,
                "database": db,
                "subject": subject,
                "clip": clip,
                "label": label,
                "source": where,
            }
        )
    return records, problems


def _load_flat(folder: Path, images: list[Path], labels, skip_bad: bool, classes) -> FlowSet:
    label_path = _find_labels(folder, labels)
    records, problems = read_label_csv(label_path, classes)
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_id[r["sample_id"]].append(r)
    for sid, rs in by_id.items():
        if len(rs) > 1:
            problems.append(
                Problem(
                    "duplicate_id",
                    ", ".join(r["source"] for r in rs),
                    f"sample {sid} is listed {len(rs)} times; keep one row",
                    sid,
                )
            )
    files: dict[str, list[Path]] = defaultdict(list)
    for p in images:
        files[_stem(p)].append(p)
    lower = {k.lower(): k for k in files}
    arrays: dict[str, np.ndarray] = {}
    matched: set[str] = set()
    for sid, rs in by_id.items():
        key = sid if sid in files else lower.get(sid.lower())
        if key is None:
            problems.append(
                Problem(
                    "row_without_image",
                    rs[0]["source"],
                    f"no image for {sid} (expected '{sid} .png' in {folder})",
                    sid,
                )
            )
            continue
        matched.add(key)
        if len(files[key]) > 1:
            problems.append(
                Problem(
                    "duplicate_id",
                    ", ".join(p.name for p in files[key]),
                    f"several images map to sample {sid}; keep one",
                    sid,
                )
            )
            continue
        arr, err = read_flow_image(files[key][0])
        for r in rs:
            r["source"] = str(files[key][0])
        if err:
            problems.append(Problem("unreadable_image", str(files[key][0]), err, sid))
        elif arr is not None:
            arrays[sid] = arr
    for key, ps in files.items():
        if key not in matched:
            for p in ps:
                problems.append(
                    Problem(
                        "image_without_row",
                        str(p),
                        f"no row in {label_path.name} describes this image; add one or remove the file",
                        key,
                    )
                )
    if not records:
        raise DataError(f"label file {label_path} has no data rows.")
    return _finish(
        folder,
        "flat",
        "minmax",
        records,
        arrays,
        problems,
        skip_bad,
        classes,
        notes=[f"labels from {label_path}"],
        labels_path=label_path,
    )


# --------------------------------------------------------------------------- LOSO tree


def _is_tree(path: Path) -> bool:
    return any(d.is_dir() and ((d / "u_test").is_dir() or (d / "u_train").is_dir()) for d in path.iterdir())


def _load_tree(root: Path, skip_bad: bool, classes) -> FlowSet:
    """One set of unique samples from the 68 per-subject copies: each subject folder's
    ``u_test`` holds that subject's samples; ``u_train`` copies are checked for agreement."""
    tree = _TreeScan(tuple(classes))
    for sdir in sorted(d for d in root.iterdir() if d.is_dir()):
        tree.add_subject(sdir)
    tree.check_copies()
    if not tree.records:
        raise DataError(
            f"{root} looks like a per-subject LOSO tree but no u_test folder holds "
            "images; expected <root>/<subject>/u_test/<label>/<file>.png",
            [str(p) for p in tree.problems],
        )
    recs, arrays = tree.canonical()
    return _finish(root, "tree", "minmax", recs, arrays, tree.problems, skip_bad, classes)


class _TreeScan:
    """What the subject folders of a LOSO tree hold: held-out records and images (keyed by
    file stem), every copy's label, and the problems found."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = classes
        self.problems: list[Problem] = []
        self.records: dict[str, dict] = {}
        self.seen_labels: dict[str, dict[str, str]] = defaultdict(dict)  # sid -> {place: label}
        self.arrays: dict[str, np.ndarray] = {}

    def add_subject(self, sdir: Path) -> None:
        """Read one subject folder: its u_test samples, and the labels of its u_train copies."""
        if not (sdir / "u_test").is_dir():
            self.problems.append(
                Problem(
                    "bad_tree",
                    str(sdir),
                    "has no u_test folder; each subject folder needs u_train/<label>/ and u_test/<label>/",
                )
            )
            return
        for part in ("u_test", "u_train"):
            pdir = sdir / part
            if not pdir.is_dir():
                continue
            for ldir in sorted(d for d in pdir.iterdir() if d.is_dir()):
                label = _parse_label(ldir.name, self.classes)
                for p in _list_images(ldir):
                    self._add_image(p, sdir.name, part, ldir.name, label)

    def _add_image(self, p: Path, subject_name: str, part: str, label_dir: str, label: str | None) -> None:
        sid = _stem(p)
        if label is None:
            names = ", ".join(f"{i}={c}" for i, c in enumerate(self.classes))
            self.problems.append(
                Problem(
                    "bad_label", str(p), f"label folder {label_dir!r} is outside the label set ({names})", sid
                )
            )
            return
        self.seen_labels[sid][f"{subject_name}/{part}"] = label
        if part == "u_test":
            self._add_held_out(p, sid, subject_name, label)

    def _add_held_out(self, p: Path, sid: str, subject_name: str, label: str) -> None:
        if sid in self.records:
            self.problems.append(
                Problem(
                    "duplicate_id",
                    str(p),
                    f"sample {sid} is also held out in {self.records[sid]['source']}",
                    sid,
                )
            )
            return
        if not sid.startswith(subject_name + "_"):
            self.problems.append(
                Problem(
                    "bad_tree",
                    str(p),
                    f"held-out file of subject folder {subject_name} belongs to another subject",
                    sid,
                )
            )
            return
        db = naming.database_from_subject(subject_name)
        subject = naming.normalize_subject(subject_name, db)
        clip = naming.normalize_clip(sid[len(subject_name) + 1 :], db)
        self.records[sid] = {
            "sample_id": naming.sample_id(subject, clip),
            "database": db or "unknown",
            "subject": subject,
            "clip": clip,
            "label": label,
            "source": str(p),
        }
        arr, err = read_flow_image(p)
        if err:
            self.problems.append(Problem("unreadable_image", str(p), err, sid))
        elif arr is not None:
            self.arrays[sid] = arr

    def check_copies(self) -> None:
        """Copies that disagree on the label; samples never held out by their own subject."""
        for sid, places in self.seen_labels.items():
            if len(set(places.values())) > 1:
                detail = ", ".join(f"{k}: {v}" for k, v in sorted(places.items())[:4])
                self.problems.append(
                    Problem("label_conflict", sid, f"copies disagree on the label ({detail})", sid)
                )
            if sid not in self.records and not any(p.sample_id == sid for p in self.problems):
                self.problems.append(
                    Problem(
                        "not_held_out",
                        sid,
                        "appears only under u_train folders, never under its own subject's u_test",
                        sid,
                    )
                )

    def canonical(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """Records and arrays re-keyed from file stems to canonical sample ids (the problems'
        ids too)."""
        arrays = {self.records[k]["sample_id"]: v for k, v in self.arrays.items()}
        for p in self.problems:
            if p.sample_id in self.records:
                p.sample_id = self.records[p.sample_id]["sample_id"]
        return list(self.records.values()), arrays


# --------------------------------------------------------------------------- cache


def _load_cache(path: Path, skip_bad: bool) -> FlowSet:
    meta = cache.read_meta(path)
    manifest = cache.read_manifest(path)
    classes = tuple(meta.get("classes") or sorted(set(manifest["label"]) - {""}))
    problems: list[Problem] = []
    left_out: list[str] = []
    records, arrays = [], {}
    dup = manifest["sample_id"][manifest["sample_id"].duplicated()].unique()
    for sid in dup:
        problems.append(
            Problem("duplicate_id", f"{cache.MANIFEST_FILE}", f"sample {sid} appears more than once", sid)
        )
    for i, row in manifest.iterrows():
        sid = row["sample_id"]
        where = f"{cache.MANIFEST_FILE} row {i + 2}"
        if row["status"] != "ok":
            why = row["anomalies"] or "no reason recorded"
            left_out.append(f"{sid}: excluded by prepare ({row['status']}: {why})")
            continue
        if row["label"] not in classes:
            problems.append(
                Problem(
                    "bad_label",
                    where,
                    f"label {row['label']!r} of {sid} is outside the label set ({', '.join(classes)})",
                    sid,
                )
            )
        records.append(
            {
                "sample_id": sid,
                "database": row["database"],
                "subject": row["subject"],
                "clip": row["clip"],
                "label": row["label"],
                "source": where,
            }
        )
        try:
            arrays[sid] = cache.load_flow(path / row["file"])
        except DataError as e:
            problems.append(Problem("unreadable_flow", str(path / row["file"]), str(e), sid))
    return _finish(path, "cache", "raw", records, arrays, problems, skip_bad, classes, warnings=left_out)
