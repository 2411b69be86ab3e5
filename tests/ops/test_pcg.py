"""Batched PCG against scipy's sparse direct solver, and its stopping rules."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from engine.ops import WeightedLaplacianSystem, pcg


def _sparse(system: WeightedLaplacianSystem) -> sp.csr_matrix:
    """The same operator assembled as a scipy matrix (row-major pixel order), to hand to spsolve."""
    h, w = system.shape[-2:]
    idx = np.arange(h * w).reshape(h, w)
    ex = system.wx[:, :-1].double().numpy().ravel()
    ey = system.wy[:-1, :].double().numpy().ravel()
    rows = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    cols = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    off = sp.coo_matrix((-np.concatenate([ex, ey]), (rows, cols)), shape=(h * w, h * w))
    return (off + off.T + sp.diags(system.diagonal.double().numpy().ravel())).tocsc()


def _jiep_like_system(rng, h=24, w=32):
    """Diagonal ~ R² + λ and weights ~ α/max(|·|, ε) spanning orders of magnitude, as in JieP's I-step."""
    d = torch.from_numpy(rng.uniform(0.05, 1.0, (h, w)) ** 2 + 0.25).float()
    wx = torch.from_numpy(1e-3 / np.maximum(rng.random((h, w)) ** 3, 1e-4)).float()
    wy = torch.from_numpy(1e-3 / np.maximum(rng.random((h, w)) ** 3, 1e-4)).float()
    wx[:, -1] = 0
    wy[-1, :] = 0
    return WeightedLaplacianSystem(d, wx, wy), torch.from_numpy(rng.random((h, w))).float()


@pytest.mark.parametrize("preconditioner", ["jacobi", "none"])
def test_pcg_matches_spsolve(rng, preconditioner):
    system, b = _jiep_like_system(rng)
    exact = spl.spsolve(_sparse(system), b.double().numpy().ravel())
    inv = system.inverse_diagonal()[None] if preconditioner == "jacobi" else None
    result = pcg(system.matvec, b[None], inv_diag=inv, tol=1e-7, maxiter=2000)
    assert result.converged == [True]
    np.testing.assert_allclose(result.x[0].double().numpy().ravel(), exact, rtol=1e-4, atol=1e-5)
    # the history is the true relative residual, decreasing to below tol
    assert result.history[-1][0] <= 1e-7 < result.history[0][0]


def test_jacobi_needs_fewer_iterations_than_plain_cg_here(rng):
    system, b = _jiep_like_system(rng)
    plain = pcg(system.matvec, b[None], tol=1e-6, maxiter=2000)
    jacobi = pcg(system.matvec, b[None], inv_diag=system.inverse_diagonal()[None], tol=1e-6, maxiter=2000)
    assert jacobi.iterations[0] < plain.iterations[0]


def test_loose_tolerance_stops_early_with_the_residual_it_reports(rng):
    system, b = _jiep_like_system(rng)
    result = pcg(system.matvec, b[None], inv_diag=system.inverse_diagonal()[None], tol=1e-2, maxiter=40)
    residual = torch.linalg.vector_norm(b - system.matvec(result.x[0])) / torch.linalg.vector_norm(b)
    assert result.converged == [True] and 0 < result.iterations[0] < 40
    assert residual.item() == pytest.approx(result.relative_residual[0], rel=1e-3)
    assert residual.item() <= 1e-2


def test_batch_members_converge_independently(rng):
    s1, b1 = _jiep_like_system(rng)
    s2, _ = _jiep_like_system(rng)
    d1 = s1.diagonal - WeightedLaplacianSystem(torch.zeros_like(b1), s1.wx, s1.wy).diagonal
    d2 = s2.diagonal - WeightedLaplacianSystem(torch.zeros_like(b1), s2.wx, s2.wy).diagonal
    batch = WeightedLaplacianSystem(torch.stack([d1, d2]), torch.stack([s1.wx, s2.wx]), torch.stack([s1.wy, s2.wy]))
    b = torch.stack([b1, torch.zeros_like(b1)])  # the second system has b = 0: x = 0 after 0 iterations
    result = pcg(batch.matvec, b, inv_diag=batch.inverse_diagonal(), tol=1e-6, maxiter=2000)
    single = pcg(s1.matvec, b1[None], inv_diag=s1.inverse_diagonal()[None], tol=1e-6, maxiter=2000)
    assert result.iterations[1] == 0 and torch.equal(result.x[1], torch.zeros_like(b1))
    assert result.iterations[0] == single.iterations[0]
    assert torch.allclose(result.x[0], single.x[0], atol=1e-5)


def test_warm_start_and_tolerance_reference(rng):
    system, b = _jiep_like_system(rng)
    inv = system.inverse_diagonal()[None]
    close = pcg(system.matvec, b[None], inv_diag=inv, tol=1e-3, maxiter=500).x
    # MATLAB's rule (relative to ‖b‖): a start that already meets tol does nothing
    again = pcg(system.matvec, b[None], x0=close, inv_diag=inv, tol=1e-2, maxiter=40)
    assert again.iterations == [0] and torch.equal(again.x, close)
    # relative to the initial residual: the warm start is improved by another factor of tol
    better = pcg(system.matvec, b[None], x0=close, inv_diag=inv, tol=1e-2, maxiter=500, tol_reference="initial")
    assert better.iterations[0] > 0
    assert better.relative_residual[0] <= 1e-2 * again.relative_residual[0]
    with pytest.raises(ValueError):
        pcg(system.matvec, b[None], inv_diag=inv, precond=lambda r: r)
