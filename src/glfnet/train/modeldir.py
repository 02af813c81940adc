"""The model directory: what ``glfnet train`` writes and ``glfnet predict`` reads.

::

    MODEL_DIR/model.safetensors   the weights (safetensors: tensors + a JSON header, no pickle)
    MODEL_DIR/config.json         classes, model preset + args, input size, input pipeline,
                                  preprocessing parameters, training config, data digest,
                                  versions, purpose; written last (atomically)

:func:`write_model_dir` writes one (nothing is created before the model exists; a failed write
removes the folders it created). :func:`read_model_dir` reads and checks one, and
:func:`load_model_dir` also rebuilds the network, its input pipeline and preprocessing
parameters: a missing, corrupt, truncated or mismatched directory raises
:class:`~glfnet.errors.ModelFileError` naming the file and what to do. Directories of every
format version up to :data:`MODEL_VERSION` read (``model.ensemble`` missing in older ones is 1);
one that names a removed option (:mod:`glfnet.removed`) loads when the option is at its no-op
value and is refused, naming the option, otherwise.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glfnet import checkpoint, io, removed
from glfnet._version import __version__
from glfnet.config import Config, check_device
from glfnet.data.pipeline import InputPipeline
from glfnet.errors import ConfigError, ModelFileError
from glfnet.models.registry import preset_args_at
from glfnet.preprocess.pipeline import PrepParams
from glfnet.train.fold import build_model

MODEL_FORMAT, MODEL_VERSION = "glfnet-model", 1
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
#: how the flow of a new clip is encoded before the pipeline: ``raw`` (a cache's flow),
#: ``minmax8`` (the STSTNet PNG release: per-image min-max, 8-bit), ``minmax``
ENCODINGS = ("raw", "minmax8", "minmax")
_REQUIRED = {
    "format": (),
    "classes": (),
    "model_id": (),
    "model": ("name", "args", "input_size", "num_classes"),
    "pipeline": ("encoding", "input_norm", "size", "mean", "std"),
    "preprocessing": ("params",),
    "prediction_encoding": (),
    "weights": ("file", "sha256"),
}
_REDO = "Re-create it with `glfnet train DATA --out DIR`."


# ============================================================================ writing


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """The model directory to write, checked but not created: not a file, and holding no
    model unless ``overwrite``."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out_dir` {out} is a file; give a folder for the model.")
    if not overwrite and ((out / WEIGHTS_FILE).exists() or (out / CONFIG_FILE).exists()):
        raise ConfigError(
            f"`out_dir` {out} already holds a model ({WEIGHTS_FILE}/"
            f"{CONFIG_FILE}); choose another folder or pass `overwrite` to "
            "replace it."
        )
    return out


def write_model_dir(
    out_dir: str | Path, model: torch.nn.Module, record: dict[str, Any], overwrite: bool = False
) -> dict[str, Any]:
    """Write ``model`` and its ``config.json`` into ``out_dir``; returns the config.

    ``record`` holds the config's content keys in order (``purpose``, ``classes``, ``model``,
    ``pipeline``, ``prediction_encoding``, ``preprocessing``, ``training``, ``data``); the
    format, version, model id, versions, weights checksum and date are added here. The weights
    are written first and ``config.json`` last, each atomically, so a directory with a
    ``config.json`` is whole; replacing a model removes its old ``config.json`` first.
    """
    out = check_out_dir(out_dir, overwrite)
    created = _first_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / CONFIG_FILE).unlink(missing_ok=True)
        model_id = uuid.uuid4().hex
        weights = out / WEIGHTS_FILE
        checkpoint.save(
            weights,
            model,
            {
                "model_id": model_id,
                "classes": record["classes"],
                "model": record["model"]["name"],
                "purpose": "use",
            },
        )
        config = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "model_id": model_id,
            **record,
            "versions": _versions(),
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256(weights), "bytes": weights.stat().st_size},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        io.write_json(out / CONFIG_FILE, config)  # last: its presence means the folder is whole
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return config


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (what mkdir would create)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _versions() -> dict[str, str | None]:
    try:
        import cv2

        opencv: str | None = cv2.__version__
    except ImportError:  # pragma: no cover
        opencv = None
    return {
        "glfnet": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": opencv,
        "python": platform.python_version(),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ============================================================================ reading


@dataclass
class ModelFiles:
    """A model directory's files, read and checked against each other (not yet built)."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    weights: Path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE


@dataclass
class LoadedModel:
    """A model directory made usable: the network with its weights, on its device."""

    model: torch.nn.Module
    pipeline: InputPipeline
    classes: tuple[str, ...]
    params: PrepParams
    config: dict[str, Any]
    path: Path


def load_model_dir(model_dir: str | Path, device: str = "cpu") -> LoadedModel:
    """Read, check and build a model directory written by :func:`write_model_dir`."""
    check_device(device)
    files = read_model_dir(model_dir)
    model, pipeline, classes, params = _build(files.config, files.config_path)
    checkpoint.load_into(model, files.state, files.weights)
    model.to(torch.device(device))
    return LoadedModel(model, pipeline, classes, params, files.config, files.path)


def read_model_dir(model_dir: str | Path) -> ModelFiles:
    """The config and weights of a model directory, each checked (module docstring)."""
    d = _existing_dir(model_dir)
    config = _read_config(d)
    weights = _weights_path(config, d)
    state, meta = checkpoint.load(weights)
    _check_identity(config, meta, weights, d / CONFIG_FILE)
    return ModelFiles(d, config, state, weights)


def _existing_dir(model_dir: str | Path) -> Path:
    d = Path(model_dir).expanduser()
    if not d.exists():
        raise ModelFileError(
            f"model directory {d} does not exist. Give the folder that "
            f"`glfnet train` wrote (it holds {WEIGHTS_FILE} and {CONFIG_FILE})."
        )
    if not d.is_dir():
        raise ModelFileError(
            f"{d} is a file; give the model directory that holds {WEIGHTS_FILE} and {CONFIG_FILE}."
        )
    return d


def _read_config(d: Path) -> dict[str, Any]:
    path = d / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(
            f"{path} is missing: {d} is not a complete glfnet model "
            f"directory (training may have been interrupted). {_REDO}"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(
            f"{path} is unreadable ({type(e).__name__}: {e}); it is damaged or truncated. {_REDO}"
        ) from None
    _check_config(config, path)
    return config


def _check_config(config: Any, path: Path) -> None:
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} does not hold a JSON object; it is not a glfnet model config. {_REDO}")
    if config.get("format") != MODEL_FORMAT:
        raise ModelFileError(
            f"{path} is not a glfnet model config (format "
            f"{config.get('format')!r}, expected {MODEL_FORMAT!r}). {_REDO}"
        )
    try:
        version = int(config.get("version", 0))
    except (TypeError, ValueError):
        version = 0
    if version > MODEL_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer glfnet (model format version "
            f"{config.get('version')}); upgrade glfnet to use it."
        )
    missing = _missing_keys(config)
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}: it is damaged or was edited. {_REDO}")


def _missing_keys(config: dict[str, Any]) -> list[str]:
    missing = []
    for key, sub in _REQUIRED.items():
        if key not in config:
            missing.append(key)
        elif sub and not isinstance(config[key], dict):
            missing.append(f"{key} (not an object)")
        elif sub:
            missing += [f"{key}.{s}" for s in sub if s not in config[key]]
    return missing


def _weights_path(config: dict[str, Any], d: Path) -> Path:
    name = config["weights"]["file"]
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ModelFileError(
            f"{d / CONFIG_FILE}: weights.file must be a file name inside {d} "
            f"(got {name!r}); it is damaged or was edited. {_REDO}"
        )
    weights = d / name
    if not weights.is_file():
        raise ModelFileError(
            f"{weights} is missing: the model directory {d} has its "
            f"{CONFIG_FILE} but not its weights. {_REDO}"
        )
    return weights


def _check_identity(config: dict[str, Any], meta: dict[str, Any], weights: Path, cfg_path: Path) -> None:
    """The weights are the ones this config was written with: same run, same bytes."""
    if meta.get("model_id") != config["model_id"]:
        raise ModelFileError(
            f"{weights} and {cfg_path} come from different training runs "
            f"(model ids {meta.get('model_id')!r} and {config['model_id']!r}); "
            f"keep the two files of one run together. {_REDO}"
        )
    if _sha256(weights) != config["weights"]["sha256"]:
        raise ModelFileError(
            f"{weights} differs from the file {cfg_path} describes (its "
            f"SHA-256 does not match): it was damaged or replaced. {_REDO}"
        )


# ============================================================================ building


def _build(
    config: dict[str, Any], cfg_path: Path
) -> tuple[torch.nn.Module, InputPipeline, tuple[str, ...], PrepParams]:
    """The network (without its weights), pipeline, classes and preprocessing parameters a
    config describes; anything that does not fit is a ModelFileError naming ``cfg_path``."""
    try:
        classes = _classes(config)
        m = config["model"]
        size = int(m["input_size"])
        # a directory without "revision" predates preset revisions: it was trained on revision 1
        args = {**preset_args_at(m["name"], m.get("revision", 1)), **m["args"]}
        args = removed.model_args(args, f"{cfg_path} (model.args)", ModelFileError)
        mcfg = Config(model=m["name"], model_args=args, input_size=size).validate()
        model = build_model(mcfg, len(classes), ensemble=int(m.get("ensemble", 1)))
        pipeline = _pipeline(config, size, cfg_path)
        params = _prep_params(config["preprocessing"]["params"])
    except (ConfigError, ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{cfg_path} describes a model glfnet cannot build ({e}). {_REDO}") from None
    return model, pipeline, classes, params


def _classes(config: dict[str, Any]) -> tuple[str, ...]:
    classes = tuple(str(c) for c in config["classes"])
    n = config["model"]["num_classes"]
    if int(n) != len(classes) or len(classes) < 2:
        raise ValueError(f"model.num_classes {n} but {len(classes)} classes")
    return classes


def _pipeline(config: dict[str, Any], input_size: int, cfg_path: Path) -> InputPipeline:
    state = removed.drop(config["pipeline"], removed.PIPELINE, f"{cfg_path} (pipeline)", ModelFileError)
    pipeline = InputPipeline.from_state(state)
    if len(pipeline.mean) != 3 or len(pipeline.std) != 3:
        raise ValueError("pipeline mean/std must have 3 values")
    enc = config["prediction_encoding"]
    if enc not in ENCODINGS:
        raise ValueError(f"unknown prediction_encoding {enc!r}")
    if (enc == "raw") != (pipeline.encoding == "raw"):
        raise ValueError(
            f"prediction_encoding {enc!r} does not fit the pipeline's encoding {pipeline.encoding!r}"
        )
    if pipeline.size != input_size:
        raise ValueError(f"pipeline size {pipeline.size} differs from the model's input size {input_size}")
    return pipeline


def _prep_params(d: Any) -> PrepParams:
    if not isinstance(d, dict):
        raise ValueError("preprocessing.params is not an object")
    known = {f.name for f in fields(PrepParams)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"unknown preprocessing parameter(s) {', '.join(unknown)} (written by a newer glfnet?)"
        )
    return PrepParams(**d)
