"""Input transforms that respect optical-flow semantics.

A flow image is (u, v, strain): u and v are the components of a displacement vector, strain a
scalar. Geometric augmentation must move the vectors with the pixels:

* a horizontal flip mirrors the image **and negates u**;
* a rotation (or zoom) by the 2x2 matrix A warps the image **and maps each vector v -> A v**;
  strain is warped as a plain scalar image.

Inputs come in two encodings. ``raw``: float flow in pixels (glfnet caches). ``minmax``: the
public release, each channel min-max scaled per image to [0, 1], so zero motion sits at an
unknown level. :func:`to_centered` brings both to a signed domain (for ``minmax`` u and v lose
their per-image median, the level of the mostly static face; strain keeps its zero at the
image minimum); augmentation works there; :func:`minmax` then re-encodes per image, which for
an un-augmented release image gives back exactly the stored values. For ``minmax`` inputs a
flip stays exact (u -> 1 - u); a rotation is approximate because u and v were scaled by
different unknown factors (docs/training.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_centered(x: torch.Tensor, encoding: str) -> torch.Tensor:
    """(B, 3, H, W) stored inputs -> signed flow-like values (see module docstring)."""
    if encoding == "raw":
        return x
    if encoding != "minmax":
        raise ValueError(f"unknown encoding {encoding!r}")
    uv = x[:, :2]
    med = uv.flatten(2).median(dim=2).values[..., None, None]
    return torch.cat([uv - med, x[:, 2:]], dim=1)


def minmax(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image, per-channel min-max scaling to [0, 1] (the STSTNet release encoding)."""
    flat = x.flatten(2)
    lo = flat.amin(dim=2)[..., None, None]
    hi = flat.amax(dim=2)[..., None, None]
    return (x - lo) / (hi - lo).clamp_min(eps)


def unit_range(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image, per-channel division by the range (max - min): scale-free like
    :func:`minmax`, but a signed-domain zero (no motion) stays zero. For an image of the
    release (each channel min-max scaled to exactly [0, 1]) the range is already 1."""
    flat = x.flatten(2)
    rng = (flat.amax(dim=2) - flat.amin(dim=2))[..., None, None]
    return x / rng.clamp_min(eps)


def hflip(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror left-right and negate u (signed domain). ``mask`` (B,) bool picks which samples."""
    sign = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    sign[0] = -1
    flipped = x.flip(-1) * sign[None, :, None, None]  # u negated (exact: a product with -1)
    if mask is None:
        return flipped
    return torch.where(mask[:, None, None, None], flipped, x)


def hflip_encoded(x: torch.Tensor) -> torch.Tensor:
    """Flip a ``minmax``-encoded image in place of its raw flow: mirror, and u -> 1 - u."""
    flipped = x.flip(-1)
    return torch.cat([1.0 - flipped[:, :1], flipped[:, 1:]], dim=1)


def affine_matrices(angle_deg: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 2, 2) matrices A = s R(theta) acting on (x, y) with y pointing down; a positive angle
    turns the picture counter-clockwise as seen on screen."""
    t = angle_deg * (math.pi / 180.0)
    c, s = torch.cos(t), torch.sin(t)
    A = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)
    if scale is not None:
        A = A * scale[:, None, None]
    return A


def warp(x: torch.Tensor, A: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """Warp signed-domain flow by A (B, 2, 2) about the image centre plus ``shift`` (B, 2, in
    units of half the image size), moving the pixels and mapping each (u, v) to A (u, v).
    Outside the image there is no motion (zeros).

    The sampling grid is ``F.affine_grid``'s (``align_corners=False``) and the 2x2 algebra
    is written out elementwise: the same numbers to float rounding, without the per-pixel
    batched matrix products (the grid's and the vectors' mapping) that made up a third of the
    augmentation's time on a CPU."""
    b, _, h, w = x.shape
    if shift is None:
        shift = x.new_zeros(b, 2)
    a, b_, c, d = A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1]
    det = a * d - b_ * c
    inv = torch.stack([d, -b_, -c, a], dim=1) / det[:, None]  # output -> input coordinates
    t = -(inv.view(-1, 2, 2) @ shift[..., None])[..., 0]
    xs = ((torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1)[None, None, :]
    ys = ((torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1)[None, :, None]

    def row(i: int) -> torch.Tensor:
        m = inv[:, 2 * i : 2 * i + 2, None, None]
        return m[:, 0] * xs + m[:, 1] * ys + t[:, i, None, None]

    grid = torch.stack([row(0), row(1)], dim=-1)  # (B, H, W, 2) as F.affine_grid gives
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    u, v = out[:, 0], out[:, 1]
    k = A.reshape(-1, 4, 1, 1)
    return torch.stack([k[:, 0] * u + k[:, 1] * v, k[:, 2] * u + k[:, 3] * v, out[:, 2]], dim=1)


def random_augment(
    x: torch.Tensor,
    generator: torch.Generator | None,
    hflip_p: float = 0.5,
    rotate: float = 0.0,
    scale: float = 0.0,
    translate: float = 0.0,
) -> torch.Tensor:
    """Random flip / rotation (+-``rotate`` degrees) / zoom (1 +- ``scale``) / shift
    (+-``translate`` of the image size) on a signed-domain batch, drawn from ``generator`` (the
    global one when None)."""
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=generator).mul(hi - lo).add(lo).to(x.device, x.dtype)

    if hflip_p > 0:
        x = hflip(x, torch.rand(b, generator=generator).to(x.device) < hflip_p)
    if rotate > 0 or scale > 0 or translate > 0:
        A = affine_matrices(uniform(-rotate, rotate), uniform(1 - scale, 1 + scale))
        shift = torch.stack(
            [uniform(-2 * translate, 2 * translate), uniform(-2 * translate, 2 * translate)], dim=1
        )
        x = warp(x, A, shift)
    return x


def resize(x: torch.Tensor, size: int, encoding: str) -> torch.Tensor:
    """Bilinear resize to size x size; raw vectors are rescaled to the new pixel grid."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if encoding == "raw":
        out = torch.cat([out[:, :1] * (size / w), out[:, 1:2] * (size / h), out[:, 2:]], dim=1)
    return out
