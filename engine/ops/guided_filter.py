"""The guided filter of He, Sun & Tang (ECCV 2010 / TPAMI 2013), grey guide, box-filter formulation.

For each window ω_k of radius r the output is locally linear in the guide, ``q = a_k·I + b_k``, with
``a_k = cov_k(I, p) / (var_k(I) + eps)`` and ``b_k = mean_k(p) − a_k·mean_k(I)``; each pixel then averages the
coefficients of the windows that cover it. All means are over windows clipped at the image border, as in the
authors' reference formulation (sum of the clipped window divided by its pixel count).
"""

from __future__ import annotations

import torch

from .filters import box_mean_clipped

__all__ = ["guided_filter"]


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Filter ``src`` guided by ``guide``; both ``(..., H, W)`` of the same shape, float32.

    ``radius`` is r (window side 2r+1), ``eps`` the regulariser on the guide's local variance (for images in
    [0, 1]). Returns a tensor like ``src``.

    >>> g = torch.linspace(0, 1, 20).repeat(10, 1)
    >>> torch.allclose(guided_filter(g, 2 * g + 1, 3, 1e-8), 2 * g + 1, atol=1e-4)  # linear in the guide
    True
    """
    if guide.shape != src.shape:
        raise ValueError(f"guide and src must have the same shape, got {tuple(guide.shape)} and {tuple(src.shape)}")
    mean_i = box_mean_clipped(guide, radius)
    mean_p = box_mean_clipped(src, radius)
    # The temporaries are freed as soon as a coefficient is formed: at 12 MP each one is 48 MB.
    cov_ip = box_mean_clipped(guide * src, radius).sub_(mean_i * mean_p)
    var_i = box_mean_clipped(guide * guide, radius).sub_(mean_i * mean_i)
    a = cov_ip.div_(var_i.add_(eps))
    del var_i
    b = mean_p.sub_(a * mean_i)
    del mean_i
    return box_mean_clipped(a, radius).mul_(guide).add_(box_mean_clipped(b, radius))
