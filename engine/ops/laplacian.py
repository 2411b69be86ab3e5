"""Matrix-free weighted 5-point Laplacians and the SPD systems ``(diag(d) + L_w) x = b`` built on them.

With forward differences ``Dx`` (``(Dx x)[i, j] = x[i, j+1] − x[i, j]``, nothing across the right border) and
``Dy`` likewise, the weighted Laplacian is ``L_w = Dxᵀ diag(wx) Dx + Dyᵀ diag(wy) Dy``: row (i, j) has
``−wx[i, j]`` towards (i, j+1), ``−wx[i, j−1]`` towards (i, j−1), ``−wy[i, j]`` towards (i+1, j),
``−wy[i−1, j]`` towards (i−1, j), and the sum of those four weights on the diagonal. ``wx[:, -1]`` and
``wy[-1, :]`` would link across the border; they are ignored (treated as 0).
This is the matrix that smoothness terms ``Σ wx (∇x x)² + wy (∇y x)²`` produce (JieP, WLS, LIME, ...).

Tensors are ``(..., H, W)``; leading dims are independent systems (a batch for :func:`engine.ops.pcg.pcg`).
Nothing here ever forms a matrix: a product costs five fused multiply-adds and no temporaries.
"""

from __future__ import annotations

import torch

__all__ = ["laplacian_diagonal", "laplacian_matvec", "WeightedLaplacianSystem"]


def laplacian_diagonal(wx: torch.Tensor, wy: torch.Tensor) -> torch.Tensor:
    """The diagonal of ``L_w``: for each pixel, the sum of the weights of its (up to four) links."""
    if wx.shape != wy.shape:
        raise ValueError(f"wx and wy must have the same shape, got {tuple(wx.shape)} and {tuple(wy.shape)}")
    diag = torch.zeros_like(wx)
    ex, ey = wx[..., :, :-1], wy[..., :-1, :]
    diag[..., :, :-1] += ex
    diag[..., :, 1:] += ex
    diag[..., :-1, :] += ey
    diag[..., 1:, :] += ey
    return diag


def _add_offdiagonal(out: torch.Tensor, x: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor, sign: float = -1.0
                     ) -> torch.Tensor:
    """``out += sign · (w-weighted sum of the four neighbours of x)``; the off-diagonal of L_w has sign −1."""
    ex, ey = wx[..., :, :-1], wy[..., :-1, :]
    # addcmul_ into views writes straight into ``out``: no product tensor is allocated.
    out[..., :, :-1].addcmul_(ex, x[..., :, 1:], value=sign)
    out[..., :, 1:].addcmul_(ex, x[..., :, :-1], value=sign)
    out[..., :-1, :].addcmul_(ey, x[..., 1:, :], value=sign)
    out[..., 1:, :].addcmul_(ey, x[..., :-1, :], value=sign)
    return out


def laplacian_matvec(x: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor, *, out: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``L_w x`` for ``x``, ``wx``, ``wy`` of the same shape ``(..., H, W)``."""
    out = torch.mul(laplacian_diagonal(wx, wy), x, out=out)
    return _add_offdiagonal(out, x, wx, wy)


class WeightedLaplacianSystem:
    """The SPD operator ``A = diag(d) + L_w`` (SPD when ``d ≥ 0`` is positive somewhere in each connected
    component of the weight graph), with its diagonal precomputed for products and Jacobi preconditioning.

    >>> wx = torch.ones(2, 3); wy = torch.ones(2, 3)
    >>> A = WeightedLaplacianSystem(torch.ones(2, 3), wx, wy)
    >>> A.matvec(torch.ones(2, 3))  # a constant is in the kernel of L_w, so A·1 = d
    tensor([[1., 1., 1.],
            [1., 1., 1.]])
    """

    def __init__(self, d: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor):
        if not (d.shape == wx.shape == wy.shape):
            raise ValueError(f"d, wx, wy must have the same shape, got {tuple(d.shape)}, {tuple(wx.shape)}, "
                             f"{tuple(wy.shape)}")
        self.wx, self.wy = wx, wy
        self.diagonal = laplacian_diagonal(wx, wy).add_(d)

    @property
    def shape(self) -> torch.Size:
        return self.diagonal.shape

    def matvec(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.mul(self.diagonal, x, out=out)
        return _add_offdiagonal(out, x, self.wx, self.wy)

    __call__ = matvec

    def residual(self, b: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``b − A x`` in five fused passes (one fewer than a product and a subtraction)."""
        out = torch.addcmul(b, self.diagonal, x, value=-1.0, out=out)
        return _add_offdiagonal(out, x, self.wx, self.wy, sign=1.0)

    def inverse_diagonal(self) -> torch.Tensor:
        """``1 / diag(A)`` for Jacobi preconditioning (rows with a zero diagonal get 0: they are decoupled and
        empty, so they carry no information either way)."""
        inv = torch.reciprocal(self.diagonal)
        return inv.masked_fill_(self.diagonal == 0, 0.0)
