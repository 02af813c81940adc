"""Synthetic micro-expression clips written in the official CASME II, SAMM and SMIC-HS layouts.

``generate(out_dir)`` renders short clips of real face photos shipped with scikit-image (the
``astronaut`` and the 25 px ``lfw_subset`` crops, upscaled) and writes them as the raw databases
lie on disk (reference section 7), coding sheets included, so that ``glfnet demo`` goes through
the same readers, face detection and TV-L1 preprocessing as real data::

    <out>/CASME2/CASME2-RAW/sub01/EP02_01f/img46.jpg ...   + CASME2-coding-20140508.xlsx
    <out>/SAMM/SAMM/006/006_1_2/006_05562.jpg ...          + SAMM_Micro_FACS_Codes_v2.xlsx
    <out>/SMIC/SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image012345.bmp ...
    <out>/synthetic.json   seed, parameters, ground truth of every clip (written last)

Model. A subject is a base face under identity changes (rotation, scale, aspect, shift, mirror,
gain, gamma, side light, tint) plus a static skin texture; dlib's 68 landmarks are found on its
neutral frame (a face dlib does not find with a margin is redrawn). A clip warps the neutral
frame by ``s(t) * D(x) + drift(t)``: ``D`` sums the clip's action units, each a Gaussian bump of
displacement anchored at landmarks (``AU_MODEL``), 0.5-2 px for a ``FACE_PX`` = 128 px wide
face; ``s`` rises onset -> apex and falls apex -> offset (raised cosine); ``drift`` is sub-pixel
head motion; flicker and sensor noise are added per frame. Same seed, same bytes.
Synthetic: it proves the pipeline, not the science (docs/synthetic.md).
"""

from __future__ import annotations

import functools
import importlib.util
import io as _bytes_io
import re
import shutil
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from glfnet import io
from glfnet.data.naming import MEGC_CLASSES, normalize_clip, normalize_subject, sample_id
from glfnet.errors import ConfigError, GlfnetError

FORMAT, VERSION = "glfnet-synthetic", 1
MARKER = ".glfnet-synthetic"  # written first: this folder's CASME2/SAMM/SMIC are ours to replace
DATABASES = ("casme2", "samm", "smic")
ROOTS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"}
FRAME_SIZE = {"casme2": (256, 200), "samm": (272, 216), "smic": (240, 192)}  # (width, height)
NOISE_SD = {"casme2": 2.0, "samm": 1.5, "smic": 3.0}  # sensor noise, grey levels
FACE_PX = 128  # amplitudes are pixels for a face this wide (dlib jaw points 0 -> 16)
AMPLITUDE = (0.5, 2.0)  # range of a clip's intensity, px at FACE_PX
CLASS_SHARE = {"negative": 250, "positive": 109, "surprise": 83}  # the composite's balance

# Action units as Gaussian bumps of displacement: (dlib-68 landmarks whose mean is the centre,
# direction (x right, y down), sigma in face widths); image-left part first.
AU_MODEL: dict[str, list[tuple[tuple[int, ...], tuple[float, float], float]]] = {
    "1": [((20, 21), (0, -1), 0.07), ((22, 23), (0, -1), 0.07)],  # inner brow raiser
    "2": [((17, 18), (0, -1), 0.07), ((25, 26), (0, -1), 0.07)],  # outer brow raiser
    "4": [((19, 20, 21), (0.5, 0.87), 0.08), ((22, 23, 24), (-0.5, 0.87), 0.08)],  # brow lowerer
    "6": [((1, 41, 31), (0, -1), 0.08), ((15, 46, 35), (0, -1), 0.08)],  # cheek raiser
    "10": [((50,), (0, -1), 0.06), ((52,), (0, -1), 0.06)],  # upper lip raiser
    "12": [((48,), (-0.6, -0.8), 0.07), ((54,), (0.6, -0.8), 0.07)],  # lip corner puller
    "14": [((48,), (-1, 0), 0.06), ((54,), (1, 0), 0.06)],  # dimpler (sideways)
    "15": [((48,), (-0.2, 0.98), 0.07), ((54,), (0.2, 0.98), 0.07)],  # lip corner depressor
    "17": [((57, 8), (0, -1), 0.09)],  # chin raiser
    "26": [((57, 8), (0, 1), 0.11)],  # jaw drop
    "45": [((37, 38), (0, 1), 0.04), ((43, 44), (0, 1), 0.04)],  # blink (nuisance)
}
WEAK = {"6": 0.6, "26": 0.5}  # drawn weaker than the clip's intensity ("slight")
CLASS_AUS = {  # action unit combinations of each class, with their odds
    "negative": {"4": 3, "4+14": 3, "4+15": 3, "14": 1, "15": 1},
    "positive": {"12": 4, "6+12": 5, "6": 1},
    "surprise": {"1+2": 5, "1+2+26": 4, "2": 1},
    "others": {"10": 1, "17": 1, "10+17": 1},
}
P_ONE_SIDED, P_BLINK = 0.12, 0.25  # odds that an action unit is one-sided; of a blink in a clip
EMOTIONS = {  # the sheets' words for each class, with their odds in the real sheets
    "casme2": {
        "negative": {"disgust": 63, "repression": 27},
        "positive": {"happiness": 1},
        "surprise": {"surprise": 1},
        "others": {"others": 1},
    },
    "samm": {
        "negative": {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6},
        "positive": {"Happiness": 1},
        "surprise": {"Surprise": 1},
        "others": {"Other": 1},
    },
    "smic": {c: {c: 1} for c in MEGC_CLASSES},
}
SAMM_OBJECTIVE = {
    "Happiness": 1,
    "Surprise": 2,
    "Anger": 3,
    "Disgust": 4,
    "Sadness": 5,
    "Fear": 6,
    "Contempt": 7,
    "Other": 7,
}
CASME2_COLUMNS = [
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
SAMM_COLUMNS = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
]
SAMM_NOTES = [
    "SAMM Micro-Movement FACS codes - SYNTHETIC (glfnet), not the SAMM database",
    "Rendered from scikit-image face photos to test the pipeline; no real subject.",
    "",
    "Onset, Apex, Offset: absolute frame numbers, as in <subject>_<frame>.jpg.",
    "Duration = Offset - Onset + 1 frames.",
    "Objective Classes after Davison et al. 2018 (1 happiness ... 7 others).",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
]  # 13 rows of notes, the header on row 14
SMIC_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}
CASME2_DROPPED = ((4, "EP12_01f"), (5, "EP09_05f"))  # megc2019 drops these: never generated
OVAL = (12.0, 13.0, 12.5, 14.5, 0.05)  # the face in an LFW crop: centre x, y, radii, edge
MIN_SCORE = 0.3  # dlib HOG score a subject's face must reach (dlib's own threshold is 0)
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 92]


# ---------------------------------------------------------------------------- the model


def time_course(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Strength of frames 0..n-1: 0 before onset, raised-cosine rise to 1 at apex, fall to 0
    at offset, 0 after."""
    t = np.arange(n, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - onset) / max(apex - onset, 1), 0, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - apex) / max(offset - apex, 1), 0, 1))
    return np.where(t <= apex, rise, fall)


@functools.cache
def _grid(shape: tuple[int, ...]) -> np.ndarray:
    return np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)  # (yy, xx)


def displacement_field(
    landmarks: np.ndarray, gains: dict[str, list[float]], shape: tuple[int, int]
) -> np.ndarray:
    """Apex displacement (H, W, 2) in pixels (x right, y down). ``gains`` maps an action unit
    to one amplitude per part of ``AU_MODEL[au]``, px for a ``FACE_PX``-wide face."""
    lm = np.asarray(landmarks, np.float32)
    face_w = float(np.linalg.norm(lm[16] - lm[0]))
    yy, xx = _grid(shape)
    field = np.zeros((*shape, 2), np.float32)
    for au, amps in gains.items():
        for (points, direction, sigma), amp in zip(AU_MODEL[au], amps):
            cx, cy = lm[list(points)].mean(axis=0)
            d = np.asarray(direction, np.float32) / np.linalg.norm(direction)
            bump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (sigma * face_w) ** 2))
            field += (amp * face_w / FACE_PX * bump)[..., None] * d
    return field


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move the content of ``image`` by ``flow`` (H, W, 2) pixels (backward map, bicubic)."""
    yy, xx = _grid(flow.shape[:2])
    flow = np.asarray(flow, np.float32)
    return cv2.remap(
        image, xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
    )


@functools.cache
def _dlib():
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")  # importing it fails: don't
    model = (
        (Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat")
        if spec
        else None
    )
    if model is None or not model.is_file():
        raise GlfnetError(
            "dlib's 68-landmark model is missing: reinstall the "
            "face-recognition-models package (`make install`)"
        )
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))


def find_landmarks(gray: np.ndarray, upsample: int = 0, min_score: float = 0.0) -> np.ndarray | None:
    """68 landmarks (68, 2) of the largest dlib HOG face scoring over ``min_score``, or None."""
    detector, predictor = _dlib()
    faces = detector.run(gray, upsample, min_score)[0]
    if not faces:
        return None
    box = max(faces, key=lambda r: r.area())
    return np.array([(p.x, p.y) for p in predictor(gray, box).parts()], np.float32)


# ---------------------------------------------------------------------------- subjects


@functools.cache
def _base_faces() -> tuple:
    """(name, RGB float32 image, landmark centre (x, y), jaw width px) of each source photo."""
    from skimage import data

    bgr = cv2.imread(str(Path(data.__file__).parent / "astronaut.png"))  # no skimage.io (1 s)
    rgb = bgr[..., ::-1] if bgr is not None else data.astronaut()
    faces = [("astronaut", rgb.astype(np.float32), (226.0, 134.0), 93.0)]
    for i, crop in enumerate(data.lfw_subset()[:100]):  # the first 100 of the 200 are faces
        grey = (crop * 255).astype(np.float32)
        faces.append((f"lfw{i:02d}", np.repeat(grey[..., None], 3, axis=2), (11.0, 14.2), 20.0))
    return tuple(faces)


def _render_subject(
    face: tuple[Any, ...], size: tuple[int, int], colour: bool, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """A neutral frame (float32, BGR or grey) of ``face`` under random identity changes."""
    name, img, (cx, cy), jaw = face
    w, h = size
    tint = (1, 1, 1) if name == "astronaut" else (1, 0.9, 0.8)  # LFW is grey: a skin tone
    ident: dict[str, Any] = {
        "rotation_deg": rng.uniform(-6, 6),
        "scale": rng.uniform(0.9, 1.1),
        "aspect": rng.uniform(0.94, 1.06),
        "shift": rng.uniform(-0.05, 0.05, 2) * (w, h),
        "mirror": bool(rng.random() < 0.5),
        "gain": rng.uniform(0.75, 1.15),
        "gamma": rng.uniform(0.8, 1.25),
        "side_light": rng.uniform(-0.2, 0.2),
        "tint": rng.uniform(0.92, 1.08, 3) * tint,
    }
    m = cv2.getRotationMatrix2D((cx, cy), ident["rotation_deg"], FACE_PX * ident["scale"] / jaw)
    m[0, :2] *= ident["aspect"] * (-1 if ident["mirror"] else 1)
    m[:, 2] = np.array([w / 2, h / 2]) + ident["shift"] - m[:, :2] @ (cx, cy)
    face_img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    alpha = np.ones((h, w, 1), np.float32)
    if name != "astronaut":  # a tight crop: keep a soft oval of it over a smooth background
        yy, xx = _grid((h, w))
        inv = cv2.invertAffineTransform(m)
        u, v = (inv[i, 0] * xx + inv[i, 1] * yy + inv[i, 2] for i in (0, 1))
        r = np.sqrt(((u - OVAL[0]) / OVAL[2]) ** 2 + ((v - OVAL[1]) / OVAL[3]) ** 2)
        alpha = (1 / (1 + np.exp((r - 1) / OVAL[4])))[..., None]
    bg = cv2.resize(rng.normal(0, 25, (3, 4, 1)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)[
        ..., None
    ] + rng.uniform(60, 190)
    skin = cv2.GaussianBlur(rng.normal(0, 4, (h, w, 1)).astype(np.float32), (0, 0), 0.8)
    frame = alpha * (face_img + skin[..., None]) + (1 - alpha) * bg
    light = ident["gain"] * (1 + ident["side_light"] * (np.arange(w) / w - 0.5))[:, None]
    frame = 255 * (np.clip(frame, 0, 255) / 255) ** ident["gamma"] * light * ident["tint"]
    frame = np.clip(frame, 0, 255).astype(np.float32)
    return (frame[..., ::-1].copy() if colour else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)), ident


def _draw_subject(db: str, index: int, lfw_pool: list[int], rng: np.random.Generator) -> dict[str, Any]:
    """Render identities until dlib finds the face on a frame-like noisy neutral frame with a
    margin (score >= MIN_SCORE, with and without upsampling), every landmark inside the frame.
    CASME II's sub01 is the astronaut; every other subject is a different LFW face."""
    size, colour = FRAME_SIZE[db], db != "samm"
    for _ in range(40):
        astronaut = (db, index) == ("casme2", 0) or not lfw_pool
        face = _base_faces()[0 if astronaut else 1 + lfw_pool.pop(0)]
        neutral, ident = _render_subject(face, size, colour, rng)
        gray = neutral if neutral.ndim == 2 else cv2.cvtColor(neutral, cv2.COLOR_BGR2GRAY)
        noise = rng.uniform(-0.5, 0.5, gray.shape) * NOISE_SD[db] * 12**0.5
        gray = np.clip(gray + noise + 0.5, 0, 255).astype(np.uint8)
        lm = find_landmarks(gray, 0, MIN_SCORE)
        inside = lm is not None and lm.min() >= 4 and np.all(lm.max(axis=0) < np.array(size) - 4)
        if inside and find_landmarks(gray, 1, MIN_SCORE) is not None:
            return {"face": face[0], "neutral": neutral, "landmarks": lm, "identity": ident}
    raise GlfnetError(f"synthetic {db}: no face dlib detects in 40 identities (dlib changed?)")


# ---------------------------------------------------------------------------- clips


def _class_plan(
    n_subjects: int, per_subject: int, n_others: int, rng: np.random.Generator
) -> list[list[str]]:
    """Classes of each subject's clips: the composite's shares over the database (largest
    remainder, every class at least once), dealt round-robin so that subjects get a mix."""
    n = n_subjects * per_subject
    share = np.array([CLASS_SHARE[c] for c in MEGC_CLASSES], np.float64)
    share = share / share.sum() * n
    counts = np.maximum(np.floor(share).astype(int), 1)
    while counts.sum() < n:
        counts[np.argmax(share - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    labels = [c for c, k in zip(MEGC_CLASSES, counts) for _ in range(k)]
    plan = [labels[s::n_subjects] for s in range(n_subjects)]
    for s in rng.integers(0, n_subjects, n_others):
        plan[s].append("others")
    for clips in plan:
        rng.shuffle(clips)
    return plan


def _pick(rng: np.random.Generator, odds: Mapping[str, float]) -> str:
    keys = list(odds)
    p = np.array([odds[k] for k in keys], np.float64)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _draw_clip(db: str, cls: str, amplitude: tuple[float, float], rng: np.random.Generator) -> dict[str, Any]:
    """Action units (amplitude per part), their FACS code, emotion word, timing (indices)."""
    amp = rng.uniform(*amplitude)
    gains: dict[str, list[float]] = {}
    codes: list[str] = []
    for au in _pick(rng, CLASS_AUS[cls]).split("+"):
        a = amp * WEAK.get(au, 1) * rng.uniform(0.6, 1.0)
        parts = [a * rng.uniform(0.8, 1.0) for _ in AU_MODEL[au]]
        side = ""
        if len(parts) == 2 and rng.random() < P_ONE_SIDED:  # part 0 is the subject's right
            side = "RL"[int(rng.integers(2))]
            parts["LR".index(side)] *= rng.uniform(0, 0.3)
        gains[au], codes = parts, codes + [side + au]
    if rng.random() < P_BLINK:  # a nuisance, not coded (as in the real sheets)
        gains["45"] = [amp * rng.uniform(0.8, 1.5)] * 2
    rise, fall = int(rng.integers(3, 6)), int(rng.integers(3, 7))
    if db == "smic":  # the clip is onset..offset (apex near its middle)
        pre, post, rise, fall = 0, 0, rise + 1, fall + 1
    else:  # a few neutral frames around the expression, as in CASME2-RAW and SAMM
        pre, post = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    return {
        "class": cls,
        "emotion": _pick(rng, EMOTIONS[db][cls]),
        "gains": gains,
        "action_units": "+".join(codes),
        "blink": "45" in gains,
        "amplitude": float(amp),
        "onset": pre,
        "apex": pre + rise,
        "offset": pre + rise + fall,
        "n_frames": pre + rise + fall + 1 + post,
        "drift": rng.normal(0, 0.15, 2),
        "seed": int(rng.integers(2**31)),
    }


def _render_clip(
    subject: dict[str, Any], clip: dict[str, Any], field: np.ndarray, db: str
) -> list[np.ndarray]:
    """The clip's frames (uint8, BGR or grey): the neutral frame warped by the apex ``field``
    times the time course, plus head drift, flicker and sensor noise."""
    rng = np.random.default_rng(clip["seed"])
    neutral, n = subject["neutral"], clip["n_frames"]
    noise = np.float32(NOISE_SD[db] * 12**0.5)  # uniform noise of that sd (cheaper than normal)
    strength = time_course(n, clip["onset"], clip["apex"], clip["offset"])
    frames = []
    for t in range(n):
        drift = (clip["drift"] * t / max(n - 1, 1) + rng.normal(0, 0.02, 2)).astype(np.float32)
        img = warp(neutral, np.float32(strength[t]) * field + drift)
        img *= np.float32(rng.normal(1, 0.003))
        img += (rng.random(img.shape, np.float32) - np.float32(0.5)) * noise
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return frames


# ---------------------------------------------------------------------------- layouts


def _name_clips(db: str, number: int, clips: list[dict[str, Any]], rng: np.random.Generator) -> None:
    """Raw clip names (unique per subject) and first frame numbers, like the real databases."""
    counters: dict[int | str, int] = {}
    cursor: dict[int, int] = {}
    for clip in clips:
        if db == "casme2":
            ep = int(rng.integers(1, 20))
            counters[ep] = counters.get(ep, 0) + 1
            name = f"EP{ep:02d}_{counters[ep]:02d}" + ("f" if rng.random() < 0.4 else "")
            name = name[:-1] if (number, name) in CASME2_DROPPED else name
            start = int(rng.integers(1, 300))
        elif db == "samm":  # <SSS>_<inducement>_<n>, absolute frames of that inducement video
            ind = int(rng.integers(1, 8))
            counters[ind] = counters.get(ind, 0) + 1
            name, clip["inducement"] = f"{number:03d}_{ind}_{counters[ind]}", ind
            start = cursor.get(ind, int(rng.integers(500, 3000))) + int(rng.integers(40, 900))
            cursor[ind] = start + clip["n_frames"]
        else:
            code = SMIC_CODES[clip["class"]]
            counters[code] = counters.get(code, 0) + 1
            name, start = f"s{number}_{code}_{counters[code]:02d}", int(rng.integers(1000, 90000))
        clip["name"], clip["start"] = name, start


def _frame_names(db: str, number: int, clip: dict[str, Any]) -> tuple[str, list[str]]:
    """The clip's folder (under the database root) and frame file names."""
    frames = range(clip["start"], clip["start"] + clip["n_frames"])
    if db == "casme2":
        return f"CASME2-RAW/sub{number:02d}/{clip['name']}", [f"img{i}.jpg" for i in frames]
    if db == "samm":
        return f"SAMM/{number:03d}/{clip['name']}", [f"{number:03d}_{i:05d}.jpg" for i in frames]
    return (
        f"SMIC_all_raw/HS/s{number}/micro/{clip['class']}/{clip['name']}",
        [f"image{i:06d}.bmp" for i in frames],
    )


def _xlsx_bytes(rows: list[list[Any]]) -> bytes:
    """An .xlsx of ``rows`` with fixed timestamps, so that the same rows give the same bytes."""
    from openpyxl import Workbook

    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    buf, out = _bytes_io.BytesIO(), _bytes_io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "docProps/core.xml":  # created/modified: now
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2014-05-08T00:00:00Z", data)
            dst.writestr(
                zipfile.ZipInfo(name, date_time=(2014, 5, 8, 0, 0, 0)),
                data,
                compress_type=zipfile.ZIP_DEFLATED,
            )
    return out.getvalue()


def _sheet(db: str, records: list[dict[str, Any]]) -> tuple[str, bytes] | None:
    """The coding sheet's file name and bytes (a single action unit is a number, as in Excel)."""
    au = [int(a) if a.isdigit() else a for a in (r["action_units"] for r in records)]
    if db == "casme2":
        rows: list[list[Any]] = [CASME2_COLUMNS] + [
            [r["raw_subject"], r["raw_clip"], None, r["onset"], r["apex"], r["offset"], None, a, r["emotion"]]
            for r, a in zip(records, au)
        ]
        return "CASME2-coding-20140508.xlsx", _xlsx_bytes(rows)
    if db == "samm":
        rows = (
            [[note] for note in SAMM_NOTES]
            + [SAMM_COLUMNS]
            + [
                [
                    r["raw_subject"],
                    r["raw_clip"],
                    r["inducement"],
                    r["onset"],
                    r["apex"],
                    r["offset"],
                    r["offset"] - r["onset"] + 1,
                    "Micro",
                    a,
                    r["emotion"],
                    SAMM_OBJECTIVE[r["emotion"]],
                    "synthetic",
                ]
                for r, a in zip(records, au)
            ]
        )
        return "SAMM_Micro_FACS_Codes_v2.xlsx", _xlsx_bytes(rows)
    return None  # SMIC-HS has no sheet: the folder is the label, the clip spans onset..offset


# ---------------------------------------------------------------------------- generate


def _check_args(
    out_dir: str | Path,
    subjects_per_db: int,
    clips_per_subject: int,
    seed: int,
    databases: str | Iterable[str],
    others_per_db: int,
    amplitude: Iterable[float],
) -> tuple[Path, list[str], tuple[float, float]]:
    def integer(name: str, value: object, lo: int, hi: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")

    integer("subjects_per_db", subjects_per_db, 1, 26)
    integer("clips_per_subject", clips_per_subject, 1, 40)
    integer("seed", seed, 0, 2**63 - 1)
    integer("others_per_db", others_per_db, 0, 40)
    if subjects_per_db * clips_per_subject < len(MEGC_CLASSES):
        raise ConfigError(
            "subjects_per_db x clips_per_subject must be at least 3, so that "
            "every class appears in every database"
        )
    dbs = [databases] if isinstance(databases, str) else list(databases)
    if not dbs or len(set(dbs)) != len(dbs) or not set(dbs) <= set(DATABASES):
        raise ConfigError(f"databases must be distinct names among {', '.join(DATABASES)}, got {databases!r}")
    try:
        lo, hi = (float(a) for a in amplitude)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not 0 < lo <= hi <= 10:
        raise ConfigError(
            f"amplitude must be (low, high) in px with 0 < low <= high <= 10, got {amplitude!r}"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    return out, [d for d in DATABASES if d in dbs], (lo, hi)


def _clear(out: Path, overwrite: bool) -> None:
    """Refuse to write over anything but a synthetic set; replace one if ``overwrite`` (an
    unfinished one, without synthetic.json, always)."""
    present = [p for p in (out / "synthetic.json", *(out / r for r in ROOTS.values())) if p.exists()]
    if not present:
        return
    if not ((out / MARKER).is_file() or (out / "synthetic.json").is_file()):
        raise ConfigError(
            f"{out} already holds {', '.join(p.name for p in present)}, not "
            f"written by the synthetic generator (real data?): choose another folder"
        )
    if (out / "synthetic.json").exists() and not overwrite:
        raise ConfigError(
            f"{out} already holds a synthetic data set: pass overwrite=True "
            f"(`overwrite`) or choose another folder"
        )
    for p in present:  # synthetic.json first: a half-removed set never looks complete
        p.unlink() if p.is_file() else shutil.rmtree(p)


def _write_subject(
    out: Path,
    db: str,
    index: int,
    classes: list[str],
    lfw_pool: list[int],
    amplitude: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Render and write one subject's clips; return the subject and its clips' ground truth."""
    number = index + (6 if db == "samm" else 1)  # SAMM's subjects start at 006
    sid = normalize_subject(number, db)
    subject = _draw_subject(db, index, lfw_pool, rng)
    lm = subject["landmarks"]
    clips = [_draw_clip(db, c, amplitude, rng) for c in classes]
    _name_clips(db, number, clips, rng)
    records = []
    for clip in clips:
        folder, names = _frame_names(db, number, clip)
        field = displacement_field(lm, clip["gains"], subject["neutral"].shape[:2])
        for name, frame in zip(names, _render_clip(subject, clip, field, db)):
            _, buf = cv2.imencode(Path(name).suffix, frame, JPEG if name.endswith(".jpg") else [])
            io.write_bytes(out / ROOTS[db] / folder / name, buf.tobytes())
        cid, start = normalize_clip(clip["name"], db), clip["start"]
        records.append(
            {
                "database": db,
                "subject": sid,
                "clip": cid,
                "sample_id": sample_id(sid, cid),
                "raw_subject": number,
                "raw_clip": clip["name"],
                "path": f"{ROOTS[db]}/{folder}",
                "class": clip["class"],
                "emotion": clip["emotion"],
                "action_units": clip["action_units"],
                "blink": clip["blink"],
                "au_gains": {au: [round(g, 3) for g in gs] for au, gs in clip["gains"].items()},
                "onset": start + clip["onset"],
                "apex": start + clip["apex"],
                "offset": start + clip["offset"],
                "first_frame": start,
                "last_frame": start + clip["n_frames"] - 1,
                "n_frames": clip["n_frames"],
                "inducement": clip.get("inducement"),
                "amplitude": round(clip["amplitude"], 4),
                "apex_displacement_px": round(float(np.linalg.norm(field, axis=2).max()), 4),
                "drift_px": np.round(clip["drift"], 4),
                "face": subject["face"],
            }
        )
    info = {
        "database": db,
        "subject": sid,
        "face": subject["face"],
        "face_width_px": round(float(np.linalg.norm(lm[16] - lm[0])), 2),
        "identity": subject["identity"],
        "landmarks": np.round(lm, 1),
    }
    return info, sorted(records, key=lambda r: r["raw_clip"])


def generate(
    out_dir: str | Path,
    subjects_per_db: int = 5,
    clips_per_subject: int = 8,
    seed: int = 0,
    *,
    databases: str | Iterable[str] = DATABASES,
    others_per_db: int = 2,
    amplitude: Iterable[float] = AMPLITUDE,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a synthetic data set into ``out_dir`` (layouts in the module docstring) and return
    its summary (``format_summary`` prints it). Classes follow the composite's balance, every
    class in every database; ``others_per_db`` more clips in CASME II and SAMM are labelled
    others/Other (megc2019 excludes them). ``amplitude``: the range of the clips' intensity, px
    for a 128 px face. Same arguments, same bytes. ``overwrite`` replaces a previous synthetic
    set, never anything else."""
    t0 = time.perf_counter()
    out, dbs, amplitude = _check_args(
        out_dir, subjects_per_db, clips_per_subject, seed, databases, others_per_db, amplitude
    )
    _clear(out, overwrite)
    io.write_text(out / MARKER, "glfnet synthetic data; synthetic.json is written when complete\n")
    lfw = np.random.default_rng([seed, 99]).permutation(100).tolist()
    subjects, truth, summary = [], [], {}
    for db in dbs:
        k = DATABASES.index(db)
        rng, pool = np.random.default_rng([seed, k]), lfw[33 * k : 33 * (k + 1)]  # 33 faces each
        plan = _class_plan(subjects_per_db, clips_per_subject, others_per_db if db != "smic" else 0, rng)
        records = []
        for index, classes in enumerate(plan):
            info, recs = _write_subject(out, db, index, classes, pool, amplitude, rng)
            subjects.append(info)
            records += recs
        sheet = _sheet(db, records)
        if sheet:
            io.write_bytes(out / ROOTS[db] / sheet[0], sheet[1])
        truth += records
        summary[db] = {
            "root": ROOTS[db],
            "subjects": [s["subject"] for s in subjects if s["database"] == db],
            "clips": len(records),
            "frames": sum(r["n_frames"] for r in records),
            "classes": {c: sum(r["class"] == c for r in records) for c in (*MEGC_CLASSES, "others")},
        }
    params = {
        "subjects_per_db": subjects_per_db,
        "clips_per_subject": clips_per_subject,
        "others_per_db": others_per_db,
        "databases": dbs,
        "amplitude": list(amplitude),
        "face_px": FACE_PX,
        "frame_size": {d: FRAME_SIZE[d] for d in dbs},
        "noise_sd": {d: NOISE_SD[d] for d in dbs},
    }
    io.write_json(
        out / "synthetic.json",
        {  # last: its presence means the set is complete
            "format": FORMAT,
            "version": VERSION,
            "seed": seed,
            "params": params,
            "note": "SYNTHETIC data (glfnet.data.synthetic): it proves the pipeline, not the science",
            "databases": summary,
            "subjects": subjects,
            "clips": truth,
        },
    )
    return {
        "out_dir": str(out),
        "seed": seed,
        "databases": summary,
        "clips": len(truth),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines: per database the subjects, clips and class counts."""
    lines = [
        f"synthetic data in {summary['out_dir']} (seed {summary['seed']}): "
        f"{summary['clips']} clips in {summary['seconds']:.1f} s"
    ]
    for s in summary["databases"].values():
        classes = ", ".join(f"{c} {n}" for c, n in s["classes"].items() if n or c != "others")
        lines.append(
            f"  {s['root']:6s} {len(s['subjects'])} subjects "
            f"({', '.join(s['subjects'])}), {s['clips']} clips: {classes}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m glfnet.data.synthetic OUT [SEED]
    import sys

    print(
        format_summary(
            generate(sys.argv[1], seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0, overwrite=True)
        )
    )
