"""The aggregation multigrid preconditioner: exact Galerkin coarse operators, symmetry, and its effect on PCG."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from engine.ops import AggregationMultigrid, WeightedLaplacianSystem, pcg
from engine.ops.multigrid import _coarsen


def _dense(system: WeightedLaplacianSystem) -> np.ndarray:
    """The operator's matrix, column by column from products with unit vectors (row-major pixel order)."""
    h, w = system.shape[-2:]
    eye = torch.eye(h * w, dtype=torch.float64).view(h * w, h, w)
    big = WeightedLaplacianSystem(system.diagonal.double().expand(h * w, h, w) * 0 + _d(system),
                                  system.wx.double().expand(h * w, h, w), system.wy.double().expand(h * w, h, w))
    return big.matvec(eye).reshape(h * w, h * w).numpy().T


def _d(system: WeightedLaplacianSystem) -> torch.Tensor:
    """Recover d from diag(A) = d + Laplacian diagonal."""
    zero = WeightedLaplacianSystem(torch.zeros_like(system.wx), system.wx, system.wy)
    return (system.diagonal - zero.diagonal).double()


def _random_system(rng, h, w):
    d, wx, wy = (torch.from_numpy(rng.random((h, w))) for _ in range(3))
    return WeightedLaplacianSystem(d, wx, wy)


@pytest.mark.parametrize("shape", [(4, 6), (5, 7)])
def test_coarse_operator_is_the_galerkin_product(rng, shape):
    h, w = shape
    fine = _random_system(rng, h, w)
    coarse = WeightedLaplacianSystem(*_coarsen(_d(fine), fine.wx.double(), fine.wy.double()))
    hc, wc = (h + 1) // 2, (w + 1) // 2
    # P: each fine pixel (i, j) belongs to block (i // 2, j // 2)
    rows = np.arange(h * w)
    cols = np.array([(i // 2) * wc + j // 2 for i in range(h) for j in range(w)])
    p = sp.csr_matrix((np.ones(h * w), (rows, cols)), shape=(h * w, hc * wc)).toarray()
    np.testing.assert_allclose(_dense(coarse), p.T @ _dense(fine) @ p, rtol=1e-12, atol=1e-12)


def test_v_cycle_is_symmetric_positive_definite(rng):
    system = _random_system(rng, 20, 27)
    mg = AggregationMultigrid(_d(system), system.wx.double(), system.wy.double(), coarsest=4)
    assert len(mg.levels) >= 3
    u, v = (torch.from_numpy(rng.standard_normal((20, 27))) for _ in range(2))
    assert float((u * mg(v)).sum()) == pytest.approx(float((v * mg(u)).sum()), rel=1e-10)
    for _ in range(5):
        x = torch.from_numpy(rng.standard_normal((20, 27)))
        assert float((x * mg(x)).sum()) > 0


def test_multigrid_pcg_needs_far_fewer_iterations_and_agrees(rng):
    """An R-step-like system (JieP Eq. 13): tiny diagonal I² under a dark smooth illumination, texture
    weights β/max(|∇R|, ε) that are large (β/ε = 1) on flat reflectance and small across its edges."""
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    illum = 0.02 + 0.2 * xx
    refl = np.full((h, w), 0.8)
    for _ in range(30):
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
        refl[y:y + rng.integers(3, 20), x:x + rng.integers(3, 20)] = rng.uniform(0.1, 0.9)
    gx = np.abs(np.diff(refl, axis=1, append=refl[:, -1:]))
    gy = np.abs(np.diff(refl, axis=0, append=refl[-1:, :]))
    d, wx, wy = (torch.from_numpy(a).float()[None] for a in
                 (illum ** 2, 1e-4 / np.maximum(gx, 1e-4), 1e-4 / np.maximum(gy, 1e-4)))
    system = WeightedLaplacianSystem(d, wx, wy)
    b = (d.sqrt() * torch.from_numpy(refl).float()).contiguous()
    jacobi = pcg(system.matvec, b, inv_diag=system.inverse_diagonal(), tol=1e-5, maxiter=5000)
    mg = pcg(system.matvec, b, precond=AggregationMultigrid(d, wx, wy), tol=1e-5, maxiter=5000)
    assert jacobi.converged == [True] and mg.converged == [True]
    assert mg.iterations[0] * 3 < jacobi.iterations[0], (mg.iterations, jacobi.iterations)
    scale = float(jacobi.x.abs().max())
    assert torch.allclose(mg.x, jacobi.x, rtol=0, atol=1e-3 * scale)
