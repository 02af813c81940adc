"""The input pipeline: stored flow images -> network inputs, with statistics fitted on a
fold's training samples only. Shared by training, evaluation and inference."""

from __future__ import annotations

import numpy as np
import torch

from glfnet.data import transforms as T


class InputPipeline:
    """Stored inputs -> network inputs: signed domain -> (augment) -> encode -> standardise.

    ``input_norm="signed"`` (the default) scales each image's channels to unit range in the
    signed domain, so zero motion stays at zero in every image; ``"minmax"`` re-encodes each
    image per channel to [0, 1] after augmentation (the STSTNet release encoding: zero motion
    lands at a different level in every image); ``"global"`` keeps raw magnitudes. Then
    per-channel mean/std, fitted on the fold's training inputs only (:meth:`fit`),
    standardise. With ``groups`` given to :meth:`fit` (the database of each training sample:
    metadata, never a label) each database seen in training gets its own mean/std; a sample of
    a database without statistics (or given without one) uses the pooled ones.
    """

    def __init__(
        self,
        encoding: str,
        input_norm: str,
        size: int,
        mean=None,
        std=None,
        group_stats: dict | None = None,
    ):
        self.encoding, self.input_norm, self.size = encoding, input_norm, int(size)
        self.mean = torch.zeros(3) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.ones(3) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.group_stats = {
            str(g): (
                torch.as_tensor(v["mean"], dtype=torch.float32),
                torch.as_tensor(v["std"], dtype=torch.float32),
            )
            for g, v in (group_stats or {}).items()
        }

    def _encode(self, x):
        return T.minmax(x) if self.input_norm == "minmax" else x

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Stored (N, 3, H, W) -> signed domain at the model's input size (no statistics)."""
        x = T.resize(T.to_centered(x, self.encoding), self.size, "raw")
        return T.unit_range(x) if self.input_norm == "signed" else x

    @staticmethod
    def _stats(enc: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        flat = enc.transpose(1, 0, 2, 3).reshape(3, -1)
        return (
            torch.tensor(flat.mean(axis=1), dtype=torch.float32),
            torch.tensor(flat.std(axis=1, ddof=1), dtype=torch.float32).clamp_min(1e-6),
        )

    def fit(self, x_signed: torch.Tensor, groups=None) -> InputPipeline:
        # float64 numpy: exact enough that thread scheduling cannot change the result
        enc = self._encode(x_signed).detach().cpu().double().numpy()
        self.mean, self.std = self._stats(enc)
        self.group_stats = {}
        if groups is not None:
            groups = np.asarray(groups).astype(str)
            for g in np.unique(groups):
                if (groups == g).sum() >= 2:
                    self.group_stats[str(g)] = self._stats(enc[groups == g])
        return self

    def _mean_std(self, groups, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(N or 1, 3, 1, 1) mean and std for a batch whose samples belong to ``groups``."""
        if not self.group_stats or groups is None:
            return self.mean.to(device)[None, :, None, None], self.std.to(device)[None, :, None, None]
        pairs = [self.group_stats.get(str(g), (self.mean, self.std)) for g in groups]
        m = torch.stack([p[0] for p in pairs]).to(device)[:, :, None, None]
        s = torch.stack([p[1] for p in pairs]).to(device)[:, :, None, None]
        return m, s

    def __call__(
        self,
        x_signed: torch.Tensor,
        augment: dict | None = None,
        generator: torch.Generator | None = None,
        groups=None,
    ) -> torch.Tensor:
        if augment:
            x_signed = T.random_augment(x_signed, generator, **augment)
        x = self._encode(x_signed)
        m, s = self._mean_std(groups, x.device)
        # channels-last: about 1.35x faster convolutions on CPU (benchmarks/bench_loso.py)
        return ((x - m) / s).contiguous(memory_format=torch.channels_last)

    def state(self) -> dict:
        state = {
            "encoding": self.encoding,
            "input_norm": self.input_norm,
            "size": self.size,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        if self.group_stats:
            state["group_stats"] = {
                g: {"mean": m.tolist(), "std": s.tolist()} for g, (m, s) in sorted(self.group_stats.items())
            }
        return state

    @classmethod
    def from_state(cls, state: dict) -> InputPipeline:
        """The pipeline :meth:`state` describes (a ``tta`` key of earlier versions is not read
        here: the model directory refuses one that is on, :mod:`glfnet.removed`)."""
        return cls(
            state["encoding"],
            state["input_norm"],
            state["size"],
            state["mean"],
            state["std"],
            state.get("group_stats"),
        )
