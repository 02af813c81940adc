"""Train once, predict anywhere: a final model for use, and :class:`Recognizer` to apply it.

:func:`train_final` trains **one** model on **all** samples of a flow set with
:func:`glfnet.train.trainer.train_fold` (the same defaults as ``glfnet loso``) and writes a
model directory::

    MODEL_DIR/model.safetensors   the weights (safetensors: tensors + a JSON header, no pickle)
    MODEL_DIR/config.json         classes, model preset + args, input size, input pipeline,
                                  preprocessing parameters, training config, data digest,
                                  versions, purpose; written last (atomically)

Such a model is for **use**, not for evaluation: every sample it could be scored on was in its
training set. Quote ``glfnet loso`` results for how well the method works (docs/predict.md).

:class:`Recognizer` loads a model directory (validating it: a missing, corrupt, truncated or
mismatched directory raises :class:`~glfnet.errors.ModelFileError`) and predicts from an
onset/apex image pair, a list of frames or a video file, running the preprocessing the
training data had (:func:`glfnet.preprocess.pipeline.flow_from_pair` with the recorded
:class:`~glfnet.preprocess.pipeline.PrepParams`)::

    from glfnet import Recognizer
    rec = Recognizer.load("models/casme2")
    p = rec.predict("onset.jpg", "apex.jpg")      # paths or arrays
    p.label, p.probabilities, p.info

No face on the onset frame is an error (:class:`~glfnet.errors.DataError`) unless
``align=False`` (``--no-align``) says the frames are already cropped faces: a model trained
on face crops says nothing useful about a whole frame of background.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from glfnet.errors import ConfigError, DataError, ModelFileError

MODEL_FORMAT, MODEL_VERSION = "glfnet-model", 1
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
#: the most frames a video is read into memory when onset/apex must be picked
MAX_VIDEO_FRAMES = 1000
PURPOSE = ("final model for use (predicting new clips), trained on all {n} samples of {source}. "
           "It is NOT an evaluation: every sample of that set was seen in training, so scoring "
           "it there measures memory, not recognition. Quote `glfnet loso` results instead.")
RELEASE_NOTE = ("trained on the STSTNet/HTNet PNG release: its flows came from the release's own "
                "preprocessing (its face crops, IPOL TV-L1), not from glfnet. At prediction glfnet "
                "computes flow with its default PrepParams (size = the release's {size} px) and "
                "encodes it like the release (each channel min-max scaled per image to [0, 1], "
                "8-bit quantised); expect a domain shift.")
RULE = ("onset = the first frame; apex = the frame with the largest mean optical-flow magnitude "
        "from the onset over the face crop (flow-peak, Farneback)")
_REQUIRED = {
    "format": (), "classes": (), "model_id": (),
    "model": ("name", "args", "input_size", "num_classes"),
    "pipeline": ("encoding", "input_norm", "size", "mean", "std"),
    "preprocessing": ("params",),
    "prediction_encoding": (),
    "weights": ("file", "sha256"),
}
ENCODINGS = ("raw", "minmax8", "minmax")


# ============================================================================ training

def train_final(flowset, cfg, out_dir, seed: int = 0, *, overwrite: bool = False,
                log: Callable[[str], None] | None = None,
                on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one model on **all** samples of ``flowset`` and write ``out_dir`` (module doc).

    ``cfg`` is a :class:`glfnet.config.Config` (``glfnet loso``'s defaults); ``cfg.seeds`` is
    ignored in favour of ``seed``. With ``cfg.val_subjects > 0`` that fraction of subjects is
    held out of fitting to choose the epoch (recorded). No evaluation is made. Returns the
    ``config.json`` dict. ``log(text)`` gets progress lines; ``on_epoch(record)`` the epoch rows.
    """
    import torch

    from glfnet import checkpoint, io
    from glfnet.eval.runner import data_digest
    from glfnet.train.trainer import determinism, input_size, train_fold

    log = log or (lambda text: None)
    cfg.validate()
    out = _claim_out_dir(out_dir, overwrite)
    if len(flowset) < 2:
        raise DataError(f"{flowset.source} holds {len(flowset)} usable sample(s); training needs "
                        "at least two.")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use "
                          "--device cpu.")
    y = flowset.y
    counts = {c: int((y == i).sum()) for i, c in enumerate(flowset.classes)}
    absent = [c for c, n in counts.items() if n == 0]
    if absent:
        log(f"warning: no training sample of class {', '.join(absent)}; the model can hardly "
            "predict it.")
    preprocessing, encode = _preprocessing_record(flowset)
    digest = data_digest(flowset)
    log(f"training ONE final model on all {len(flowset)} samples of {flowset.source} for use. "
        "This is not an evaluation (every sample is in training); use `glfnet loso` for results.")
    t0 = time.perf_counter()
    with determinism(cfg.device):
        trained = train_fold(flowset.X, y, flowset.samples["subject"].to_numpy(), cfg,
                             len(flowset.classes), flowset.encoding, int(seed), on_epoch=on_epoch,
                             groups=flowset.samples["database"].to_numpy())
    seconds = time.perf_counter() - t0
    model_id = uuid.uuid4().hex
    weights = out / WEIGHTS_FILE
    checkpoint.save(weights, trained.model, {"model_id": model_id, "classes": list(flowset.classes),
                                             "model": cfg.model, "purpose": "use"})
    from glfnet._version import __version__

    config = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "model_id": model_id,
        "purpose": PURPOSE.format(n=len(flowset), source=flowset.source),
        "classes": list(flowset.classes),
        "model": {"name": cfg.model, "args": dict(cfg.model_args), "input_size": input_size(cfg),
                  "num_classes": len(flowset.classes), "ensemble": int(cfg.ensemble)},
        "pipeline": trained.pipeline.state(),
        "prediction_encoding": encode,
        "preprocessing": preprocessing,
        "training": {"config": cfg.to_dict(), "seed": int(seed), "epochs": cfg.epochs,
                     "selected_epoch": trained.selected_epoch,
                     "val_subjects": list(trained.val_subjects), "seconds": round(seconds, 2),
                     "history": trained.history,
                     "evaluation": "none: a final model is trained on all samples"},
        "data": {"source": str(flowset.source), "kind": flowset.kind, "encoding": flowset.encoding,
                 "labels": flowset.labels_path, "digest": digest, "n_samples": len(flowset),
                 "n_subjects": int(flowset.samples["subject"].nunique()),
                 "classes": counts,
                 "databases": {k: int(v) for k, v in
                               flowset.samples["database"].value_counts().sort_index().items()},
                 "image_shape": list(flowset.image_shape),
                 "excluded": [str(p) for p in flowset.problems]},
        "versions": {"glfnet": __version__, "torch": torch.__version__,
                     "numpy": np.__version__, "opencv": _cv2_version(),
                     "python": platform.python_version()},
        "weights": {"file": WEIGHTS_FILE, "sha256": _sha256(weights),
                    "bytes": weights.stat().st_size},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    io.write_json(out / CONFIG_FILE, config)  # last: its presence means the directory is whole
    log(f"model written to {out} ({WEIGHTS_FILE}, {CONFIG_FILE}) in {seconds:.1f} s")
    return config


def _claim_out_dir(out_dir, overwrite: bool) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the model.")
    if not overwrite and ((out / WEIGHTS_FILE).exists() or (out / CONFIG_FILE).exists()):
        raise ConfigError(f"--out {out} already holds a model ({WEIGHTS_FILE}/{CONFIG_FILE}); "
                          "choose another folder or pass --overwrite to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _preprocessing_record(fs) -> tuple[dict, str]:
    """(config.json["preprocessing"], prediction encoding) for a flow set."""
    from glfnet.data import cache
    from glfnet.preprocess.pipeline import PrepParams

    if fs.kind == "cache":
        meta = cache.read_meta(fs.source)
        params = meta.get("params")
        if not isinstance(params, dict):
            raise DataError(f"{Path(fs.source) / cache.META_FILE} records no preprocessing "
                            "`params`; re-create the cache with `glfnet prepare`.")
        return ({"source": "glfnet prepare", "cache": str(fs.source), "params": params,
                 "flow_settings": meta.get("flow_settings"), "protocol": meta.get("protocol"),
                 "cache_glfnet_version": meta.get("glfnet_version")}, "raw")
    size = int(fs.image_shape[-1])
    params = PrepParams(size=size).to_dict()
    return ({"source": "ststnet-release", "params": params,
             "note": RELEASE_NOTE.format(size=size)}, "minmax8")


def _cv2_version() -> str | None:
    try:
        import cv2

        return cv2.__version__
    except ImportError:  # pragma: no cover
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ============================================================================ prediction

@dataclass
class Prediction:
    """One input's result: the most probable class, every class's probability, and how the
    input was processed (``info``: face_found, aligned, warnings, onset/apex used, ...)."""

    label: str
    probabilities: dict[str, float]
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"label": self.label, "probabilities": dict(self.probabilities), **self.info}


class Recognizer:
    """A trained model directory, ready to classify new clips (module docstring)."""

    def __init__(self, model, pipeline, classes: Sequence[str], params, config: dict,
                 path: Path | None = None):
        self.model = model.eval()
        self.pipeline = pipeline
        self.classes = tuple(classes)
        self.params = params
        self.config = config
        self.path = path
        self.encoding = config.get("prediction_encoding", "raw")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model_dir, device: str = "cpu") -> "Recognizer":
        """Read and check a model directory written by :func:`train_final`."""
        import torch

        from glfnet import checkpoint
        from glfnet.config import Config
        from glfnet.data.pipeline import InputPipeline
        from glfnet.train.trainer import build_model

        d = Path(model_dir).expanduser()
        redo = "Re-create it with `glfnet train DATA --out DIR`."
        if not d.exists():
            raise ModelFileError(f"model directory {d} does not exist. Give the --out folder of "
                                 "`glfnet train` (it holds model.safetensors and config.json).")
        if not d.is_dir():
            raise ModelFileError(f"{d} is a file; give the model directory that holds "
                                 f"{WEIGHTS_FILE} and {CONFIG_FILE}.")
        cfg_path = d / CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelFileError(f"{cfg_path} is missing: {d} is not a complete glfnet model "
                                 f"directory (training may have been interrupted). {redo}")
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{cfg_path} is unreadable ({type(e).__name__}: {e}); it is "
                                 f"damaged or truncated. {redo}") from None
        _check_config(config, cfg_path, redo)
        wname = config["weights"]["file"]
        if not isinstance(wname, str) or not wname or Path(wname).name != wname:
            raise ModelFileError(f"{cfg_path}: weights.file must be a file name inside {d} "
                                 f"(got {wname!r}); it is damaged or was edited. {redo}")
        weights = d / wname
        if not weights.is_file():
            raise ModelFileError(f"{weights} is missing: the model directory {d} has its "
                                 f"{CONFIG_FILE} but not its weights. {redo}")
        state, meta = checkpoint.load(weights)
        if meta.get("model_id") != config["model_id"]:
            raise ModelFileError(f"{weights} and {cfg_path} come from different training runs "
                                 f"(model ids {meta.get('model_id')!r} and "
                                 f"{config['model_id']!r}); keep the two files of one run "
                                 f"together. {redo}")
        if _sha256(weights) != config["weights"]["sha256"]:
            raise ModelFileError(f"{weights} differs from the file {cfg_path} describes (its "
                                 f"SHA-256 does not match): it was damaged or replaced. {redo}")
        m = config["model"]
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU here; "
                              "use --device cpu.")
        try:
            classes = [str(c) for c in config["classes"]]
            if int(m["num_classes"]) != len(classes) or len(classes) < 2:
                raise ValueError(f"model.num_classes {m['num_classes']} but "
                                 f"{len(classes)} classes")
            mcfg = Config(model=m["name"], model_args=dict(m["args"]),
                          input_size=int(m["input_size"]), device=device).validate()
            model = build_model(mcfg, len(classes), ensemble=int(m.get("ensemble", 1)))
            pipeline = InputPipeline.from_state(config["pipeline"])
            if len(pipeline.mean) != 3 or len(pipeline.std) != 3:
                raise ValueError("pipeline mean/std must have 3 values")
            params = _prep_params(config["preprocessing"]["params"])
            enc = config["prediction_encoding"]
            if enc not in ENCODINGS:
                raise ValueError(f"unknown prediction_encoding {enc!r}")
            if (enc == "raw") != (pipeline.encoding == "raw"):
                raise ValueError(f"prediction_encoding {enc!r} does not fit the pipeline's "
                                 f"encoding {pipeline.encoding!r}")
            if pipeline.size != mcfg.input_size:
                raise ValueError(f"pipeline size {pipeline.size} differs from the model's input "
                                 f"size {mcfg.input_size}")
        except (ConfigError, ValueError, TypeError, KeyError) as e:
            raise ModelFileError(f"{cfg_path} describes a model glfnet cannot build ({e}). "
                                 f"{redo}") from None
        checkpoint.load_into(model, state, weights)
        model.to(torch.device(device))
        return cls(model, pipeline, classes, params, config, d)

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
        from glfnet.models.inference import predict_proba

        x = np.asarray(flow, dtype=np.float32)
        single = x.ndim == 3
        X = self.encode(x[None] if single else x)
        p = predict_proba(self.model, self.pipeline, X)
        return p[0] if single else p

    def flow(self, onset_img, apex_img, *, align: bool | None = None,
             names: tuple[str, str] = ("onset image", "apex image")) -> tuple[np.ndarray, dict]:
        """Raw flow of one pair with the model's preprocessing, after the input checks."""
        from glfnet.preprocess.pipeline import flow_from_pair

        params = self._params(align)
        a, b = _as_gray(onset_img, names[0]), _as_gray(apex_img, names[1])
        if a.shape != b.shape:
            raise DataError(f"{names[0]} is {_size(a)} but {names[1]} is {_size(b)}: onset and "
                            "apex must be frames of one clip (same camera, same size). Resize or "
                            "re-crop them identically.")
        flow, info = flow_from_pair(a, b, params)
        info = {"face_found": bool(info["face_found"]), "aligned": params.align,
                "warnings": [w for w in info.get("warnings", [])
                             if not w.startswith("no face found")],
                "crop": info.get("crop")}
        if params.align and not info["face_found"]:
            raise DataError(_no_face_message(names[0]))
        if not params.align:
            info["warnings"].append("face alignment off: the frames were used as they are "
                                    "(taken to be cropped faces)")
        return flow, info

    def predict(self, onset_img, apex_img, *, align: bool | None = None,
                names: tuple[str, str] | None = None) -> Prediction:
        """Classify the motion between an onset and an apex frame.

        Images: paths (read as grayscale with OpenCV, like ``glfnet prepare``) or arrays
        ((H, W) gray or (H, W, 3) **RGB**, uint8 or float in [0, 1]). ``align=False`` skips
        face detection for frames that are already cropped faces.
        """
        names = names or (_name(onset_img, "onset image"), _name(apex_img, "apex image"))
        flow, info = self.flow(onset_img, apex_img, align=align, names=names)
        info.update(onset=names[0], apex=names[1], picked=False)
        return self._result(flow, info)

    def predict_frames(self, frames: Sequence, onset: int | None = None, apex: int | None = None,
                       *, align: bool | None = None, labels: Sequence | None = None,
                       source: str = "frames") -> Prediction:
        """Classify a clip given as frames (paths or arrays, in time order).

        ``onset``/``apex`` are 0-based positions in ``frames``. When missing they are picked by
        the unsupervised rule (``RULE``: onset = first frame, apex = flow peak; with only the
        onset given, the apex is the flow peak after it; with only the apex, the onset is the
        first frame), and ``info`` says which were picked. ``labels`` name the frames in
        messages and results (e.g. file names or frame numbers).
        """
        from glfnet.preprocess.pipeline import pick_onset_apex

        n = len(frames)
        labels = list(labels) if labels is not None else [f"frame {i}" for i in range(n)]
        if n < 2:
            raise DataError(f"{source} holds {n} frame(s); a clip needs at least two (an onset "
                            "and an apex).")
        _check_positions(onset, apex, n, labels, source)
        params = self._params(align)
        picked_onset, picked_apex = onset is None, apex is None
        notes = {}
        if apex is None:
            start = 0 if onset is None else onset
            if start >= n - 1:
                raise ConfigError(f"onset {labels[start]} is the last frame of {source}: no later "
                                  "frame can be the apex. Give an earlier --onset.")
            if n - start > MAX_VIDEO_FRAMES:
                raise DataError(f"{source} has {n - start} frames to search for the apex, more "
                                f"than {MAX_VIDEO_FRAMES}: micro-expression clips are short. Cut "
                                "the clip around the expression, or give the onset and apex.")
            gray = [_as_gray(f, lab) for f, lab in zip(frames[start:], labels[start:])]
            _check_sizes(gray, labels[start:], source)
            o, a, pinfo = pick_onset_apex(gray, params)
            if params.align and not pinfo["face_found"]:
                raise DataError(_no_face_message(f"{labels[start]} (the onset frame of {source})"))
            onset, apex = start + o, start + a
            notes["apex_scores"] = [round(float(s), 5) for s in pinfo["scores"]]
            pair = (gray[o], gray[a])
        else:
            onset = 0 if onset is None else onset
            if onset >= apex:
                raise ConfigError(f"the onset {labels[onset]} is not before the apex "
                                  f"{labels[apex]} in {source}: give an --onset before --apex.")
            pair = (_as_gray(frames[onset], labels[onset]), _as_gray(frames[apex], labels[apex]))
            _check_sizes(list(pair), [labels[onset], labels[apex]], source)
        flow, info = self.flow(*pair, align=align, names=(labels[onset], labels[apex]))
        rule = {(True, True): RULE, (False, True): RULE.split("; ", 1)[1] + " (after the "
                "given onset)", (True, False): "onset = the first frame (apex given)",
                (False, False): None}[(picked_onset, picked_apex)]
        info.update(onset=labels[onset], apex=labels[apex], onset_index=int(onset),
                    apex_index=int(apex), n_frames=n, picked=picked_onset or picked_apex,
                    picked_onset=picked_onset, picked_apex=picked_apex, rule=rule, **notes)
        return self._result(flow, info)

    def predict_video(self, path, onset: int | None = None, apex: int | None = None, *,
                      align: bool | None = None) -> Prediction:
        """Classify a video file (read with OpenCV). ``onset``/``apex`` are 0-based frame
        indices (the first frame of the file is 0); missing ones are picked as in
        :meth:`predict_frames`."""
        frames = read_video(path, upto=None if apex is None else max(apex, onset or 0))
        labels = [f"frame {i}" for i in range(len(frames))]
        if apex is not None and apex >= len(frames):
            raise ConfigError(f"--apex {apex} is beyond the end of {path}: it has "
                              f"{len(frames)} frames (indices 0-{len(frames) - 1}).")
        p = self.predict_frames(frames, onset, apex, align=align, labels=labels, source=str(path))
        p.info["video"] = str(path)
        return p

    # ------------------------------------------------------------------ helpers
    def _params(self, align: bool | None):
        if align is None or bool(align) == self.params.align:
            return self.params
        from dataclasses import replace

        return replace(self.params, align=bool(align))

    def _result(self, flow: np.ndarray, info: dict) -> Prediction:
        probs = self.predict_flow(flow)
        k = int(np.argmax(probs))
        return Prediction(self.classes[k], {c: float(p) for c, p in zip(self.classes, probs)}, info)

    def describe(self) -> dict:
        """A short summary of the model (for the CLI and logs)."""
        c = self.config
        return {"path": str(self.path), "model": c["model"]["name"], "classes": list(self.classes),
                "trained_on": c.get("data", {}).get("source"),
                "n_samples": c.get("data", {}).get("n_samples"),
                "preprocessing": c["preprocessing"].get("source"),
                "purpose": c.get("purpose")}


# ============================================================================ inputs

def _check_config(config, path: Path, redo: str) -> None:
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} does not hold a JSON object; it is not a glfnet model "
                             f"config. {redo}")
    if config.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a glfnet model config (format "
                             f"{config.get('format')!r}, expected {MODEL_FORMAT!r}). {redo}")
    try:
        version = int(config.get("version", 0))
    except (TypeError, ValueError):
        version = 0
    if version > MODEL_VERSION:
        raise ModelFileError(f"{path} was written by a newer glfnet (model format version "
                             f"{config.get('version')}); upgrade glfnet to use it.")
    missing = []
    for key, sub in _REQUIRED.items():
        if key not in config:
            missing.append(key)
        elif sub:
            if not isinstance(config[key], dict):
                missing.append(f"{key} (not an object)")
                continue
            missing += [f"{key}.{s}" for s in sub if s not in config[key]]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}: it is damaged or was edited. "
                             f"{redo}")


def _prep_params(d):
    from glfnet.preprocess.pipeline import PrepParams

    if not isinstance(d, dict):
        raise ValueError("preprocessing.params is not an object")
    known = {f.name for f in fields(PrepParams)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown preprocessing parameter(s) {', '.join(unknown)} (written by "
                         "a newer glfnet?)")
    return PrepParams(**d)


def _name(img, default: str) -> str:
    return str(img) if isinstance(img, (str, Path)) else default


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def _no_face_message(what: str) -> str:
    return (f"no face found in {what}. glfnet finds the face (dlib frontal detector, 68 "
            "landmarks) and crops it as the training data was cropped. If your frames are already "
            "cropped faces, add --no-align (Python: align=False) to use them as they are; "
            "otherwise use frames with a frontal, unoccluded face at least ~80 px wide.")


def read_image(path) -> np.ndarray:
    """A frame file as uint8 grayscale, read exactly as ``glfnet prepare`` reads frames."""
    import cv2

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist; check the path.")
    if not p.is_file():
        raise DataError(f"{p} is not a file; give an image file (.jpg, .png, .bmp ...).")
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataError(f"{p} is not an image OpenCV can read (jpg, png, bmp, tif ...); "
                        "convert it or check that it is not truncated.")
    return img


def _as_gray(img, name: str) -> np.ndarray:
    from glfnet.preprocess.pipeline import to_gray

    if isinstance(img, (str, Path)):
        return read_image(img)
    try:
        a = to_gray(np.asarray(img))
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}: not an image ({e}); give an (H, W) or (H, W, 3) array or a "
                        "file path.") from None
    if min(a.shape) < 8:
        raise DataError(f"{name} is {_size(a)} px: too small to hold a face.")
    return a


def _check_sizes(gray: Sequence[np.ndarray], labels: Sequence, source: str) -> None:
    first = gray[0].shape
    odd = [f"{lab} is {_size(g)}" for g, lab in zip(gray, labels) if g.shape != first]
    if odd:
        raise DataError(f"frames of {source} differ in size: {labels[0]} is "
                        f"{first[1]}x{first[0]} but {'; '.join(odd[:5])}"
                        f"{' ...' if len(odd) > 5 else ''}. All frames of a clip must come from "
                        "one camera at one size; resize or re-crop them identically.")


def _check_positions(onset, apex, n: int, labels, source: str) -> None:
    for what, v in (("onset", onset), ("apex", apex)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{what} {v!r} is not a frame position (an integer).")
        if not 0 <= v < n:
            raise ConfigError(f"{what} position {v} is out of range for {source}: it has {n} "
                              f"frames ({labels[0]} ... {labels[-1]}).")


def list_frame_files(folder) -> tuple[list[Path], list[int]]:
    """Numbered image files of a clip folder in frame order, with their numbers
    (``img46.jpg`` -> 46; the last run of digits in the name, as the dataset readers use)."""
    from glfnet.data.readers.base import list_frames

    d = Path(folder).expanduser()
    if not d.exists():
        raise DataError(f"frame folder {d} does not exist; check the path.")
    if not d.is_dir():
        raise DataError(f"{d} is a file; --frames takes a folder of numbered frame images "
                        "(img46.jpg, img47.jpg, ...). For a video file use --video.")
    files, numbers = list_frames(d)
    if len(files) < 2:
        raise DataError(f"{d} holds {len(files)} numbered frame image(s); a clip needs at least "
                        "two frames named with their number (img46.jpg, 006_05562.jpg, ...).")
    dup = sorted({n for n in numbers if numbers.count(n) > 1})
    if dup:
        raise DataError(f"{d}: several files carry frame number(s) {dup[:5]}; keep one file "
                        "per frame.")
    return files, numbers


def read_video(path, upto: int | None = None) -> list[np.ndarray]:
    """Frames of a video file as uint8 grayscale (OpenCV's FFmpeg backend). ``upto``: stop
    after that 0-based frame. Without it at most ``MAX_VIDEO_FRAMES`` frames are read."""
    import cv2

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"video {p} does not exist; check the path.")
    if not p.is_file():
        raise DataError(f"{p} is a folder; --video takes a video file. For a folder of frame "
                        "images use --frames.")
    cap = cv2.VideoCapture(str(p))
    unsupported = (f"cannot read {p} as a video (OpenCV/FFmpeg found no decodable video "
                   "stream). Convert it (e.g. `ffmpeg -i IN -c:v ffv1 out.avi`, or to frames "
                   "`ffmpeg -i IN frames/%05d.png` and use --frames).")
    try:
        if not cap.isOpened():
            raise DataError(unsupported)
        frames = []
        limit = MAX_VIDEO_FRAMES if upto is None else upto + 1
        while len(frames) < limit:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 3:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4
                                     else cv2.COLOR_BGR2GRAY)
            frames.append(np.ascontiguousarray(frame))
        more = upto is None and len(frames) == MAX_VIDEO_FRAMES and cap.read()[0]
    finally:
        cap.release()
    if not frames:
        raise DataError(unsupported)
    if more:
        raise DataError(f"{p} has more than {MAX_VIDEO_FRAMES} frames: micro-expression clips "
                        "are short. Cut the clip around the expression, or give --onset and "
                        "--apex (0-based frame indices) so only those frames are used.")
    return frames
