"""Per-sample preprocessing and the parallel, resumable cache writer (issue 3, section 3).

One sample: read the onset frame (grayscale), find the face and its crop transform
(:mod:`glfnet.preprocess.face`), choose the apex (annotated when valid, else ``params.apex``;
:mod:`glfnet.preprocess.apex`), crop onset and apex with the same transform to
``crop_size`` px, TV-L1 flow + optical strain at that resolution, resize to ``size`` last
(:mod:`glfnet.preprocess.flow`), write ``flows/<sample_id>.npz`` through
:func:`glfnet.data.cache.save_flow`.

A protocol: :func:`prepare_cache` runs that over the selected samples with joblib (``loky``,
one OpenCV thread per worker), skips samples whose flow is already in the cache with the same
inputs (a small ``samples/<sample_id>.json`` record is written before each flow; the flow
file is the "done" mark), and writes ``manifest.csv`` + ``cache.json`` with
:func:`glfnet.data.cache.write_manifest`. Every file is written atomically. Results do not
depend on ``jobs`` or on the order samples finish.

For a user's own clip: :func:`flow_from_pair` (onset and apex images) and
:func:`flow_from_frames` (a list of frames: onset = first, apex = flow peak).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from glfnet import io
from glfnet._version import __version__
from glfnet.data import cache
from glfnet.data.readers.base import RawSample
from glfnet.errors import ConfigError
from glfnet.preprocess import apex as apex_rules
from glfnet.preprocess.face import FaceCrop, align_face, whole_frame
from glfnet.preprocess.flow import FLOW_METHODS, compute_flow, optical_strain, resize_flow, settings

MARKER_FILE = "prepare.json"  # the settings of a cache being written (resume check)
SAMPLE_DIR = "samples"  # per-sample processing records (resume)
EXCLUDED_FILE = "excluded.csv"  # samples the protocol leaves out, with the reason
EXTRA_COLUMNS = ["onset_used", "clip_dir"]


@dataclass
class PrepParams:
    """Everything that changes the cached arrays; recorded in ``cache.json["params"]``.

    crop_size: face crop side in px on which flow is computed (native resolution, ~128).
    size: side of the stored flow (the network input), resized last.
    margin: crop margin on each side, as a fraction of the landmark box side.
    align: detect, level and crop the face; False uses the whole frame (pre-cropped data).
    flow: ``tvl1`` (default), ``farneback`` or ``dis``.
    apex: rule when no valid annotated apex: ``midpoint`` or ``flow-peak``.
    detect_size: longer side (px) of the copy the face detector runs on; 0 = full size.
    """

    crop_size: int = 128
    size: int = 28
    margin: float = 0.15
    align: bool = True
    flow: str = "tvl1"
    apex: str = "midpoint"
    detect_size: int = 320

    def __post_init__(self):
        if not isinstance(self.crop_size, int) or not 16 <= self.crop_size <= 1024:
            raise ConfigError(
                f"`crop_size` {self.crop_size!r}: give a crop side in px between 16 and 1024 (default 128)."
            )
        if not isinstance(self.size, int) or not 4 <= self.size <= 1024:
            raise ConfigError(
                f"`size` {self.size!r}: give the stored flow side in px between "
                "4 and 1024 (default 28; 224 for GLFNet's full input)."
            )
        if not 0.0 <= float(self.margin) <= 1.0:
            raise ConfigError(f"`margin` {self.margin!r}: give a fraction between 0 and 1 (default 0.15).")
        if self.flow not in FLOW_METHODS:
            raise ConfigError(f"`flow` {self.flow!r}: expected one of {', '.join(FLOW_METHODS)}.")
        if self.apex not in apex_rules.APEX_RULES:
            raise ConfigError(f"`apex` {self.apex!r}: expected one of {', '.join(apex_rules.APEX_RULES)}.")
        if not isinstance(self.detect_size, int) or self.detect_size < 0:
            raise ConfigError(f"detect_size {self.detect_size!r}: a size in px, 0 for full.")
        self.margin = float(self.margin)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- images


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 grayscale from a gray, RGB or RGBA array (uint8, or float in [0, 1])."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3:
        code = cv2.COLOR_RGBA2GRAY if a.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        a = cv2.cvtColor(a, code)
    if a.ndim != 2:
        raise ValueError(f"expected an image (H, W) or (H, W, 3), got shape {a.shape}")
    return np.ascontiguousarray(a)


def to_shape(gray: np.ndarray, shape: tuple) -> np.ndarray:
    """``gray`` resized to ``shape`` (the onset frame's) when it differs."""
    if gray.shape == tuple(shape):
        return gray
    return cv2.resize(gray, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def peak_crops(
    fc: FaceCrop, onset_gray: np.ndarray, load: Callable[[int], np.ndarray]
) -> Callable[[int], np.ndarray]:
    """``crop(i)`` for :func:`apex_rules.flow_peak`: 0 is the onset's face crop, i > 0 the
    grayscale frame ``load(i)`` at the onset's size, cropped with the same transform."""
    onset_crop = fc.apply(onset_gray)
    return lambda i: onset_crop if i == 0 else fc.apply(to_shape(load(i), onset_gray.shape))


def face_crop_for(gray: np.ndarray, params: PrepParams) -> FaceCrop:
    if not params.align:
        return whole_frame(gray.shape, params.crop_size)
    return align_face(gray, params.crop_size, params.margin, params.detect_size)


def _crop_flow(
    onset_crop: np.ndarray, apex_crop: np.ndarray, params: PrepParams, timings: dict
) -> np.ndarray:
    t = time.perf_counter()
    f = compute_flow(onset_crop, apex_crop, params.flow)
    timings["flow"] = time.perf_counter() - t
    t = time.perf_counter()
    u, v = f[..., 0], f[..., 1]
    full = np.stack([u, v, optical_strain(u, v)])
    out = resize_flow(full, params.size)
    timings["strain"] = time.perf_counter() - t
    return out


# ---------------------------------------------------------------------------- user clips


def flow_from_pair(
    onset_img: np.ndarray, apex_img: np.ndarray, params: PrepParams | None = None
) -> tuple[np.ndarray, dict]:
    """(u, v, strain) flow from an onset and an apex image, as ``glfnet prepare`` makes it.

    Images: (H, W) gray or (H, W, 3) RGB, uint8 or float in [0, 1]. Returns the raw
    (3, size, size) float32 array (u, v in pixels of the stored grid) and an info dict with
    ``face_found``, ``warnings`` (list of str), ``crop`` (the transform) and ``timings``.
    """
    params = params or PrepParams()
    timings: dict = {}
    warnings: list[str] = []
    t = time.perf_counter()
    a, b = to_gray(onset_img), to_gray(apex_img)
    if a.shape != b.shape:
        warnings.append(
            f"apex image {b.shape[1]}x{b.shape[0]} resized to the onset's {a.shape[1]}x{a.shape[0]}"
        )
        b = to_shape(b, a.shape)
    fc = face_crop_for(a, params)
    if params.align and not fc.face_found:
        warnings.append("no face found on the onset frame: used the whole frame")
    ca, cb = fc.apply(a), fc.apply(b)
    timings["face"] = time.perf_counter() - t
    flow = _crop_flow(ca, cb, params, timings)
    return flow, {
        "face_found": fc.face_found,
        "warnings": warnings,
        "crop": fc.describe(),
        "timings": timings,
    }


def pick_onset_apex(frames: Sequence[np.ndarray], params: PrepParams | None = None) -> tuple[int, int, dict]:
    """Onset and apex indices of an unlabelled clip: onset = the first frame, apex = the frame
    of largest mean flow magnitude from it (flow-peak on the face crops). Returns
    (onset_index, apex_index, info)."""
    params = params or PrepParams()
    if len(frames) < 2:
        raise ValueError("a clip needs at least two frames")
    first = to_gray(frames[0])
    fc = face_crop_for(first, params)
    crop = peak_crops(fc, first, lambda i: to_gray(frames[i]))
    best, scores = apex_rules.flow_peak(len(frames), crop)
    return 0, best, {"face_found": fc.face_found, "scores": scores}


def flow_from_frames(
    frames: Sequence[np.ndarray], params: PrepParams | None = None
) -> tuple[np.ndarray, dict]:
    """Flow of an unlabelled clip: onset = first frame, apex by flow-peak. The info dict adds
    ``onset_index`` and ``apex_index`` to :func:`flow_from_pair`'s."""
    params = params or PrepParams()
    onset, apex, _ = pick_onset_apex(frames, params)
    flow, info = flow_from_pair(frames[onset], frames[apex], params)
    info.update(onset_index=onset, apex_index=apex)
    return flow, info


# ---------------------------------------------------------------------------- one sample


def _s(x) -> str:
    return "" if x is None else str(x)


def base_row(s: RawSample, label: str) -> dict:
    """The manifest row of a sample before processing (status empty)."""
    return {
        "sample_id": s.sample_id,
        "database": s.database,
        "subject": s.subject,
        "clip": s.clip,
        "label": label,
        "emotion": s.emotion,
        "onset": _s(s.onset),
        "apex": _s(s.apex),
        "offset": _s(s.offset),
        "apex_used": "",
        "apex_source": "",
        "n_frames": str(len(s.frames)),
        "action_units": s.action_units,
        "face": "",
        "status": "",
        "anomalies": list(s.anomalies),
        "file": "",
        "onset_used": "",
        "clip_dir": _s(s.clip_dir),
    }


def _signature(s: RawSample) -> dict:
    """What the flow of a sample depends on besides the params (resume check)."""
    return {
        "clip_dir": _s(s.clip_dir),
        "onset": s.onset,
        "apex": s.apex,
        "offset": s.offset,
        "frames": [
            len(s.frames),
            s.frames[0].name if s.frames else "",
            s.frames[-1].name if s.frames else "",
        ],
    }


def _read_gray(path: Path | None) -> np.ndarray:
    """A frame as 8-bit grey; a _SampleError when it is not on disk (None) or unreadable."""
    img = None if path is None else cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise _SampleError(f"unreadable frame {path} (expected an image file OpenCV can read)")
    return img


class _SampleError(Exception):
    """A per-sample failure whose message goes to the manifest."""


def _choose_onset(s: RawSample) -> tuple[int, str | None]:
    nums = s.frame_numbers
    have = set(nums)
    if s.onset is not None and s.onset in have:
        return s.onset, None
    if s.onset is None:
        return nums[0], f"no usable onset: used the first frame {nums[0]}"
    later = [n for n in nums if n >= s.onset and (s.offset is None or n <= s.offset)]
    if later:
        return later[0], f"onset frame {s.onset} not on disk: used {later[0]}"
    raise _SampleError(f"no frame on disk between onset {s.onset} and offset {s.offset}")


def process_sample(s: RawSample, label: str, params: PrepParams, cache_dir) -> dict:
    """Compute and cache one sample; returns its manifest row (status ``ok``, ``failed``,
    or ``missing`` when it has no frames). Never raises for a bad sample."""
    row = base_row(s, label)
    if not s.frames:
        row["status"] = "missing"
        return row
    timings: dict = {}
    notes: list[str] = []
    try:
        t0 = time.perf_counter()
        onset, note = _choose_onset(s)
        if note:
            notes.append(note)
        offset = s.offset if s.offset is not None and s.offset >= onset else s.frame_numbers[-1]
        t = time.perf_counter()
        a = _read_gray(s.frame_path(onset))
        timings["read"] = time.perf_counter() - t
        t = time.perf_counter()
        fc = face_crop_for(a, params)
        timings["face"] = time.perf_counter() - t
        if params.align and not fc.face_found:
            notes.append("no face found on the onset frame: used the whole frame")
        apex, source = _choose_apex(s, onset, offset, a, fc, params, notes)
        t = time.perf_counter()
        b = _read_gray(s.frame_path(apex))
        if b.shape != a.shape:
            notes.append(f"apex frame size {b.shape[1]}x{b.shape[0]} differs from the onset's: resized")
            b = to_shape(b, a.shape)
        timings["read"] += time.perf_counter() - t
        t = time.perf_counter()
        ca, cb = fc.apply(a), fc.apply(b)
        timings["face"] += time.perf_counter() - t
        flow = _crop_flow(ca, cb, params, timings)
        if not np.all(np.isfinite(flow)):
            raise _SampleError("the flow has non-finite values")
        result = {
            "onset_used": str(onset),
            "apex_used": str(apex),
            "apex_source": source,
            "face": _face_word(params, fc),
            "notes": notes,
        }
        t = time.perf_counter()
        io.write_json(
            Path(cache_dir) / SAMPLE_DIR / f"{s.sample_id}.json", {"input": _signature(s), "result": result}
        )
        rel = cache.save_flow(cache_dir, s.sample_id, flow)
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        _fill(row, result, rel)
    except _SampleError as e:
        row.update(status="failed")
        row["anomalies"] += notes + [str(e)]
    except Exception as e:  # one bad sample never stops the run
        row.update(status="failed")
        row["anomalies"] += notes + [f"processing failed: {type(e).__name__}: {e}"]
    row["_timings"] = timings
    return row


def _face_word(params: PrepParams, fc: FaceCrop) -> str:
    if not params.align:
        return "not aligned"
    return "found" if fc.face_found else "not found"


def _fill(row: dict, result: dict, rel: str) -> None:
    row.update(
        onset_used=result["onset_used"],
        apex_used=result["apex_used"],
        apex_source=result["apex_source"],
        face=result["face"],
        status="ok",
        file=rel,
    )
    row["anomalies"] = row["anomalies"] + list(result["notes"])


def _choose_apex(
    s: RawSample,
    onset: int,
    offset: int,
    onset_gray: np.ndarray,
    fc: FaceCrop,
    params: PrepParams,
    notes: list[str],
) -> tuple[int, str]:
    """The annotated apex when valid, else ``params.apex`` (never the label)."""
    annotated = s.extra.get("apex_column", True)
    problem = apex_rules.annotated_apex_problem(s.apex, onset, s.offset, s.frame_numbers)
    if problem is None and s.apex is not None:  # (no problem: an apex is annotated)
        return s.apex, "annotated"
    if params.apex == "midpoint":
        apex = apex_rules.midpoint(s.frame_numbers, onset, offset)
    else:
        cands = [n for n in s.frame_numbers if onset < n <= offset]
        if cands:
            crop = peak_crops(fc, onset_gray, lambda i: _read_gray(s.frame_path(cands[i - 1])))
            best, _ = apex_rules.flow_peak(len(cands) + 1, crop)
            apex = cands[best - 1]
        else:
            apex = None
    if apex is None:
        raise _SampleError(
            f"no frame after the onset {onset} (frames on disk: "
            f"{len(s.frame_numbers)}): cannot compute a flow"
        )
    if annotated:
        notes.append(f"{problem}: used the {params.apex} frame {apex}")
    return apex, params.apex


def _worker(s: RawSample, label: str, params: PrepParams, cache_dir: str) -> dict:
    cv2.setNumThreads(1)  # one thread per worker: no oversubscription
    return process_sample(s, label, params, cache_dir)


# ---------------------------------------------------------------------------- a protocol


@dataclass
class PrepareResult:
    cache_dir: Path
    manifest: pd.DataFrame
    excluded: pd.DataFrame
    meta: dict
    computed: int = 0
    skipped: int = 0
    timings: list[dict] = field(default_factory=list)

    def status_counts(self) -> dict[str, int]:
        return {k: int((self.manifest["status"] == k).sum()) for k in cache.STATUSES}


def _settings_record(params: PrepParams, protocol: str, databases) -> dict:
    return {"params": params.to_dict(), "protocol": protocol, "databases": sorted(set(databases))}


def _differences(have: dict, want: dict) -> list[str]:
    out = []
    for k in ("protocol", "databases"):
        if have.get(k) != want.get(k):
            out.append(f"{k} {have.get(k)} -> {want.get(k)}")
    hp, wp = have.get("params", {}), want["params"]
    for k in wp:
        if hp.get(k) != wp[k]:
            out.append(f"{k} {hp.get(k)} -> {wp[k]}")
    return out


def _clear(cache_dir: Path) -> None:
    """Remove what ``prepare`` wrote (and nothing else)."""
    for name in (cache.MANIFEST_FILE, cache.META_FILE, EXCLUDED_FILE, MARKER_FILE):
        (cache_dir / name).unlink(missing_ok=True)
    for sub, pattern in ((cache.FLOW_DIR, "*.npz"), (SAMPLE_DIR, "*.json")):
        for p in (cache_dir / sub).glob(pattern):
            p.unlink(missing_ok=True)


def claim_cache_dir(cache_dir, params: PrepParams, protocol: str, databases, overwrite: bool = False) -> Path:
    """Check that ``cache_dir`` is new, empty, or a cache with the same settings (resume);
    with ``overwrite`` a cache with other settings is cleared. Raises ConfigError otherwise."""
    cache_dir = Path(cache_dir).expanduser()
    want = _settings_record(params, protocol, databases)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ConfigError(f"`cache_dir` {cache_dir} is a file; give a folder for the cache.")
    if cache_dir.is_dir() and any(cache_dir.iterdir()):
        marker, meta = cache_dir / MARKER_FILE, cache_dir / cache.META_FILE
        if not marker.is_file() and not meta.is_file():
            raise ConfigError(
                f"`cache_dir` {cache_dir} exists, is not empty and is not a glfnet "
                "cache; give a new or empty folder."
            )
        try:
            have = json.loads((marker if marker.is_file() else meta).read_text("utf-8"))
        except (OSError, ValueError):
            have = {}
        diff = _differences(have, want)
        if diff and not overwrite:
            raise ConfigError(
                f"`cache_dir` {cache_dir} holds a cache made with other settings "
                f"({'; '.join(diff)}). Use another `cache_dir`, or `overwrite` to "
                "replace it."
            )
        if overwrite:
            _clear(cache_dir)
        for sub in (cache.FLOW_DIR, SAMPLE_DIR):  # temp files of an interrupted run
            for p in (cache_dir / sub).glob(".*.tmp"):
                p.unlink(missing_ok=True)
    io.write_json(cache_dir / MARKER_FILE, want)
    return cache_dir


def _resumed_row(s: RawSample, label: str, cache_dir: Path) -> dict | None:
    npz = cache_dir / cache.flow_relpath(s.sample_id)
    record = cache_dir / SAMPLE_DIR / f"{s.sample_id}.json"
    if not (npz.is_file() and record.is_file()):
        return None
    try:
        d = json.loads(record.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if d.get("input") != json.loads(json.dumps(_signature(s))):
        return None
    row = base_row(s, label)
    _fill(row, d["result"], cache.flow_relpath(s.sample_id))
    return row


def _run(todo, params: PrepParams, cache_dir: Path, jobs: int):
    if jobs <= 1 or len(todo) <= 1:
        for s, label in todo:
            yield process_sample(s, label, params, cache_dir)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from par(delayed(_worker)(s, label, params, str(cache_dir)) for s, label in todo)


def prepare_cache(
    selection,
    cache_dir,
    params: PrepParams | None = None,
    *,
    scans: Sequence = (),
    jobs: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int, dict | None], None] | None = None,
    export_png=None,
) -> PrepareResult:
    """Write the flow cache of a protocol selection (:class:`glfnet.data.protocols.Selection`).

    Resumable: samples already in ``cache_dir`` with the same inputs are kept. ``progress``
    is called as ``progress(done, total, row)`` (first with ``row=None``). ``scans`` (the
    readers' :class:`DatasetScan` objects) are recorded in ``cache.json``. ``export_png``:
    also write the STSTNet 28x28 PNG layout there.
    """
    params = params or PrepParams()
    if jobs < 1:
        raise ConfigError(f"`jobs` {jobs}: give 1 or more worker processes.")
    databases = sorted({s.database for s, _ in selection.included} | {sc.database for sc in scans})
    cache_dir = claim_cache_dir(cache_dir, params, selection.protocol.name, databases, overwrite)
    rows: list[dict] = []
    todo = []
    skipped = 0
    for s, label in selection.included:
        if not s.frames:
            rows.append(process_sample(s, label, params, cache_dir))
            continue
        done = _resumed_row(s, label, cache_dir)
        if done is not None:
            rows.append(done)
            skipped += 1
        else:
            todo.append((s, label))
    total = len(todo)
    if progress:
        progress(0, total, None)
    timings = []
    for i, row in enumerate(_run(todo, params, cache_dir, jobs), 1):
        timings.append(row.pop("_timings", {}))
        rows.append(row)
        if progress:
            progress(i, total, row)
    for r in rows:
        r.pop("_timings", None)
    manifest = _manifest_frame(rows)
    excluded = _excluded_frame(selection.excluded)
    io.write_csv(cache_dir / EXCLUDED_FILE, excluded)
    meta = _meta(selection, params, manifest, excluded, scans)
    cache.write_manifest(cache_dir, manifest, meta)
    if export_png is not None:
        from glfnet.preprocess.export import export_png as _export

        _export(cache_dir, export_png)
    return PrepareResult(
        cache_dir, manifest, excluded, meta, computed=total, skipped=skipped, timings=timings
    )


def _manifest_frame(rows: list[dict]) -> pd.DataFrame:
    for r in rows:
        if isinstance(r["anomalies"], list):
            r["anomalies"] = cache.ANOMALY_SEP.join(r["anomalies"])
    cols = cache.MANIFEST_COLUMNS + EXTRA_COLUMNS
    df = pd.DataFrame(rows, columns=cols).fillna("").astype(str)
    return df.sort_values(["database", "subject", "clip"], kind="stable").reset_index(drop=True)


def _excluded_frame(excluded) -> pd.DataFrame:
    cols = ["sample_id", "database", "subject", "clip", "emotion", "reason", "anomalies"]
    rows = [
        {
            "sample_id": s.sample_id,
            "database": s.database,
            "subject": s.subject,
            "clip": s.clip,
            "emotion": s.emotion,
            "reason": reason,
            "anomalies": cache.ANOMALY_SEP.join(s.anomalies),
        }
        for s, reason in excluded
    ]
    df = pd.DataFrame(rows, columns=cols).astype(str)
    return df.sort_values(["database", "subject", "clip"], kind="stable").reset_index(drop=True)


def _meta(selection, params: PrepParams, manifest: pd.DataFrame, excluded: pd.DataFrame, scans) -> dict:
    ok = manifest[manifest["status"] == "ok"]
    counts = {
        db: {c: int((g["label"] == c).sum()) for c in selection.classes} for db, g in ok.groupby("database")
    }
    return {
        "classes": list(selection.classes),
        "protocol": selection.protocol.name,
        "size": params.size,
        "params": params.to_dict(),
        "glfnet_version": __version__,
        "flow_settings": {"method": params.flow, **settings(params.flow)},
        "databases": {
            sc.database: {
                "root": str(sc.root),
                "frames_dir": str(sc.frames_dir),
                "annotations": _s(sc.annotations),
                "variant": sc.variant,
            }
            for sc in scans
        },
        "counts": counts,
        "status": {k: int((manifest["status"] == k).sum()) for k in cache.STATUSES},
        "excluded": len(excluded),
        "notes": [n for sc in scans for n in sc.notes],
        "storage": "raw float32 (u, v, strain); u, v in pixels of the stored size x size grid",
    }
