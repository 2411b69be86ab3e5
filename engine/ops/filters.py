"""Small image filters on torch tensors of shape ``(..., H, W)`` (any leading dims), float32, any device.

Boundary handling is part of each function's name or docstring because the methods we reimplement depend on it:
MATLAB's ``'symmetric'`` padding repeats the edge sample (``numpy.pad(mode="symmetric")``), unlike torch's
``'reflect'``; He et al.'s box filter averages over the window clipped to the image instead of padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "box_sum_clipped", "box_mean_clipped", "box_mean_symmetric", "max_filter_replicate", "pad_symmetric",
    "forward_diff_x", "forward_diff_y",
]


def _check_image(x: torch.Tensor) -> None:
    if x.ndim < 2:
        raise ValueError(f"Expected (..., H, W), got shape {tuple(x.shape)}")


def _as_nchw(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """View any ``(..., H, W)`` as ``(B, 1, H, W)`` for the pooling functions, remembering the leading shape."""
    _check_image(x)
    lead = x.shape[:-2]
    return x.reshape(-1, 1, *x.shape[-2:]), lead


def _window_sum_along(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over ``[i - radius, i + radius]`` clipped to the array, along ``dim``, via a cumulative sum.

    The cumulative sum runs in float64: at 12 megapixels a float32 running sum of ~4000 values loses the
    ~1e-7 relative precision that the guided filter's variance (a difference of two close means) needs.
    """
    n = x.shape[dim]
    r = min(radius, n - 1)
    cs = torch.cumsum(x, dim=dim, dtype=torch.float64)  # cs[k] = sum of samples 0..k
    # out[i] = cs[min(i + r, n - 1)] − cs[i − r − 1] (the second term absent for i ≤ r), with plain slices
    out = torch.cat([cs.narrow(dim, r, n - r), cs.narrow(dim, n - 1, 1).expand_as(cs.narrow(dim, 0, r))], dim=dim)
    out.narrow(dim, r + 1, n - r - 1).sub_(cs.narrow(dim, 0, n - r - 1))
    return out.to(x.dtype)


def _clipped_counts(n: int, radius: int, device, dtype) -> torch.Tensor:
    """How many of the samples ``i - radius .. i + radius`` lie inside ``0 .. n-1``, for each i."""
    i = torch.arange(n, device=device)
    return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(dtype)


def box_sum_clipped(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over the ``(2r+1)²`` window clipped at the borders (He et al.'s O(1) box filter).

    >>> box_sum_clipped(torch.ones(3, 4), 1)
    tensor([[4., 6., 6., 4.],
            [6., 9., 9., 6.],
            [4., 6., 6., 4.]])
    """
    _check_image(x)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return _window_sum_along(_window_sum_along(x, radius, x.ndim - 2), radius, x.ndim - 1)


def box_mean_clipped(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2r+1)²`` window clipped at the borders (each pixel divided by its own window size)."""
    h, w = x.shape[-2:]
    counts = torch.outer(_clipped_counts(h, radius, x.device, x.dtype), _clipped_counts(w, radius, x.device, x.dtype))
    return box_sum_clipped(x, radius).div_(counts)


def pad_symmetric(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two dims by ``pad`` on every side, mirroring with the edge repeated (MATLAB ``'symmetric'``)."""
    _check_image(x)
    h, w = x.shape[-2:]
    if pad == 0:
        return x
    if pad > min(h, w):
        raise ValueError(f"symmetric padding of {pad} needs an image of at least {pad}×{pad}, got {w}×{h}")
    x = torch.cat([x[..., :pad, :].flip(-2), x, x[..., h - pad:, :].flip(-2)], dim=-2)
    return torch.cat([x[..., :, :pad].flip(-1), x, x[..., :, w - pad:].flip(-1)], dim=-1)


def box_mean_symmetric(x: torch.Tensor, size: int) -> torch.Tensor:
    """``size``×``size`` mean (``size`` odd) with symmetric padding: MATLAB ``imfilter(x, fspecial('average',
    size), 'symmetric')``. Two 1-D passes of shifted-slice sums: for the small windows used here this is several
    times faster than ``avg_pool2d`` on a CPU, and exact for a box."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and >= 1, got {size}")
    if size == 1:
        return x.clone()
    padded = pad_symmetric(x, size // 2)
    h, w = x.shape[-2:]
    rows = padded[..., :, 0:w].clone()
    for k in range(1, size):
        rows += padded[..., :, k:k + w]
    del padded
    out = rows[..., 0:h, :].clone()
    for k in range(1, size):
        out += rows[..., k:k + h, :]
    return out.div_(size * size)


def max_filter_replicate(x: torch.Tensor, size: int) -> torch.Tensor:
    """``size``×``size`` maximum (``size`` odd) with replicated borders; separable, since max over a box is."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and >= 1, got {size}")
    if size == 1:
        return x.clone()
    x4, lead = _as_nchw(x)
    p = size // 2
    padded = F.pad(x4, (p, p, p, p), mode="replicate")
    out = F.max_pool2d(F.max_pool2d(padded, (1, size), stride=1), (size, 1), stride=1)
    return out.reshape(*lead, *out.shape[-2:])


def forward_diff_x(x: torch.Tensor) -> torch.Tensor:
    """``x[:, j+1] - x[:, j]``, with 0 in the last column (MATLAB ``padarray(diff(x,1,2), [0 1], 'post')``)."""
    _check_image(x)
    out = torch.zeros_like(x)
    torch.sub(x[..., :, 1:], x[..., :, :-1], out=out[..., :, :-1])
    return out


def forward_diff_y(x: torch.Tensor) -> torch.Tensor:
    """``x[i+1, :] - x[i, :]``, with 0 in the last row."""
    _check_image(x)
    out = torch.zeros_like(x)
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=out[..., :-1, :])
    return out
