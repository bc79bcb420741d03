"""Invertible Haar wavelet packet transform, the front end of the image and video codecs.

A full ``levels``-deep Haar packet decomposition is one orthonormal matrix applied to every
``2**levels`` square block (a 2-D Walsh-Hadamard transform). Written as ``pixel_unshuffle`` plus
that fixed matrix it is the fastest form on the CPU (see shared NOTES), and being orthonormal its
inverse is the transpose: exact up to float rounding.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.cache
def _packet_matrix(levels: int) -> torch.Tensor:
    """The (4**levels, 4**levels) orthonormal block transform; row 0 is the low-pass band."""
    haar = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2**0.5
    one_axis = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(levels):
        one_axis = torch.kron(one_axis, haar)
    return torch.kron(one_axis, one_axis)


def block_size(levels: int) -> int:
    """Side of the pixel block one latent position covers; inputs must be multiples of it."""
    return 2**levels


def packet_forward(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * 4**levels, H / 2**levels, W / 2**levels), channel-major bands."""
    if levels == 0:
        return x
    n, c, h, w = x.shape
    r = block_size(levels)
    if h % r or w % r:
        raise ValueError(f"image size {h}x{w} is not a multiple of {r} (pad it first)")
    blocks = F.pixel_unshuffle(x, r).reshape(n, c, r * r, h // r, w // r)
    matrix = _packet_matrix(levels).to(dtype=x.dtype, device=x.device)
    return torch.einsum("kp,ncphw->nckhw", matrix, blocks).reshape(n, c * r * r, h // r, w // r)


def packet_inverse(bands: torch.Tensor, levels: int) -> torch.Tensor:
    """Exact inverse of :func:`packet_forward`."""
    if levels == 0:
        return bands
    n, k, h, w = bands.shape
    r = block_size(levels)
    c = k // (r * r)
    matrix = _packet_matrix(levels).to(dtype=bands.dtype, device=bands.device)
    blocks = torch.einsum("kp,nckhw->ncphw", matrix, bands.reshape(n, c, r * r, h, w))
    return F.pixel_shuffle(blocks.reshape(n, c * r * r, h, w), r)


def pixel_weights(weight: torch.Tensor, levels: int) -> torch.Tensor:
    """A 1x1 convolution on the packet bands, (O, C * 4**levels, 1, 1), as the equivalent
    convolution on pixels, (O, C, 2**levels, 2**levels), to apply with stride 2**levels: the
    transform and a linear map in one step (4x faster on the CPU than the two in turn)."""
    out_channels, bands = weight.shape[:2]
    r = block_size(levels)
    matrix = _packet_matrix(levels).to(dtype=weight.dtype, device=weight.device)
    per_color = weight.reshape(out_channels, bands // (r * r), r * r) @ matrix
    return per_color.reshape(out_channels, bands // (r * r), r, r)
