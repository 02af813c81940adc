"""Model files as safetensors: tensors plus a JSON header, never pickled Python objects.

``save`` writes the weights with a JSON metadata string (config, input pipeline, classes) in
the safetensors header, atomically. ``load`` reads both back and turns a missing, truncated
or foreign file into a :class:`~glfnet.errors.ModelFileError` that names it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from glfnet import io
from glfnet.errors import ModelFileError


def save(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    return save_state(path, model.state_dict(), meta)


def save_state(path: str | Path, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Weights given as a state dict (e.g. sent back by a worker) with their metadata."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    header = {"glfnet": json.dumps(meta, default=io.json_default)}
    return io.atomic_write(path, lambda p: save_file(state, str(p), metadata=header))


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model weights {path} do not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
        meta = json.loads(header["glfnet"])
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelFileError(
            f"{path} is not a readable glfnet model file ({type(e).__name__}: "
            f"{e}). It may be truncated or from another tool; re-create it "
            "with `glfnet train`."
        ) from None
    return state, meta


def load_into(model: torch.nn.Module, state: dict, path: str | Path) -> torch.nn.Module:
    """Load weights, turning shape/key mismatches into a ModelFileError naming the file."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ModelFileError(
            f"{path} does not match the model its config describes ({first}). "
            "The weights and config.json come from different runs."
        ) from None
    return model
