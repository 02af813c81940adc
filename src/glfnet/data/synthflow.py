"""Synthetic *flow* sets with the MEGC2019 composite's structure, in the release's formats.

For tests and benchmarks of loaders and training: 442 samples over 68 subjects with the
composite's per-database class counts (CASME II 88/32/25 over 24 subjects, SAMM 92/26/15 over
28, SMIC 70/51/43 over 16). Each sample is a 28x28 (u, v, strain) field with a class-specific
motion pattern (negative: brows pulled down and together; positive: lip corners up and out;
surprise: brows raised) of random strength, position jitter and noise, written exactly like
the STSTNet release (8-bit RGB PNGs named ``<subject>_<clip> .png``, each channel min-max
scaled per image) with either label CSV, or as the per-subject LOSO tree.

This is synthetic data: it exercises the code, it says nothing about micro-expressions. The
raw-video generator used by ``glfnet demo`` is :mod:`glfnet.data.synthetic`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glfnet.data.flowsets import encode_flow_image
from glfnet.data.naming import MEGC_CLASSES, sample_id

# (database, subjects, {class: count}) of the composite (reference section 2)
COMPOSITE = (
    ("casme2", 24, {"negative": 88, "positive": 32, "surprise": 25}),
    ("samm", 28, {"negative": 92, "positive": 26, "surprise": 15}),
    ("smic", 16, {"negative": 70, "positive": 51, "surprise": 43}),
)


def _subject_name(db: str, k: int) -> str:
    return {"casme2": f"sub{k:02d}", "samm": f"{k + 5:03d}", "smic": f"s{k:02d}"}[db]


def _clip_name(db: str, subject: str, label: str, j: int) -> str:
    if db == "casme2":
        return f"EP{j + 1:02d}_{j % 7 + 1:02d}f"
    if db == "samm":
        return f"{subject}_{j % 5 + 1}_{j + 1}"
    return f"{subject}_{ {'negative': 'ne', 'positive': 'po', 'surprise': 'sur'}[label] }_{j + 1:02d}"


def composite_structure(seed: int = 0, scale: float = 1.0) -> list[dict]:
    """Sample list (database, subject, clip, label, sample_id) with the composite's counts.
    Every subject gets one sample, the rest go to subjects with uneven weights (so some hold a
    single class or sample, as in the real composite). ``scale`` < 1 keeps that fraction of
    each count and of the subjects (at least 1 sample per class, 2 subjects per database)."""
    rng = np.random.default_rng(seed)
    rows = []
    for db, n_subj, counts in COMPOSITE:
        n_subj = max(2, int(round(n_subj * scale)))
        labels = [c for c in MEGC_CLASSES for _ in range(max(1, int(round(counts[c] * scale))))]
        labels = [labels[i] for i in rng.permutation(len(labels))]
        weights = rng.gamma(0.8, 1.0, n_subj) + 0.05
        owners = (
            list(range(n_subj)) + rng.choice(n_subj, len(labels) - n_subj, p=weights / weights.sum()).tolist()
        )
        per_subject: dict[int, int] = {}
        for label, k in sorted(zip(labels, owners), key=lambda t: t[1]):
            j = per_subject.get(k, 0)
            per_subject[k] = j + 1
            subject = _subject_name(db, k + 1)
            clip = _clip_name(db, subject, label, j)
            rows.append(
                {
                    "database": db,
                    "subject": subject,
                    "clip": clip,
                    "label": label,
                    "sample_id": sample_id(subject, clip),
                }
            )
    return rows


def _bump(size: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))


def synth_flow(
    label: str, rng: np.random.Generator, size: int = 28, strength: float = 1.0, noise: float = 0.35
) -> np.ndarray:
    """A raw (u, v, strain) field (3, size, size) with the class's motion pattern."""
    s = size / 28.0
    u = np.zeros((size, size), np.float32)
    v = np.zeros((size, size), np.float32)
    amp = strength * rng.uniform(0.6, 1.4)
    j = lambda: rng.normal(0, 1.0) * s  # noqa: E731  position jitter
    if label == "negative":  # AU4: brows down and together
        for side in (-1, 1):
            b = _bump(size, 14 * s + side * 5 * s + j(), 8 * s + j(), 3 * s)
            u += -side * 0.6 * amp * b
            v += 0.8 * amp * b
    elif label == "positive":  # AU12: lip corners up and out
        for side in (-1, 1):
            b = _bump(size, 14 * s + side * 6 * s + j(), 20 * s + j(), 3 * s)
            u += side * 0.7 * amp * b
            v += -0.7 * amp * b
    elif label == "surprise":  # AU1+2: brows up
        for side in (-1, 1):
            b = _bump(size, 14 * s + side * 6 * s + j(), 8 * s + j(), 3.5 * s)
            v += -1.0 * amp * b
    else:
        raise ValueError(f"unknown class {label!r}")
    u += rng.normal(0, noise * 0.5, u.shape).astype(np.float32)
    v += rng.normal(0, noise * 0.5, v.shape).astype(np.float32)
    u += rng.normal(0, 0.1)  # slight global head motion
    v += rng.normal(0, 0.1)
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    strain = np.sqrt(ux**2 + vy**2 + 0.5 * (uy + vx) ** 2)
    return np.stack([u, v, strain]).astype(np.float32)


def make_flows(rows: list[dict], seed: int = 0, size: int = 28, strength: float = 1.0) -> dict:
    """sample_id -> raw flow for every row (deterministic per seed)."""
    rng = np.random.default_rng(seed + 1)
    return {r["sample_id"]: synth_flow(r["label"], rng, size, strength) for r in rows}


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)


def write_flat(out: str | Path, rows: list[dict], flows: dict, csv_style: str = "htnet") -> Path:
    """Write ``<subject>_<clip> .png`` files and a label CSV (``htnet`` header or the headerless
    ``megc`` ground truth with blank lines and unpadded SAMM subjects). Returns the CSV path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for r in rows:
        _save_png(out / f"{r['sample_id']} .png", encode_flow_image(flows[r["sample_id"]]))
    index = {c: i for i, c in enumerate(MEGC_CLASSES)}
    if csv_style == "htnet":
        lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
        lines += [
            f"{r['database']},{r['subject']},{r['clip']},{index[r['label']]},,{r['sample_id']}.jpg,"
            for r in rows
        ]
        path = out / "labels.csv"
    elif csv_style == "megc":
        lines = []
        for r in rows:
            subj = str(int(r["subject"])) if r["database"] == "samm" else r["subject"]
            lines += [f"{r['database']},{subj},{r['clip']},{index[r['label']]}", ""]
        path = out / "combined_3class_gt.csv"
    else:
        raise ValueError(f"csv_style must be htnet or megc, not {csv_style!r}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tree(out: str | Path, rows: list[dict], flows: dict) -> Path:
    """The per-subject LOSO tree: ``<out>/<subject>/u_{train,test}/<label index>/<file>``,
    every subject folder holding all samples (its own under u_test)."""
    out = Path(out)
    index = {c: i for i, c in enumerate(MEGC_CLASSES)}
    for subject in sorted({r["subject"] for r in rows}):
        for r in rows:
            part = "u_test" if r["subject"] == subject else "u_train"
            _save_png(
                out / subject / part / str(index[r["label"]]) / f"{r['sample_id']} .png",
                encode_flow_image(flows[r["sample_id"]]),
            )
    return out
