"""Reading a user's own clips: image files, folders of numbered frames, video files.

Everything comes back as uint8 grayscale, read as ``glfnet prepare`` reads dataset frames
(``cv2.imread(..., IMREAD_GRAYSCALE)``; video frames converted BGR -> gray). Frame numbers of a
folder are the last run of digits in each file name (``img46.jpg`` -> 46), as the dataset
readers use; :func:`frame_positions` maps such numbers to 0-based positions in the folder.
Every problem is a :class:`~glfnet.errors.DataError` or :class:`~glfnet.errors.ConfigError`
naming the file or value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glfnet.errors import ConfigError, DataError

#: the most frames a video is read into memory when onset/apex must be picked
MAX_VIDEO_FRAMES = 1000
#: file name endings taken for video files when a folder of clips is listed
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def size_text(a: np.ndarray) -> str:
    """``"WxH"`` of an image array."""
    return f"{a.shape[1]}x{a.shape[0]}"


def read_image(path: str | Path) -> np.ndarray:
    """A frame file as uint8 grayscale, read exactly as ``glfnet prepare`` reads frames."""
    import cv2

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist; check the path.")
    if not p.is_file():
        raise DataError(f"{p} is not a file; give an image file (.jpg, .png, .bmp ...).")
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataError(
            f"{p} is not an image OpenCV can read (jpg, png, bmp, tif ...); "
            "convert it or check that it is not truncated."
        )
    return img


def as_gray(img: str | Path | np.ndarray, name: str) -> np.ndarray:
    """A path (read with :func:`read_image`) or an array ((H, W) gray or (H, W, 3) RGB, uint8
    or float in [0, 1]) as uint8 grayscale; ``name`` names it in errors."""
    from glfnet.preprocess.pipeline import to_gray

    if isinstance(img, (str, Path)):
        return read_image(img)
    try:
        a = to_gray(np.asarray(img))
    except (ValueError, TypeError) as e:
        raise DataError(
            f"{name}: not an image ({e}); give an (H, W) or (H, W, 3) array or a file path."
        ) from None
    if min(a.shape) < 8:
        raise DataError(f"{name} is {size_text(a)} px: too small to hold a face.")
    return a


def check_sizes(gray: Sequence[np.ndarray], labels: Sequence[str], source: str) -> None:
    """All frames of one clip must have one size; the message lists those that differ."""
    first = gray[0].shape
    odd = [f"{lab} is {size_text(g)}" for g, lab in zip(gray, labels) if g.shape != first]
    if odd:
        raise DataError(
            f"frames of {source} differ in size: {labels[0]} is "
            f"{first[1]}x{first[0]} but {'; '.join(odd[:5])}"
            f"{' ...' if len(odd) > 5 else ''}. All frames of a clip must come from "
            "one camera at one size; resize or re-crop them identically."
        )


# ---------------------------------------------------------------------------- frame folders


def list_frame_files(folder: str | Path) -> tuple[list[Path], list[int]]:
    """Numbered image files of a clip folder in frame order, with their numbers
    (``img46.jpg`` -> 46; the last run of digits in the name, as the dataset readers use)."""
    from glfnet.data.readers.base import list_frames

    d = _existing(
        folder,
        "frame folder",
        folder=True,
        other="`frames` takes a folder of numbered frame images (img46.jpg, "
        "img47.jpg, ...). For a video file use `video`.",
    )
    files, numbers = list_frames(d)
    if len(files) < 2:
        raise DataError(
            f"{d} holds {len(files)} numbered frame image(s); a clip needs at least "
            "two frames named with their number (img46.jpg, 006_05562.jpg, ...)."
        )
    dup = sorted({n for n in numbers if numbers.count(n) > 1})
    if dup:
        raise DataError(f"{d}: several files carry frame number(s) {dup[:5]}; keep one file per frame.")
    return files, numbers


def check_frame_order(onset: int | None, apex: int | None) -> None:
    """Given onset and apex frame numbers (or indices), the onset must come first."""
    if onset is not None and apex is not None and onset >= apex:
        raise ConfigError(f"`onset` {onset} is not before `apex` {apex}: the onset must come first.")


def frame_positions(
    numbers: Sequence[int], onset: int | None, apex: int | None, source: str | Path
) -> tuple[int | None, int | None]:
    """Frame numbers as written in a folder's file names -> 0-based positions in ``numbers``
    (the folder's frame numbers in order, from :func:`list_frame_files`); None stays None."""
    pos = {n: i for i, n in enumerate(numbers)}
    for what, v in (("onset", onset), ("apex", apex)):
        if v is not None and v not in pos:
            raise ConfigError(
                f"`{what}` {v}: {source} has no frame numbered {v}; its frames are "
                f"numbered {numbers[0]} to {numbers[-1]} ({len(numbers)} files; "
                "the number is the last run of digits in the file name)."
            )
    check_frame_order(onset, apex)
    return (None if onset is None else pos[onset]), (None if apex is None else pos[apex])


def list_clips(folder: str | Path) -> list[Path]:
    """The clips of a folder: its sub-folders (taken as folders of numbered frames) and its
    video files (by name ending, :data:`VIDEO_EXTS`), sorted by name; hidden entries skipped."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise DataError(
            f"{d} is not a folder; give a folder that holds clip folders (numbered frames) or video files."
        )
    clips = sorted(
        p
        for p in d.iterdir()
        if not p.name.startswith(".") and (p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_EXTS))
    )
    if not clips:
        raise DataError(
            f"{d} holds no clip folders and no video files "
            f"({', '.join(VIDEO_EXTS)}). For the frames of one clip give the folder "
            "itself as `frames`."
        )
    return clips


# ---------------------------------------------------------------------------- videos


def read_video(path: str | Path, upto: int | None = None) -> list[np.ndarray]:
    """Frames of a video file as uint8 grayscale (OpenCV's FFmpeg backend). ``upto``: stop
    after that 0-based frame. Without it at most :data:`MAX_VIDEO_FRAMES` frames are read."""
    p = _video_path(path)
    frames, more = _decode(p, MAX_VIDEO_FRAMES if upto is None else upto + 1)
    if not frames:
        raise DataError(_undecodable(p))
    if more and upto is None:
        raise DataError(
            f"{p} has more than {MAX_VIDEO_FRAMES} frames: micro-expression clips "
            "are short. Cut the clip around the expression, or give `onset` and "
            "`apex` (0-based frame indices) so only those frames are used."
        )
    return frames


def _video_path(path: str | Path) -> Path:
    return _existing(
        path,
        "video",
        folder=False,
        other="`video` takes a video file. For a folder of frame images use `frames`.",
    )


def _existing(path: str | Path, what: str, folder: bool, other: str) -> Path:
    """``path`` when it exists and is a folder (``folder``) or a file; a DataError naming
    ``what`` it should be otherwise (``other``: what to give instead)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} {p} does not exist; check the path.")
    if not (p.is_dir() if folder else p.is_file()):
        raise DataError(f"{p} is a {'file' if folder else 'folder'}; {other}")
    return p


def _undecodable(p: Path) -> str:
    return (
        f"cannot read {p} as a video (OpenCV/FFmpeg found no decodable video stream). "
        "Convert it (e.g. `ffmpeg -i IN -c:v ffv1 out.avi`, or to frames "
        "`ffmpeg -i IN frames/%05d.png` and use `frames`)."
    )


def _decode(p: Path, limit: int) -> tuple[list[np.ndarray], bool]:
    """Up to ``limit`` gray frames of ``p``, and whether the file holds more."""
    import cv2

    # FFmpeg would print its own line ("moov atom not found") before our clear error; quiet
    # it (AV_LOG_QUIET), unless the user set a level. Read when OpenCV first opens a video.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise DataError(_undecodable(p))
        frames: list[np.ndarray] = []
        while len(frames) < limit:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 3:
                frame = cv2.cvtColor(
                    frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
                )
            frames.append(np.ascontiguousarray(frame))
        more = len(frames) == limit and bool(cap.read()[0])
    finally:
        cap.release()
    return frames, more
