"""Sparse symmetric operators on an H×W grid built from dense k×k window blocks (Laffont & Bazin's local term),
stored as one coefficient image per offset and applied matrix-free, and a two-level preconditioner for them.

Used by :mod:`engine.methods.laffont_bazin_global`; torch, any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Stencil", "TwoLevelPreconditioner"]


class Stencil:
    """A sparse symmetric matrix over an H×W grid whose entries join pixels at most k−1 apart.

    Stored as one coefficient image per offset: ``coef[:, o, y, x]`` = L[(y, x), (y, x) + offset_o].
    """

    def __init__(self, channels: int, height: int, width: int, k: int, device, dtype):
        self.k, self.h, self.w = k, height, width
        self.span = 2 * k - 1
        self.coef = torch.zeros(channels, self.span * self.span, height, width, device=device, dtype=dtype)
        local = torch.arange(k, device=device)
        ay, ax = torch.meshgrid(local, local, indexing="ij")
        ay, ax = ay.reshape(-1), ax.reshape(-1)
        # offset index of entry (a, b) of a window block: b − a in the (2k−1)² offset grid
        self.block_offset = (ay[None, :] - ay[:, None] + k - 1) * self.span + (ax[None, :] - ax[:, None] + k - 1)

    def add_blocks(self, blocks: torch.Tensor, positions: torch.Tensor) -> None:
        """Add dense window blocks (C, n, N, N) at flat pixel positions (n, N)."""
        c = blocks.shape[0]
        hw = self.h * self.w
        flat = self.block_offset[None] * hw + positions[:, :, None]
        # 1-D index_add_ is an order of magnitude faster on the CPU than indexing along dimension 1.
        channel = torch.arange(c, device=flat.device)[:, None] * (self.span * self.span * hw)
        index = (channel + flat.reshape(1, -1)).reshape(-1)
        self.coef.view(-1).index_add_(0, index, blocks.reshape(-1).to(self.coef.dtype))

    def diagonal(self) -> torch.Tensor:
        centre = (self.k - 1) * self.span + (self.k - 1)
        return self.coef[:, centre]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """L x for x of shape (C, H, W)."""
        pad = self.k - 1
        padded = F.pad(x, (pad, pad, pad, pad))
        out = torch.zeros_like(x)
        for o in range(self.span * self.span):
            dy, dx = divmod(o, self.span)
            out.addcmul_(self.coef[:, o], padded[:, dy:dy + self.h, dx:dx + self.w])
        return out


class TwoLevelPreconditioner:
    """Jacobi plus a coarse correction: M⁻¹r = r / diag(A) + P (PᵀAP)⁻¹ Pᵀ r (additive two-level Schwarz).

    The slow modes of this system are smooth changes of scale of the reflectance pattern between regions that
    the windows link only weakly (dark gaps, shadow edges), which Jacobi-CG resolves one by one. The coarse space
    holds exactly those modes: one column per b×b block, the block's slice of ``pattern`` (the mean frame, which
    within a block is the reflectance times a near-constant shading) and zero elsewhere.
    """

    def __init__(self, diagonal: torch.Tensor, pattern: torch.Tensor, block: int, stencil: Stencil, pairs,
                 local_scale: float, pair_scale: float, gamma: float):
        c, h, w = pattern.shape
        device = pattern.device
        self.inverse_diagonal = 1.0 / diagonal
        rows, cols = -(-h // block), -(-w // block)
        self.blocks = rows * cols
        ids = (torch.arange(h, device=device)[:, None] // block) * cols + torch.arange(w, device=device)[None] // block
        self.ids = ids.reshape(-1)
        self.pattern = pattern.reshape(c, -1)
        nb = self.blocks
        coarse = torch.zeros(c, nb * nb, device=device, dtype=pattern.dtype)
        x = pattern
        # stencil entries L[p, p+o] x_p x_{p+o} summed into (block(p), block(p+o))
        pad = stencil.k - 1
        xp = F.pad(x, (pad, pad, pad, pad))
        idp = F.pad(ids[None].to(torch.float64), (pad, pad, pad, pad))[0].long()
        for o in range(stencil.span * stencil.span):
            dy, dx = divmod(o, stencil.span)
            values = local_scale * stencil.coef[:, o] * x * xp[:, dy:dy + h, dx:dx + w]
            index = (ids * nb + idp[dy:dy + h, dx:dx + w]).reshape(-1)
            coarse.index_add_(1, index, values.reshape(c, -1))
        # pairs, with the same unavoidable-energy shift as Pairs.apply
        flat = x.reshape(-1)
        xpp, xqq = flat.index_select(0, pairs.p), flat.index_select(0, pairs.q)
        channel = torch.arange(c, device=device).repeat_interleave(pairs.p.numel() // max(c, 1))
        bp, bq = self.ids[pairs.p % (h * w)], self.ids[pairs.q % (h * w)]
        wgt = pair_scale * pairs.weights
        entries = [(bp, bp, wgt * (pairs.a - pairs.minimum) * xpp * xpp),
                   (bq, bq, wgt * (pairs.b - pairs.minimum) * xqq * xqq),
                   (bp, bq, -wgt * pairs.c * xpp * xqq), (bq, bp, -wgt * pairs.c * xpp * xqq)]
        flat_coarse = coarse.view(-1)
        for i, j, v in entries:
            flat_coarse.index_add_(0, channel * nb * nb + i * nb + j, v)
        diag_index = (self.ids * nb + self.ids).reshape(-1)
        coarse.index_add_(1, diag_index, (gamma * x * x).reshape(c, -1))
        coarse = coarse.view(c, nb, nb).double()
        # blocks whose pattern is all zero (black) would make the coarse matrix singular; pin them
        empty = coarse.diagonal(dim1=1, dim2=2) <= 1e-12 * coarse.diagonal(dim1=1, dim2=2).amax(1, keepdim=True)
        coarse.diagonal(dim1=1, dim2=2).add_(empty.double())
        self.factor = torch.linalg.cholesky(coarse)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        c = r.shape[0]
        restricted = torch.zeros(c, self.blocks, device=r.device, dtype=torch.float64)
        restricted.index_add_(1, self.ids, (self.pattern * r.reshape(c, -1)).double())
        correction = torch.cholesky_solve(restricted[..., None], self.factor)[..., 0].to(r.dtype)
        return r * self.inverse_diagonal + (self.pattern * correction[:, self.ids]).reshape(r.shape)
