import numpy as np
import torch

from glfnet.data import transforms as T
from glfnet.data.flowsets import encode_flow_image
from glfnet.data.synthflow import synth_flow


def _field(seed=0, size=28):
    return torch.tensor(synth_flow("positive", np.random.default_rng(seed), size))[None]


def test_hflip_mirrors_and_negates_u():
    x = _field()
    f = T.hflip(x)
    assert torch.equal(f[:, 0], -x[:, 0].flip(-1))
    assert torch.equal(f[:, 1], x[:, 1].flip(-1))
    assert torch.equal(f[:, 2], x[:, 2].flip(-1))
    assert torch.equal(T.hflip(f), x)


def test_hflip_of_release_encoding_matches_encoding_of_flipped_flow():
    """With per-image min-max encoding, -u is encoded as 255 - u'."""
    raw = _field()[0].numpy()
    mirrored = T.hflip(torch.tensor(raw)[None])[0].numpy()
    enc = torch.tensor(encode_flow_image(raw).transpose(2, 0, 1) / 255.0)[None]
    want = torch.tensor(encode_flow_image(mirrored).transpose(2, 0, 1) / 255.0)[None]
    assert torch.allclose(T.hflip_encoded(enc), want, atol=1 / 255 + 1e-6)
    # the training path (centre, flip, re-encode) gives the same image
    via_pipeline = T.minmax(T.hflip(T.to_centered(enc.float(), "minmax")))
    assert torch.allclose(via_pipeline, want.float(), atol=1 / 255 + 1e-6)


def test_rotation_by_90_degrees_rotates_pixels_and_vectors():
    x = _field(1)
    A = T.affine_matrices(torch.tensor([90.0]))
    r = T.warp(x, A)
    # counter-clockwise on screen: numpy/torch rot90 over (H, W); a vector (u, v) becomes (v, -u)
    img = torch.rot90(x, 1, dims=(2, 3))
    want = torch.cat([img[:, 1:2], -img[:, 0:1], img[:, 2:]], dim=1)
    assert torch.allclose(r, want, atol=1e-4)


def test_rotation_moves_a_rightward_patch_to_the_top_pointing_up():
    x = torch.zeros(1, 3, 28, 28)
    x[0, 0, 12:16, 20:24] = 1.0  # right of centre, moving right
    r = T.warp(x, T.affine_matrices(torch.tensor([90.0])))
    ys, xs = torch.nonzero(r[0, 1].abs() > 0.5, as_tuple=True)
    assert ys.float().mean() < 10 and abs(xs.float().mean() - 13.5) < 1  # now at the top
    assert r[0, 1][ys, xs].mean() < -0.9  # v < 0: moving up
    assert r[0, 0].abs().max() < 1e-4


def test_small_rotation_preserves_magnitude():
    x = torch.tensor(synth_flow("negative", np.random.default_rng(2), 56, noise=0.0))[None]
    r = T.warp(x, T.affine_matrices(torch.tensor([15.0])))
    yy, xx = torch.meshgrid(torch.arange(56.0), torch.arange(56.0), indexing="ij")
    disc = ((yy - 27.5) ** 2 + (xx - 27.5) ** 2) < 22**2  # rotation maps it onto itself
    mag = lambda t: torch.sqrt(t[:, 0] ** 2 + t[:, 1] ** 2)[:, disc].sum()  # noqa: E731
    assert abs(mag(r) / mag(x) - 1) < 0.05


def test_minmax_reencoding_of_a_release_image_is_identity():
    enc = torch.tensor(
        encode_flow_image(_field(3)[0].numpy()).transpose(2, 0, 1) / 255.0, dtype=torch.float32
    )[None]
    assert torch.allclose(T.minmax(T.to_centered(enc, "minmax")), enc, atol=1e-6)


def test_random_augment_is_deterministic_per_generator():
    x = _field(4).repeat(8, 1, 1, 1)
    a = T.random_augment(x, torch.Generator().manual_seed(5), 0.5, 10, 0.05, 0.05)
    b = T.random_augment(x, torch.Generator().manual_seed(5), 0.5, 10, 0.05, 0.05)
    c = T.random_augment(x, torch.Generator().manual_seed(6), 0.5, 10, 0.05, 0.05)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resize_rescales_raw_vectors():
    x = torch.ones(1, 3, 28, 28)
    r = T.resize(x, 56, "raw")
    assert torch.allclose(r[:, :2], torch.full_like(r[:, :2], 2.0)) and torch.allclose(
        r[:, 2], torch.ones(1, 56, 56)
    )


def test_warp_is_affine_grid_and_grid_sample():
    """The elementwise warp equals the textbook one: F.affine_grid of the inverse transform,
    F.grid_sample, then each (u, v) mapped by A (to float rounding)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.randn(16, 3, 28, 20).contiguous(memory_format=torch.channels_last)
    A = T.affine_matrices(torch.rand(16) * 20 - 10, 1 + (torch.rand(16) - 0.5) * 0.1)
    shift = (torch.rand(16, 2) - 0.5) * 0.2
    inv = torch.linalg.inv(A)
    theta = torch.cat([inv, -(inv @ shift[..., None])], dim=2)
    out = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    ref = torch.cat([torch.einsum("bij,bjhw->bihw", A, out[:, :2]), out[:, 2:]], dim=1)
    torch.testing.assert_close(T.warp(x, A, shift), ref, rtol=0, atol=1e-4)
