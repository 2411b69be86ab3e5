"""Laffont & Bazin, the paper's global formulation (solver=global): building blocks against their definitions, the
stencil and its preconditioner, the downsampled solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.methods import laffont_bazin_global as lbg
from engine.ops.window_stencil import Stencil
from helpers.sequences import run_laffont_bazin, scale_invariant_error, textured_reflectance


def run(frames, **params):
    return run_laffont_bazin(frames, **{"solver": "global", **params})


# --- building blocks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, pixels", [(4, 9), (12, 9)])  # T ≤ N (Gram T×T) and T > N (N×N) branches
def test_smallest_singular_vector_matches_svd_of_stacked_projectors(rng, frames, pixels):
    patches = rng.uniform(0.1, 1.0, (frames, pixels))
    weights = rng.uniform(0.2, 2.0, frames)
    unit, valid = lbg.unit_patches(torch.from_numpy(patches)[None], 0.0, 10.0)
    r, minimum = lbg.smallest_singular_vector(unit, torch.from_numpy(weights)[None])
    stacked = np.concatenate([
        np.sqrt(w) * (np.eye(pixels) - np.outer(i, i) / (i @ i)) for w, i in zip(weights, patches)
    ])
    _, singular, vt = np.linalg.svd(stacked)
    expected = vt[-1] * np.sign(vt[-1].sum())
    assert valid.all()
    np.testing.assert_allclose(r[0].numpy(), expected, atol=1e-8)
    np.testing.assert_allclose(float(minimum[0]), singular[-1] ** 2, atol=1e-8)


def test_identical_frames_give_a_finite_window_solution():
    """All frames of the window equal: the weighted sum of projectors has an (N−1)-fold degenerate spectrum."""
    patch = torch.linspace(0.2, 0.8, 25, dtype=torch.float64)
    unit, valid = lbg.unit_patches(patch.expand(6, 25)[None].clone(), 0.01, 0.99)
    r, weights = lbg.local_irls(unit, valid, iterations=5, delta=1e-3)
    assert torch.isfinite(r).all() and torch.isfinite(weights).all()
    np.testing.assert_allclose(r[0].numpy(), (patch / patch.norm()).numpy(), atol=1e-6)
    exact, minimum = lbg.smallest_singular_vector(unit, weights)
    np.testing.assert_allclose(exact[0].numpy(), r[0].numpy(), atol=1e-6)
    assert float(minimum[0]) == pytest.approx(0.0, abs=1e-6)
    # a black window (all frames dark) carries no information: weight 0, still finite
    unit, valid = lbg.unit_patches(torch.zeros(1, 6, 25, dtype=torch.float64), 0.01, 0.99)
    r, weights = lbg.local_irls(unit, valid, iterations=3, delta=1e-3)
    assert not valid.any() and torch.isfinite(r).all() and float(weights.abs().sum()) == 0.0


def test_stencil_product_equals_the_dense_sum_of_window_blocks(rng):
    h, w, k = 6, 7, 3
    grid = lbg.WindowGrid.build(h, w, k, 2)
    blocks = rng.normal(size=(2, grid.count, k * k, k * k))
    blocks = blocks + blocks.transpose(0, 1, 3, 2)
    positions = lbg.window_positions(grid.ys, grid.xs, k, w, "cpu")
    stencil = Stencil(2, h, w, k, "cpu", torch.float64)
    stencil.add_blocks(torch.from_numpy(blocks), positions)
    dense = np.zeros((2, h * w, h * w))
    for i, pos in enumerate(positions.numpy()):
        dense[:, pos[:, None], pos[None, :]] += blocks[:, i]
    x = rng.normal(size=(2, h, w))
    expected = np.einsum("cpq,cq->cp", dense, x.reshape(2, -1)).reshape(2, h, w)
    np.testing.assert_allclose(stencil.apply(torch.from_numpy(x)).numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(stencil.diagonal().numpy(), np.diagonal(dense, axis1=1, axis2=2).reshape(2, h, w))


def test_power_refined_irls_agrees_with_the_eigen_solution(rng):
    patches = torch.from_numpy(rng.uniform(0.2, 1.0, (50, 1, 25)) * rng.uniform(0.5, 1.5, (50, 10, 1)))
    patches[:, :3] *= torch.from_numpy(rng.uniform(0.2, 1.0, (50, 3, 25)))  # three frames with a shadow edge
    unit, valid = lbg.unit_patches(patches, 0.0, 10.0)
    r, weights = lbg.local_irls(unit, valid, iterations=5, delta=1e-3)
    exact, _ = lbg.smallest_singular_vector(unit, weights)
    np.testing.assert_allclose(r.numpy(), exact.numpy(), atol=1e-4)
    assert float(weights[:, :3].mean()) < 0.2 * float(weights[:, 3:].mean())  # the shadowed frames count less


def test_window_grid_covers_every_pixel():
    grid = lbg.WindowGrid.build(23, 17, 5, 3)
    assert int(grid.ys[-1]) == 23 - 5 and int(grid.xs[-1]) == 17 - 5
    covered = np.zeros((23, 17), bool)
    for y in grid.ys.tolist():
        for x in grid.xs.tolist():
            covered[y:y + 5, x:x + 5] = True
    assert covered.all()


# --- the global solve ------------------------------------------------------------------------------------------

def test_downsampled_solve_refits_reflectance_at_full_size(rng):
    reflectance = textured_reflectance(rng, 40, 40)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(5)]
    result = run(frames, max_solve_megapixels=0.0004)  # solve at 20×20
    assert result.info["solve_size"] == [20, 20]
    assert result.layers["reflectance"].shape == (40, 40, 3)
    assert scale_invariant_error(result.layers["reflectance"], reflectance) < 5e-3


def test_coarse_correction_solves_the_same_system_in_fewer_iterations(rng):
    h, w = 24, 30
    reflectance = textured_reflectance(rng, h, w)
    frames = []
    for index in range(8):
        shading = np.full((h, w, 1), rng.uniform(0.5, 1.0), np.float32)
        shading[:, index * 4:index * 4 + 5] *= 0.25
        frames.append(reflectance * shading)
    tight = dict(cg_tolerance=1e-7, global_irls_iterations=0, cg_max_iterations=20000)
    jacobi = run(frames, coarse_unknowns=0, **tight)
    two_level = run(frames, coarse_unknowns=30, **tight)
    np.testing.assert_allclose(two_level.layers["reflectance"], jacobi.layers["reflectance"], atol=1e-4)
    assert two_level.info["solves"][0]["cg_iterations"] < 0.8 * jacobi.info["solves"][0]["cg_iterations"]
