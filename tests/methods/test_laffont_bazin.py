"""Laffont & Bazin (ICCV 2015): the building blocks against their definitions, then the whole method on small
synthetic sequences whose reflectance is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.methods import laffont_bazin as lb
from engine.registry import MethodInput, RunContext

SPEC = lb.SPEC


def run(frames, **params):
    resolved = SPEC.resolve_params({"input_encoding": "linear", **params})
    inputs = MethodInput(frames=tuple(np.asarray(f, np.float32) for f in frames))
    SPEC.check_input(inputs)
    return lb.run(inputs, resolved, RunContext(device=torch.device("cpu")))


def scale_invariant_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Worst channel's relative RMS error after the best per-channel scale (the model is per channel)."""
    errors = []
    for c in range(truth.shape[2]):
        e, t = estimate[..., c].ravel().astype(np.float64), truth[..., c].ravel().astype(np.float64)
        alpha = (e @ t) / (e @ e)
        errors.append(np.sqrt(np.mean((alpha * e - t) ** 2)) / np.sqrt(np.mean(t ** 2)))
    return max(errors)


def textured_reflectance(rng, h=24, w=28):
    return rng.uniform(0.15, 0.9, (h, w, 3)).astype(np.float32)


# --- building blocks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, pixels", [(4, 9), (12, 9)])  # T ≤ N (Gram T×T) and T > N (N×N) branches
def test_smallest_singular_vector_matches_svd_of_stacked_projectors(rng, frames, pixels):
    patches = rng.uniform(0.1, 1.0, (frames, pixels))
    weights = rng.uniform(0.2, 2.0, frames)
    unit, valid = lb.unit_patches(torch.from_numpy(patches)[None], 0.0, 10.0)
    r, minimum = lb.smallest_singular_vector(unit, torch.from_numpy(weights)[None])
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
    unit, valid = lb.unit_patches(patch.expand(6, 25)[None].clone(), 0.01, 0.99)
    r, weights = lb.local_irls(unit, valid, iterations=5, delta=1e-3)
    assert torch.isfinite(r).all() and torch.isfinite(weights).all()
    np.testing.assert_allclose(r[0].numpy(), (patch / patch.norm()).numpy(), atol=1e-6)
    exact, minimum = lb.smallest_singular_vector(unit, weights)
    np.testing.assert_allclose(exact[0].numpy(), r[0].numpy(), atol=1e-6)
    assert float(minimum[0]) == pytest.approx(0.0, abs=1e-6)
    # a black window (all frames dark) carries no information: weight 0, still finite
    unit, valid = lb.unit_patches(torch.zeros(1, 6, 25, dtype=torch.float64), 0.01, 0.99)
    r, weights = lb.local_irls(unit, valid, iterations=3, delta=1e-3)
    assert not valid.any() and torch.isfinite(r).all() and float(weights.abs().sum()) == 0.0


def test_stencil_product_equals_the_dense_sum_of_window_blocks(rng):
    h, w, k = 6, 7, 3
    grid = lb.WindowGrid.build(h, w, k, 2)
    blocks = rng.normal(size=(2, grid.count, k * k, k * k))
    blocks = blocks + blocks.transpose(0, 1, 3, 2)
    positions = lb.window_positions(grid.ys, grid.xs, k, w, "cpu")
    stencil = lb.Stencil(2, h, w, k, "cpu", torch.float64)
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
    unit, valid = lb.unit_patches(patches, 0.0, 10.0)
    r, weights = lb.local_irls(unit, valid, iterations=5, delta=1e-3)
    exact, _ = lb.smallest_singular_vector(unit, weights)
    np.testing.assert_allclose(r.numpy(), exact.numpy(), atol=1e-4)
    assert float(weights[:, :3].mean()) < 0.2 * float(weights[:, 3:].mean())  # the shadowed frames count less


def test_window_grid_covers_every_pixel():
    grid = lb.WindowGrid.build(23, 17, 5, 3)
    assert int(grid.ys[-1]) == 23 - 5 and int(grid.xs[-1]) == 17 - 5
    covered = np.zeros((23, 17), bool)
    for y in grid.ys.tolist():
        for x in grid.xs.tolist():
            covered[y:y + 5, x:x + 5] = True
    assert covered.all()


# --- the whole method ----------------------------------------------------------------------------------------------

def test_exact_recovery_when_the_model_holds(rng):
    """Shading constant over every window in every frame (here: per frame and channel) → R up to scale."""
    reflectance = textured_reflectance(rng)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(6)]
    result = run(frames)
    assert scale_invariant_error(result.layers["reflectance"], reflectance) < 2e-3
    shading = result.layers["shading"]
    assert shading.shape == (6, *reflectance.shape)
    # S = I / R: each frame's shading is flat (one value per channel) up to the same small error
    spread = shading.reshape(6, -1, 3).std(1) / shading.reshape(6, -1, 3).mean(1)
    assert spread.max() < 5e-3


def test_robust_to_a_shadow_moving_across_frames(rng):
    """A hard shadow (×0.25) sweeps across the scene; each pixel is in shadow in at most 2 of 10 frames.

    The windows the shadow edge crosses violate the model in those frames; the √ robust term must down-weight
    exactly those frames. A plain average of the frames, by contrast, keeps the shadow's imprint.
    """
    h, w, t = 24, 30, 10
    reflectance = textured_reflectance(rng, h, w)
    frames = []
    for index in range(t):
        shading = np.full((h, w, 1), rng.uniform(0.5, 1.0), np.float32)
        left = index * 3
        shading[:, left:left + 5] *= 0.25
        frames.append(reflectance * shading)
    result = run(frames, window_size=5, window_step=2)
    error = scale_invariant_error(result.layers["reflectance"], reflectance)
    naive = scale_invariant_error(np.mean(frames, axis=0), reflectance)
    assert error < 0.01
    assert naive > 10 * error


def test_identical_frames_do_not_crash_and_return_the_image():
    image = textured_reflectance(np.random.default_rng(3), 16, 16)
    result = run([image] * 4, n_clusters=4, pairs_per_cluster=50)
    assert np.isfinite(result.layers["reflectance"]).all() and np.isfinite(result.layers["shading"]).all()
    assert scale_invariant_error(result.layers["reflectance"], image) < 5e-3


def test_downsampled_solve_refits_reflectance_at_full_size(rng):
    reflectance = textured_reflectance(rng, 40, 40)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(5)]
    result = run(frames, max_solve_megapixels=0.0004)  # solve at 20×20
    assert result.info["solve_size"] == [20, 20]
    assert result.layers["reflectance"].shape == (40, 40, 3)
    assert scale_invariant_error(result.layers["reflectance"], reflectance) < 5e-3


def test_registered_as_a_sequence_method_with_per_frame_shading():
    from engine.registry import InputKind, OutputKind

    assert SPEC.input_kind == InputKind.IMAGE_SEQUENCE and not SPEC.is_baseline
    assert SPEC.output("shading").kind == OutputKind.IMAGE_STACK
    assert {"window_size", "window_step", "gamma_pair", "gamma_reg", "local_irls_iterations", "n_clusters",
            "pairs_per_cluster", "max_solve_megapixels"} <= {p.name for p in SPEC.params}


def test_cuda_gives_the_cpu_result(rng, cuda_device):
    reflectance = textured_reflectance(rng, 20, 20)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(5)]
    resolved = SPEC.resolve_params({"input_encoding": "linear"})
    inputs = MethodInput(frames=tuple(frames))
    on_cpu = lb.run(inputs, resolved, RunContext(device=torch.device("cpu"))).layers["reflectance"]
    on_gpu = lb.run(inputs, resolved, RunContext(device=cuda_device)).layers["reflectance"]
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)


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
