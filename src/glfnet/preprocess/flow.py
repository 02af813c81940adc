"""Optical flow onset -> apex and optical strain (reference sections 3 and 6).

``u`` is the horizontal (rightward), ``v`` the vertical (downward) displacement in pixels, such
that ``apex(x + u, y + v) ~ onset(x, y)``. Methods:

``tvl1``       Dual TV-L1 (Zach, Pock, Bischof 2007; Sanchez, Meinhardt-Llopis, Facciolo,
               IPOL 2013) from OpenCV contrib, with the IPOL defaults that produced the
               public STSTNet release: tau 0.25, lambda 0.15, theta 0.3, 5 scales with zoom
               factor 0.5, 5 warps, epsilon 0.01, at most 300 iterations per warp
               (10 outer x 30 inner), no median filtering of the flow.
``farneback``  Farneback polynomial expansion (pyr 0.5, 3 levels, window 15, 3 iterations,
               poly_n 5, sigma 1.2): ~30x faster, smoother, weaker on small motion.
``dis``        Dense Inverse Search, OpenCV preset MEDIUM: the fastest.

Optical strain (Shreve et al. 2011; as in STSTNet): with central differences (one-sided at
the border; ``numpy.gradient``) of u and v, ``|e| = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)``,
the magnitude of the infinitesimal strain tensor. It is dimensionless.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

FLOW_METHODS = ("tvl1", "farneback", "dis")
TVL1_SETTINGS = {
    "tau": 0.25,
    "lambda": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "inner_iterations": 30,
    "outer_iterations": 10,
    "scale_step": 0.5,
    "gamma": 0.0,
    "median_filtering": 1,
}
_TVL1_SETTERS = {
    "tau": "setTau",
    "lambda": "setLambda",
    "theta": "setTheta",
    "nscales": "setScalesNumber",
    "warps": "setWarpingsNumber",
    "epsilon": "setEpsilon",
    "inner_iterations": "setInnerIterations",
    "outer_iterations": "setOuterIterations",
    "scale_step": "setScaleStep",
    "gamma": "setGamma",
    "median_filtering": "setMedianFiltering",
}
FARNEBACK_SETTINGS = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
DIS_PRESET = "MEDIUM"

_ENGINES: dict = {}


def settings(method: str) -> dict:
    """The settings a method runs with (recorded in the cache's ``cache.json``)."""
    if method == "tvl1":
        return dict(TVL1_SETTINGS)
    if method == "farneback":
        return dict(FARNEBACK_SETTINGS)
    if method == "dis":
        return {"preset": DIS_PRESET}
    raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")


def _engine(method: str) -> Any:
    eng = _ENGINES.get(method)
    if eng is None:
        if method == "tvl1":
            eng = cv2.optflow.DualTVL1OpticalFlow_create()
            for key, setter in _TVL1_SETTERS.items():
                getattr(eng, setter)(TVL1_SETTINGS[key])
        elif method == "dis":
            eng = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        else:
            raise ValueError(method)
        _ENGINES[method] = eng
    return eng


def compute_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Dense flow (H, W, 2) float32 from ``prev`` to ``nxt`` (grayscale uint8, same size)."""
    if prev.shape != nxt.shape:
        raise ValueError(f"frames differ in size: {prev.shape} vs {nxt.shape}")
    a = np.ascontiguousarray(prev, dtype=np.uint8)
    b = np.ascontiguousarray(nxt, dtype=np.uint8)
    if method == "farneback":
        f = cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK_SETTINGS)
    elif method in ("tvl1", "dis"):
        f = _engine(method).calc(a, b, None)
    else:
        raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")
    return np.asarray(f, dtype=np.float32)


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``sqrt(u_x^2 + v_y^2 + 0.5 (u_y + v_x)^2)`` with central differences."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Resize a (3, H, W) (u, v, strain) array to (3, size, size).

    u and v are displacements in pixels, so they are multiplied by the scale factor of their
    axis (size / W, size / H) to stay in pixels of the new grid; strain is a ratio of lengths
    and keeps its values. Area averaging when shrinking, bilinear when enlarging.
    """
    _, h, w = flow.shape
    if (h, w) == (size, size):
        return flow.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if size < max(h, w) else cv2.INTER_LINEAR
    out = np.stack(
        [
            cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=interp)
            for c in flow.astype(np.float32)
        ]
    )
    out[0] *= size / w
    out[1] *= size / h
    return out.astype(np.float32)


def mean_magnitude(flow: np.ndarray) -> float:
    """Mean of sqrt(u^2 + v^2) of an (H, W, 2) or (2+, H, W) flow."""
    f = np.asarray(flow)
    u, v = (f[..., 0], f[..., 1]) if f.shape[-1] == 2 else (f[0], f[1])
    return float(np.mean(np.hypot(u, v)))
