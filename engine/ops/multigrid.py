"""A matrix-free aggregation multigrid V-cycle for ``A = diag(d) + L_w`` (see :mod:`engine.ops.laplacian`), meant
as a preconditioner for :func:`engine.ops.pcg.pcg`.

Coarsening merges 2×2 pixel blocks (piecewise-constant prolongation P). The Galerkin coarse operator
``Pᵀ A P`` of such a system is again ``diag(d_c) + L_{w_c}``: ``d_c`` sums ``d`` over each block, and the link
weight between two neighbouring blocks is the sum of the fine links that cross between them (links inside a
block cancel on block-constant vectors). So every level is a :class:`WeightedLaplacianSystem`, nothing is ever
assembled, and the cycle is elementwise work that runs as well on a GPU as on a CPU.

Smoothing is damped Jacobi (ω = 2/3), the same number of sweeps before and after the coarse correction, and a
fixed number of sweeps on the coarsest grid: this makes the V-cycle a fixed symmetric positive definite
operator, as CG requires (for the diagonally dominant M-matrices built here, D⁻¹A has its spectrum in (0, 2),
so damped Jacobi contracts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .laplacian import WeightedLaplacianSystem

__all__ = ["AggregationMultigrid"]


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return x
    return F.pad(x, (0, w % 2, 0, h % 2))


def _block_sum(x: torch.Tensor) -> torch.Tensor:
    x = _pad_even(x)
    return x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]


def _add_prolonged(x: torch.Tensor, coarse: torch.Tensor) -> None:
    """``x += P·coarse``: each coarse value added to its 2×2 block (cropped at odd borders), in place."""
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:  # a broadcast add into a (h/2, 2, w/2, 2) view: no copy of the prolongation
        x.unflatten(-1, (w // 2, 2)).unflatten(-3, (h // 2, 2)).add_(coarse[..., :, None, :, None])
    else:
        x += coarse.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]


def _coarsen(d: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor):
    wx = wx.clone()
    wy = wy.clone()
    wx[..., :, -1] = 0  # the conventionally ignored border links must not leak into a padded block
    wy[..., -1, :] = 0
    wx, wy = _pad_even(wx), _pad_even(wy)
    coarse_wx = wx[..., 0::2, 1::2] + wx[..., 1::2, 1::2]  # links from block column J to J+1
    coarse_wy = wy[..., 1::2, 0::2] + wy[..., 1::2, 1::2]  # links from block row I to I+1
    return _block_sum(d), coarse_wx, coarse_wy


class AggregationMultigrid:
    """V-cycle ``r ↦ M⁻¹ r`` for the system ``diag(d) + L_w`` of shape ``(..., H, W)``.

    Args:
        d, wx, wy: the system (as for :class:`WeightedLaplacianSystem`).
        sweeps: damped-Jacobi sweeps before and after each coarse correction.
        coarsest: stop coarsening when the smaller side is at most this.
        coarse_sweeps: Jacobi sweeps on the coarsest grid.
    """

    def __init__(self, d: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor, *, sweeps: int = 1,
                 coarsest: int = 16, coarse_sweeps: int = 6, omega: float = 2.0 / 3.0,
                 finest: WeightedLaplacianSystem | None = None):
        self.sweeps, self.coarse_sweeps, self.omega = sweeps, coarse_sweeps, omega
        self.levels = [finest or WeightedLaplacianSystem(d, wx, wy)]
        while min(d.shape[-2:]) > coarsest:
            d, wx, wy = _coarsen(d, wx, wy)
            self.levels.append(WeightedLaplacianSystem(d, wx, wy))
        # the damping is folded into the inverse diagonals once, saving a pass per sweep
        self.damped_inverse_diagonals = [level.inverse_diagonal().mul_(omega) for level in self.levels]

    def _smooth(self, level: int, x: torch.Tensor, b: torch.Tensor, sweeps: int, work: torch.Tensor
                ) -> torch.Tensor:
        system, inv = self.levels[level], self.damped_inverse_diagonals[level]
        for _ in range(sweeps):
            x.addcmul_(system.residual(b, x, out=work), inv)
        return x

    def _cycle(self, level: int, b: torch.Tensor) -> torch.Tensor:
        x = torch.mul(b, self.damped_inverse_diagonals[level])  # the first Jacobi sweep from x = 0
        work = torch.empty_like(b)
        if level == len(self.levels) - 1:
            return self._smooth(level, x, b, self.coarse_sweeps - 1, work)
        x = self._smooth(level, x, b, self.sweeps - 1, work)
        correction = self._cycle(level + 1, _block_sum(self.levels[level].residual(b, x, out=work)))
        _add_prolonged(x, correction)
        return self._smooth(level, x, b, self.sweeps, work)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return self._cycle(0, r)
