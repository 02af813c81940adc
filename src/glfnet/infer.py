"""Apply a model directory from ``glfnet train`` to new clips: :class:`Recognizer`.

:meth:`Recognizer.load` reads a model directory (:mod:`glfnet.train.modeldir`; a missing,
corrupt, truncated or mismatched one raises :class:`~glfnet.errors.ModelFileError`) and predicts
from an onset/apex image pair, a list of frames, a folder of numbered frames or a video file,
running the preprocessing the training data had
(:func:`glfnet.preprocess.pipeline.flow_from_pair` with the recorded
:class:`~glfnet.preprocess.pipeline.PrepParams`)::

    from glfnet import Recognizer
    rec = Recognizer.load("models/casme2")
    p = rec.predict("onset.jpg", "apex.jpg")      # paths or arrays
    p.label, p.probabilities, p.info
    for r in rec.predict_folder("clips/"):        # each clip folder and video: its own result
        print(r.input, r.prediction.label if r.ok else r.error)

No face on the onset frame is an error (:class:`~glfnet.errors.DataError`) unless
``align=False`` says the frames are already cropped faces: a model trained on face crops says
nothing useful about a whole frame of background.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from glfnet.data.pipeline import InputPipeline
from glfnet.errors import ConfigError, DataError, GlfnetError
from glfnet.models.inference import predict_proba
from glfnet.preprocess.media import (
    MAX_VIDEO_FRAMES,
    as_gray,
    check_sizes,
    frame_positions,
    list_clips,
    list_frame_files,
    read_video,
    size_text,
)
from glfnet.preprocess.pipeline import PrepParams, flow_from_pair, pick_onset_apex
from glfnet.train.modeldir import load_model_dir

RULE = (
    "onset = the first frame; apex = the frame with the largest mean optical-flow magnitude "
    "from the onset over the face crop (flow-peak, Farneback)"
)
ClipKind = Literal["auto", "frames", "video"]


@dataclass
class Prediction:
    """One input's result: the most probable class, every class's probability, and how the
    input was processed (``info``: face_found, aligned, warnings, onset/apex used, ...)."""

    label: str
    probabilities: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probabilities": dict(self.probabilities), **self.info}


@dataclass
class ClipResult:
    """The outcome for one input of several: its prediction, or the error that stopped it."""

    input: str
    prediction: Prediction | None = None
    error: GlfnetError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        if self.prediction is None:
            return {"input": self.input, "error": str(self.error)}
        return {"input": self.input, **self.prediction.to_dict()}


class Recognizer:
    """A trained model directory, ready to classify new clips (module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        pipeline: InputPipeline,
        classes: Sequence[str],
        params: PrepParams,
        config: dict[str, Any],
        path: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.pipeline = pipeline
        self.classes = tuple(classes)
        self.params = params
        self.config = config
        self.path = path
        self.encoding = config.get("prediction_encoding", "raw")

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> Recognizer:
        """Read and check a model directory written by ``glfnet train``
        (:func:`glfnet.train.final.train_final`)."""
        m = load_model_dir(model_dir, device)
        return cls(m.model, m.pipeline, m.classes, m.params, m.config, m.path)

    # ------------------------------------------------------------------ flow -> probabilities
    def encode(self, flow: np.ndarray) -> np.ndarray:
        """Raw (3, H, W) or (N, 3, H, W) flow -> what the model's pipeline was trained on."""
        x = np.asarray(flow, dtype=np.float32)
        if self.encoding == "raw":
            return x
        lo = x.min(axis=(-2, -1), keepdims=True)
        hi = x.max(axis=(-2, -1), keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-8)
        if self.encoding == "minmax8":  # as the release's 8-bit PNGs store it
            x = np.round(x * 255.0) / 255.0
        return x.astype(np.float32)

    def predict_flow(self, flow: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) of raw flows (N, 3, H, W) or one (3, H, W) -> (K,)."""
        x = np.asarray(flow, dtype=np.float32)
        single = x.ndim == 3
        p = predict_proba(self.model, self.pipeline, self.encode(x[None] if single else x))
        return p[0] if single else p

    def flow(
        self,
        onset_img: Any,
        apex_img: Any,
        *,
        align: bool | None = None,
        names: tuple[str, str] = ("onset image", "apex image"),
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Raw flow of one pair with the model's preprocessing, after the input checks."""
        params = self._params(align)
        a, b = as_gray(onset_img, names[0]), as_gray(apex_img, names[1])
        if a.shape != b.shape:
            raise DataError(
                f"{names[0]} is {size_text(a)} but {names[1]} is {size_text(b)}: "
                "onset and apex must be frames of one clip (same camera, same "
                "size). Resize or re-crop them identically."
            )
        flow, found = flow_from_pair(a, b, params)
        if params.align and not found["face_found"]:
            raise DataError(_no_face_message(names[0]))
        warnings = [w for w in found.get("warnings", []) if not w.startswith("no face found")]
        if not params.align:
            warnings.append(
                "face alignment off: the frames were used as they are (taken to be cropped faces)"
            )
        info = {
            "face_found": bool(found["face_found"]),
            "aligned": params.align,
            "warnings": warnings,
            "crop": found.get("crop"),
        }
        return flow, info

    # ------------------------------------------------------------------ one clip
    def predict(
        self,
        onset_img: Any,
        apex_img: Any,
        *,
        align: bool | None = None,
        names: tuple[str, str] | None = None,
    ) -> Prediction:
        """Classify the motion between an onset and an apex frame.

        Images: paths (read as grayscale with OpenCV, like ``glfnet prepare``) or arrays
        ((H, W) gray or (H, W, 3) **RGB**, uint8 or float in [0, 1]). ``align=False`` skips
        face detection for frames that are already cropped faces.
        """
        names = names or (_name(onset_img, "onset image"), _name(apex_img, "apex image"))
        flow, info = self.flow(onset_img, apex_img, align=align, names=names)
        info.update(onset=names[0], apex=names[1], picked=False)
        return self._result(flow, info)

    def predict_frames(
        self,
        frames: Sequence[Any],
        onset: int | None = None,
        apex: int | None = None,
        *,
        align: bool | None = None,
        labels: Sequence[str] | None = None,
        source: str = "frames",
    ) -> Prediction:
        """Classify a clip given as frames (paths or arrays, in time order).

        ``onset``/``apex`` are 0-based positions in ``frames``. When missing they are picked by
        the unsupervised rule (``RULE``: onset = first frame, apex = flow peak; with only the
        onset given, the apex is the flow peak after it; with only the apex, the onset is the
        first frame), and ``info`` says which were picked. ``labels`` name the frames in
        messages and results (e.g. file names or frame numbers).
        """
        n = len(frames)
        labels = list(labels) if labels is not None else [f"frame {i}" for i in range(n)]
        if n < 2:
            raise DataError(f"{source} holds {n} frame(s); a clip needs at least two (an onset and an apex).")
        _check_positions(onset, apex, n, labels, source)
        notes: dict[str, Any] = {}
        if apex is None:
            o, a, pair, notes = self._pick_apex(frames, onset or 0, labels, source, align)
        else:
            o, a, pair = self._given_pair(frames, onset or 0, apex, labels, source)
        flow, info = self.flow(*pair, align=align, names=(labels[o], labels[a]))
        info.update(
            onset=labels[o],
            apex=labels[a],
            onset_index=int(o),
            apex_index=int(a),
            n_frames=n,
            picked=onset is None or apex is None,
            picked_onset=onset is None,
            picked_apex=apex is None,
            rule=_rule(onset is None, apex is None),
            **notes,
        )
        return self._result(flow, info)

    def predict_frame_folder(
        self,
        folder: str | Path,
        onset: int | None = None,
        apex: int | None = None,
        *,
        align: bool | None = None,
    ) -> Prediction:
        """Classify a folder of numbered frame images (``img46.jpg`` ...). ``onset``/``apex``
        are frame numbers as written in the file names; missing ones are picked as in
        :meth:`predict_frames`. ``info`` adds ``onset_frame``/``apex_frame``."""
        files, numbers = list_frame_files(folder)
        o, a = frame_positions(numbers, onset, apex, folder)
        p = self.predict_frames(files, o, a, align=align, labels=[f.name for f in files], source=str(folder))
        p.info.update(onset_frame=numbers[p.info["onset_index"]], apex_frame=numbers[p.info["apex_index"]])
        return p

    def predict_video(
        self,
        path: str | Path,
        onset: int | None = None,
        apex: int | None = None,
        *,
        align: bool | None = None,
    ) -> Prediction:
        """Classify a video file (read with OpenCV). ``onset``/``apex`` are 0-based frame
        indices (the first frame of the file is 0); missing ones are picked as in
        :meth:`predict_frames`."""
        frames = read_video(path, upto=None if apex is None else max(apex, onset or 0))
        if apex is not None and apex >= len(frames):
            raise ConfigError(
                f"`apex` {apex} is beyond the end of {path}: it has "
                f"{len(frames)} frames (indices 0-{len(frames) - 1})."
            )
        labels = [f"frame {i}" for i in range(len(frames))]
        p = self.predict_frames(frames, onset, apex, align=align, labels=labels, source=str(path))
        p.info["video"] = str(path)
        return p

    def predict_clip(
        self,
        clip: str | Path,
        onset: int | None = None,
        apex: int | None = None,
        *,
        align: bool | None = None,
        kind: ClipKind = "auto",
    ) -> Prediction:
        """Classify a folder of numbered frames (:meth:`predict_frame_folder`) or a video file
        (:meth:`predict_video`); ``kind="auto"`` takes a folder for frames, anything else for a
        video."""
        if kind == "frames" or (kind == "auto" and Path(clip).expanduser().is_dir()):
            return self.predict_frame_folder(clip, onset, apex, align=align)
        return self.predict_video(clip, onset, apex, align=align)

    # ------------------------------------------------------------------ several clips
    def predict_many(
        self,
        clips: Iterable[str | Path],
        onset: int | None = None,
        apex: int | None = None,
        *,
        align: bool | None = None,
        kind: ClipKind = "auto",
    ) -> list[ClipResult]:
        """:meth:`predict_clip` for each clip, each on its own: a bad input's result holds
        its error (a DataError or ConfigError naming it), the others their predictions."""
        results = []
        for clip in clips:
            try:
                p = self.predict_clip(clip, onset, apex, align=align, kind=kind)
            except (DataError, ConfigError) as e:
                results.append(ClipResult(str(clip), error=e))
            else:
                results.append(ClipResult(str(clip), prediction=p))
        return results

    def predict_folder(self, folder: str | Path, *, align: bool | None = None) -> list[ClipResult]:
        """One result per clip of ``folder``: each sub-folder of numbered frames and each video
        file (onset and apex picked), in name order; see :meth:`predict_many`."""
        return self.predict_many(list_clips(folder), align=align)

    # ------------------------------------------------------------------ helpers
    def _pick_apex(
        self, frames: Sequence[Any], start: int, labels: Sequence[str], source: str, align: bool | None
    ) -> tuple[int, int, tuple[np.ndarray, np.ndarray], dict[str, Any]]:
        """Onset and apex picked by the flow-peak rule from frame ``start`` on."""
        n = len(frames)
        if start >= n - 1:
            raise ConfigError(
                f"onset {labels[start]} is the last frame of {source}: no later "
                "frame can be the apex. Give an earlier `onset`."
            )
        if n - start > MAX_VIDEO_FRAMES:
            raise DataError(
                f"{source} has {n - start} frames to search for the apex, more "
                f"than {MAX_VIDEO_FRAMES}: micro-expression clips are short. Cut "
                "the clip around the expression, or give the onset and apex."
            )
        gray = [as_gray(f, lab) for f, lab in zip(frames[start:], labels[start:])]
        check_sizes(gray, labels[start:], source)
        params = self._params(align)
        o, a, found = pick_onset_apex(gray, params)
        if params.align and not found["face_found"]:
            raise DataError(_no_face_message(f"{labels[start]} (the onset frame of {source})"))
        notes = {"apex_scores": [round(float(s), 5) for s in found["scores"]]}
        return start + o, start + a, (gray[o], gray[a]), notes

    @staticmethod
    def _given_pair(
        frames: Sequence[Any], onset: int, apex: int, labels: Sequence[str], source: str
    ) -> tuple[int, int, tuple[np.ndarray, np.ndarray]]:
        if onset >= apex:
            raise ConfigError(
                f"the onset {labels[onset]} is not before the apex "
                f"{labels[apex]} in {source}: give an `onset` before the `apex`."
            )
        pair = (as_gray(frames[onset], labels[onset]), as_gray(frames[apex], labels[apex]))
        check_sizes(list(pair), [labels[onset], labels[apex]], source)
        return onset, apex, pair

    def _params(self, align: bool | None) -> PrepParams:
        if align is None or bool(align) == self.params.align:
            return self.params
        return replace(self.params, align=bool(align))

    def _result(self, flow: np.ndarray, info: dict[str, Any]) -> Prediction:
        probs = self.predict_flow(flow)
        k = int(np.argmax(probs))
        return Prediction(self.classes[k], {c: float(p) for c, p in zip(self.classes, probs)}, info)

    def describe(self) -> dict[str, Any]:
        """A short summary of the model (for the CLI and logs)."""
        c = self.config
        return {
            "path": str(self.path),
            "model": c["model"]["name"],
            "classes": list(self.classes),
            "trained_on": c.get("data", {}).get("source"),
            "n_samples": c.get("data", {}).get("n_samples"),
            "preprocessing": c["preprocessing"].get("source"),
            "purpose": c.get("purpose"),
        }


def _rule(picked_onset: bool, picked_apex: bool) -> str | None:
    """How the picked frames were chosen (None when both were given)."""
    if picked_apex:
        return RULE if picked_onset else RULE.split("; ", 1)[1] + " (after the given onset)"
    return "onset = the first frame (apex given)" if picked_onset else None


def _check_positions(onset: Any, apex: Any, n: int, labels: Sequence[str], source: str) -> None:
    for what, v in (("onset", onset), ("apex", apex)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"`{what}` {v!r} is not a frame position (an integer).")
        if not 0 <= v < n:
            raise ConfigError(
                f"`{what}` position {v} is out of range for {source}: it has {n} "
                f"frames ({labels[0]} ... {labels[-1]})."
            )


def _name(img: Any, default: str) -> str:
    return str(img) if isinstance(img, (str, Path)) else default


def _no_face_message(what: str) -> str:
    return (
        f"no face found in {what}. glfnet finds the face (dlib frontal detector, 68 "
        "landmarks) and crops it as the training data was cropped. If your frames are already "
        "cropped faces, pass `align=False` to use them as they are; otherwise use frames with "
        "a frontal, unoccluded face at least ~80 px wide."
    )
