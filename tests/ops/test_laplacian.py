"""The matrix-free weighted 5-point Laplacian against matrices written out by hand."""

import numpy as np
import scipy.sparse as sp
import torch

from engine.ops import WeightedLaplacianSystem, laplacian_diagonal, laplacian_matvec


def test_2x2_laplacian_equals_the_matrix_written_out():
    # pixels in row-major order: 0=(0,0) 1=(0,1) 2=(1,0) 3=(1,1)
    wx = torch.tensor([[2., 99.], [3., 99.]])  # last column never used: no right neighbour
    wy = torch.tensor([[5., 7.], [99., 99.]])  # last row never used
    matrix = np.array([
        [2 + 5, -2, -5, 0],
        [-2, 2 + 7, 0, -7],
        [-5, 0, 3 + 5, -3],
        [0, -7, -3, 3 + 7],
    ], dtype=np.float64)
    x = torch.tensor([[1., -2.], [0.5, 4.]])
    expected = matrix @ x.numpy().ravel()
    np.testing.assert_allclose(laplacian_matvec(x, wx, wy).numpy().ravel(), expected, rtol=1e-6)
    np.testing.assert_allclose(laplacian_diagonal(wx, wy).numpy().ravel(), np.diag(matrix))


def _explicit_matrix(d: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> sp.csr_matrix:
    """diag(d) + L_w built link by link: each link between neighbours p, q of weight w adds w to A[p,p] and
    A[q,q] and −w to A[p,q] and A[q,p]."""
    h, w = d.shape
    a = sp.lil_matrix((h * w, h * w))
    for i in range(h):
        for j in range(w):
            a[i * w + j, i * w + j] += d[i, j]
            links = []
            if j + 1 < w:
                links.append((i * w + j + 1, wx[i, j]))
            if i + 1 < h:
                links.append(((i + 1) * w + j, wy[i, j]))
            for q, weight in links:
                p = i * w + j
                a[p, p] += weight
                a[q, q] += weight
                a[p, q] -= weight
                a[q, p] -= weight
    return a.tocsr()


def test_3x4_system_matvec_equals_explicit_sparse_matrix(rng):
    d, wx, wy, x = (rng.random((3, 4)) for _ in range(4))
    matrix = _explicit_matrix(d, wx, wy)
    system = WeightedLaplacianSystem(*(torch.from_numpy(a).float() for a in (d, wx, wy)))
    got = system.matvec(torch.from_numpy(x).float())
    np.testing.assert_allclose(got.numpy().ravel(), matrix @ x.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(system.diagonal.numpy().ravel(), matrix.diagonal(), rtol=1e-6)
    # symmetric, and the out= path gives the same product
    assert abs(matrix - matrix.T).max() == 0
    out = torch.empty(3, 4)
    assert torch.equal(system.matvec(torch.from_numpy(x).float(), out=out), got)


def test_batched_systems_are_independent(rng):
    d, wx, wy, x = (torch.from_numpy(rng.random((2, 5, 6))).float() for _ in range(4))
    system = WeightedLaplacianSystem(d, wx, wy)
    both = system.matvec(x)
    for n in range(2):
        single = WeightedLaplacianSystem(d[n], wx[n], wy[n]).matvec(x[n])
        assert torch.allclose(both[n], single)


def test_inverse_diagonal_leaves_empty_rows_at_zero():
    d = torch.zeros(2, 3)
    system = WeightedLaplacianSystem(d, torch.zeros(2, 3), torch.zeros(2, 3))
    assert torch.equal(system.inverse_diagonal(), torch.zeros(2, 3))
