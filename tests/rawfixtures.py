"""Writers of tiny raw datasets in the official layouts (reference section 7), for tests.

Frames are either ``tiny`` (24 px patterns, for reader tests) or ``face``: a real face photo
(``skimage.data.astronaut()``, bundled with scikit-image) warped with a known motion whose
amplitude rises linearly from the onset to the apex and falls back at the offset. Sheets keep
the quirks that bite: CASME II integer subjects and the apex "/" row, SAMM's 13 preamble rows
and 5-digit absolute frame names, SMIC ``s1_ne_01`` folder names, SMIC-E absolute frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FACE_SIZE = 160


@dataclass
class Clip:
    subject: object  # as written in the sheet (1 for CASME II, 6 for SAMM, "s1" SMIC)
    clip: str  # as written in the sheet / folder name
    emotion: str
    onset: int = 1
    apex: object = 3  # int, or "/" for the CASME II quirk
    offset: int = 5
    au: str = "4"
    frames: list[int] | None = None  # numbers on disk (default onset..offset)
    folder: bool = True  # write the clip folder
    row: bool = True  # write the sheet row
    motion: tuple[float, float] = (0.0, 0.0)  # (dx, dy) px at the apex, global shift
    local: bool = False  # motion only in a band (strain where the motion changes)
    extra: dict = field(default_factory=dict)

    def numbers(self) -> list[int]:
        return list(self.frames) if self.frames is not None else list(range(self.onset, self.offset + 1))


# ---------------------------------------------------------------------------- images


def face_image(size: int = FACE_SIZE, rgb: bool = False) -> np.ndarray:
    """The astronaut's face, a square crop resized to ``size`` (dlib finds it)."""
    from skimage import data

    img = data.astronaut()[20:276, 95:351]
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img if rgb else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Translate by (dx, dy) px: the content at x moves to x + dx."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def band_displacement(shape, dx: float, x0: float, width: float = 6.0) -> np.ndarray:
    """Horizontal displacement that is 0 left of column ``x0`` and ``dx`` right of it, with a
    smooth step of ``width`` px: the motion changes (and strain peaks) at x0."""
    x = np.arange(shape[1], dtype=np.float32)
    step = 1.0 / (1.0 + np.exp(-(x - x0) / (width / 4)))
    return np.broadcast_to(dx * step, shape[:2]).astype(np.float32)


def warp_local(img: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Move content horizontally by the field u (backward map, good for small smooth u)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(img, xx - u, yy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def amplitude(n: int, onset: int, apex: int, offset: int) -> float:
    if n <= onset or n >= offset:
        return 0.0
    return (n - onset) / (apex - onset) if n <= apex else (offset - n) / (offset - apex)


def clip_frames(
    c: Clip, kind: str = "tiny", rgb: bool = False, size: int = FACE_SIZE
) -> dict[int, np.ndarray]:
    """Frame number -> image for a clip."""
    nums = c.numbers()
    if kind == "tiny":
        out = {}
        for n in nums:
            img = np.full((24, 24), 40 + (n * 7) % 150, np.uint8)
            img[4:8, 4:20] = 250
            out[n] = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if rgb else img
        return out
    base = face_image(size, rgb=rgb)
    if rgb:
        base = cv2.cvtColor(base, cv2.COLOR_RGB2BGR)  # cv2.imwrite order
    apex = c.extra.get("peak")  # where the motion peaks (default: the annotated apex)
    if apex is None:
        apex = (
            c.apex if isinstance(c.apex, int) and c.onset < c.apex < c.offset else (c.onset + c.offset) // 2
        )
    out = {}
    for n in nums:
        a = amplitude(n, c.onset, apex, c.offset)
        dx, dy = c.motion[0] * a, c.motion[1] * a
        if c.local:
            out[n] = warp_local(base, band_displacement(base.shape, dx, base.shape[1] * 0.5))
        else:
            out[n] = shift(base, dx, dy)
    return out


def write_frames(folder: Path, frames: dict[int, np.ndarray], name) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, img in frames.items():
        path = folder / name(n)
        params = [cv2.IMWRITE_JPEG_QUALITY, 98] if path.suffix == ".jpg" else []
        assert cv2.imwrite(str(path), img, params), path


# ---------------------------------------------------------------------------- sheets


def write_xlsx(
    path: Path, header: list, rows: list[list], preamble: list[list] | None = None, sheet: str = "Sheet1"
) -> Path:
    """A sheet with optional note rows before the header; ints stay numbers (as in the
    originals), None cells stay blank."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    for r in preamble or []:
        ws.append(r)
    ws.append(header)
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def _as_number(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


# ---------------------------------------------------------------------------- databases


def write_casme2(
    root: Path,
    clips: list[Clip],
    kind: str = "tiny",
    variant: str = "raw",
    sheet: str = "CASME2-coding-20140508.xlsx",
) -> Path:
    """``root/CASME2-RAW/subXX/<Filename>/img<N>.jpg`` + the coding sheet (Subject as int,
    blank columns, apex "/" allowed)."""
    folder = {"raw": "CASME2-RAW", "selected": "CASME2_RAW_selected", "cropped": "Cropped"}[variant]
    prefix = "reg_img" if variant == "cropped" else "img"
    rows = []
    for c in clips:
        if c.folder:
            d = root / folder / f"sub{int(c.subject):02d}" / c.clip
            write_frames(d, clip_frames(c, kind, rgb=True), lambda n: f"{prefix}{n}.jpg")
        if c.row:
            rows.append(
                [int(c.subject), c.clip, None, c.onset, _as_number(c.apex), c.offset, None, c.au, c.emotion]
            )
    header = [
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
    if sheet:
        write_xlsx(root / sheet, header, rows)
    return root


SAMM_PREAMBLE = [[f"SAMM note line {i}: see the SAMM documentation."] for i in range(1, 13)] + [[]]


def write_samm(
    root: Path, clips: list[Clip], kind: str = "tiny", sheet: str = "SAMM_Micro_FACS_Codes_v2.xlsx"
) -> Path:
    """``root/SAMM/<SSS>/<SSS_i_n>/<SSS>_<FFFFF>.jpg`` + the v2 sheet (13 rows of notes,
    header on row 14, Subject as int)."""
    rows = []
    for c in clips:
        sss = f"{int(c.subject):03d}"
        if c.folder:
            d = root / "SAMM" / sss / c.clip
            write_frames(d, clip_frames(c, kind), lambda n, s=sss: f"{s}_{n:05d}.jpg")
        if c.row:
            rows.append(
                [
                    int(c.subject),
                    c.clip,
                    c.extra.get("inducement", "1"),
                    c.onset,
                    _as_number(c.apex),
                    c.offset,
                    c.offset - c.onset + 1,
                    c.extra.get("micro", "Micro - 1/2"),
                    c.au,
                    c.emotion,
                    c.extra.get("objective", "I"),
                    "",
                ]
            )
    header = [
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
    if sheet:
        write_xlsx(root / sheet, header, rows, preamble=SAMM_PREAMBLE)
    return root


def write_smic(root: Path, clips: list[Clip], kind: str = "tiny", variant: str = "raw") -> Path:
    """``root/SMIC_all_raw/HS/s<k>/micro/<emotion>/s<k>_<ne|po|sur>_NN/reg_image<N>.bmp``
    (subject and clip as the raw folders spell them: ``s1``, ``s1_ne_01``)."""
    top = {"raw": "SMIC_all_raw", "cropped": "SMIC_all_cropped"}[variant]
    for c in clips:
        if c.folder:
            d = root / top / "HS" / str(c.subject) / "micro" / c.emotion / c.clip
            write_frames(d, clip_frames(c, kind, rgb=True), lambda n: f"reg_image{n:06d}.bmp")
    return root


def write_smic_e(
    root: Path,
    clips: list[Clip],
    kind: str = "tiny",
    first: dict | None = None,
    sheet: str = "SMIC-HS-E_annotation.xlsx",
) -> Path:
    """``root/HS/s01/s1_ne_01/image<absolute>.jpg`` + sheet ``HS`` with absolute OnsetF /
    OffsetF and FirstF / LastF."""
    rows = []
    for c in clips:
        nums = c.numbers()
        if c.folder:
            d = root / "HS" / f"s{int(str(c.subject).lstrip('s')):02d}" / c.clip
            write_frames(d, clip_frames(c, kind, rgb=True), lambda n: f"image{n:06d}.jpg")
        if c.row:
            rows.append([c.subject, c.clip, c.onset, c.offset, nums[0], nums[-1], c.emotion])
    header = ["Subject", "Filename", "OnsetF", "OffsetF", "FirstF", "LastF", "Emotion"]
    if sheet:
        write_xlsx(root / sheet, header, rows, sheet="HS")
    return root


def write_casme3a(
    root: Path,
    clips: list[Clip],
    kind: str = "tiny",
    sheet: str = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
) -> Path:
    """``root/part_A/data/part_A/spNO.<k>/<letter>/color/<n>.jpg`` + sheet ``label``."""
    rows = []
    for c in clips:
        if c.folder:
            d = root / "part_A" / "data" / "part_A" / str(c.subject) / c.clip / "color"
            write_frames(d, clip_frames(c, kind, rgb=True), lambda n: f"{n}.jpg")
        if c.row:
            rows.append(
                [
                    c.subject,
                    c.clip,
                    c.onset,
                    _as_number(c.apex),
                    c.offset,
                    c.au,
                    c.extra.get("objective", "1"),
                    c.emotion,
                ]
            )
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    if sheet:
        write_xlsx(root / sheet, header, rows, sheet="label")
    return root


def write_mmew(root: Path, clips: list[Clip], kind: str = "tiny", sheet: str = "MMEW_Micro_Exp.xlsx") -> Path:
    """``root/MMEW_Final/Micro_Expression/<emotion>/<Filename>/<n>.jpg`` + the sheet."""
    rows = []
    for c in clips:
        if c.folder:
            d = root / "MMEW_Final" / "Micro_Expression" / c.extra.get("folder", c.emotion) / c.clip
            write_frames(d, clip_frames(c, kind, rgb=True), lambda n: f"{n}.jpg")
        if c.row:
            rows.append([c.subject, c.clip, c.onset, _as_number(c.apex), c.offset, c.au, c.emotion, ""])
    header = [
        "Subject",
        "Filename",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Action Units",
        "Estimated Emotion",
        "remarks",
    ]
    if sheet:
        write_xlsx(root / sheet, header, rows)
    return root


# ---------------------------------------------------------------------------- ready-made sets


def casme2_quirky(root: Path, kind: str = "tiny", motion=(1.5, -1.0)) -> list[Clip]:
    """A CASME II with its quirks: apex "/" (sub04/EP12_01f), apex = onset (sub05/EP09_05f),
    frames img9/img10 (numbers cross a digit boundary), a missing frame, a row without a
    folder, a folder without a row, an excluded emotion."""
    clips = [
        Clip(1, "EP02_01f", "happiness", onset=8, apex=10, offset=12, motion=motion),
        Clip(1, "EP03_02", "disgust", onset=1, apex=3, offset=5, motion=motion),
        Clip(4, "EP12_01f", "disgust", onset=1, apex="/", offset=5, motion=motion),
        Clip(5, "EP09_05f", "repression", onset=2, apex=2, offset=6, motion=motion),
        Clip(2, "EP14_01", "surprise", onset=1, apex=3, offset=6, frames=[1, 2, 3, 5, 6], motion=motion),
        Clip(2, "EP15_03", "others", onset=1, apex=3, offset=5, motion=motion),
        Clip(3, "EP01_01", "fear", onset=1, apex=3, offset=5, motion=motion),
        Clip(3, "EP07_04", "repression", onset=1, apex=3, offset=5, folder=False),
        Clip(3, "EP19_99", "happiness", onset=1, apex=3, offset=5, row=False, motion=motion),
    ]
    write_casme2(root, clips, kind)
    return clips


def samm_quirky(root: Path, kind: str = "tiny", motion=(1.0, 1.0)) -> list[Clip]:
    """SAMM: 5-digit absolute frames, 13 preamble rows, an "Other" row, apex outside
    [onset, offset]."""
    clips = [
        Clip(6, "006_1_2", "Anger", onset=5562, apex=5564, offset=5566, motion=motion),
        Clip(
            6,
            "006_1_3",
            "Happiness",
            onset=99998,
            apex=99999,
            offset=100001,
            frames=[99998, 99999, 100000, 100001],
            motion=motion,
        ),
        Clip(7, "007_5_1", "Other", onset=120, apex=122, offset=124, motion=motion),
        Clip(25, "025_2_1", "Other", onset=10, apex=12, offset=14, motion=motion),
        Clip(11, "011_3_2", "Surprise", onset=300, apex=310, offset=304, motion=motion),
    ]
    write_samm(root, clips, kind)
    return clips


def smic_quirky(root: Path, kind: str = "tiny", motion=(-1.0, 1.0)) -> list[Clip]:
    """SMIC-HS: raw folder names s1 / s1_ne_01, labels from the folders, no apex."""
    clips = [
        Clip("s1", "s1_ne_01", "negative", onset=46460, offset=46466, motion=motion),
        Clip("s1", "s1_po_01", "positive", onset=100, offset=104, motion=motion),
        Clip("s2", "s2_sur_01", "surprise", onset=9, offset=13, motion=motion),
        Clip("s12", "s12_ne_03", "negative", onset=1, offset=5, motion=motion),
    ]
    write_smic(root, clips, kind)
    return clips


# ---------------------------------------------------------------------------- full-size sheets


def composite_clips() -> dict[str, list[Clip]]:
    """Rows shaped like the complete databases (reference sections 2 and 7), without frames:
    CASME II 255 rows / 26 subjects (others 99, disgust 63, happiness 32, repression 27,
    surprise 25, sadness 7, fear 2; sub04/EP12_01f apex "/", sub05/EP09_05f apex = onset);
    SAMM 159 rows / 29 subjects (subject 25 only "Other"); SMIC-HS 164 clips / 16 subjects
    (70/51/43; two frames each)."""
    casme = []
    megc = ["disgust"] * 62 + ["repression"] * 26 + ["happiness"] * 32 + ["surprise"] * 25
    rest = ["others"] * 99 + ["sadness"] * 7 + ["fear"] * 2
    casme.append(Clip(4, "EP12_01f", "disgust", onset=1, apex="/", offset=9, folder=False))
    casme.append(Clip(5, "EP09_05f", "repression", onset=2, apex=2, offset=9, folder=False))
    for i, e in enumerate(megc):
        casme.append(Clip(i % 24 + 1, f"EP{i:03d}_01", e, onset=1, apex=3, offset=9, folder=False))
    for i, e in enumerate(rest):
        casme.append(Clip(i % 26 + 1, f"EP{i:03d}_02", e, onset=1, apex=3, offset=9, folder=False))
    samm = []
    emotions = (
        ["Anger"] * 57
        + ["Happiness"] * 26
        + ["Surprise"] * 15
        + ["Contempt"] * 12
        + ["Disgust"] * 9
        + ["Fear"] * 8
        + ["Sadness"] * 6
    )
    subjects = [n for n in range(6, 35) if n != 25]  # 28 subjects with a non-Other row
    for i, e in enumerate(emotions):
        sub = subjects[i % 28]
        samm.append(Clip(sub, f"{sub:03d}_{i}_1", e, onset=100, apex=103, offset=110, folder=False))
    for i in range(26):
        sub = 25 if i < 4 else subjects[i % 28]
        samm.append(Clip(sub, f"{sub:03d}_{i}_9", "Other", onset=100, apex=103, offset=110, folder=False))
    smic = []
    labels = ["negative"] * 70 + ["positive"] * 51 + ["surprise"] * 43
    tag = {"negative": "ne", "positive": "po", "surprise": "sur"}
    for i, e in enumerate(labels):
        k = i % 16 + 1
        smic.append(Clip(f"s{k}", f"s{k}_{tag[e]}_{i:02d}", e, onset=1, offset=2))
    return {"casme2": casme, "samm": samm, "smic": smic}
