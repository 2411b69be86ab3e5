"""Laffont & Bazin (ICCV 2015), the default full-resolution local solver: window fits against their definition,
the fill of pixels no frame lights, then the whole method on small synthetic sequences whose reflectance is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.methods import laffont_bazin as lb
from engine.registry import MethodInput, RunContext
from helpers.sequences import run_laffont_bazin as run
from helpers.sequences import scale_invariant_error, textured_reflectance

SPEC = lb.SPEC


# --- building blocks ---------------------------------------------------------------------------------------------

def test_gaussian_blur_keeps_constants_inside(rng):
    x = torch.from_numpy(rng.uniform(size=(2, 17, 23)))
    constant = lb.gaussian_blur(torch.full((19, 21), 0.7, dtype=torch.float64), 1.5).numpy()
    np.testing.assert_allclose(constant[5:-5, 5:-5], 0.7)  # zero outside: the border sees fewer pixels
    assert constant[0, 0] < 0.7
    blurred = lb.gaussian_blur(x, 2.0)
    assert blurred.shape == x.shape
    assert float(blurred[:, 6:-6, 6:-6].std()) < float(x.std())


@pytest.mark.parametrize("affine", [False, True])
def test_window_fit_recovers_the_shading_it_can_represent(rng, affine):
    """Frame = R · s with s constant (both models) or affine (affine model only): exact shading, sin θ ≈ 0."""
    h, w = 20, 24
    reflectance = torch.from_numpy(rng.uniform(0.2, 0.9, (3, h, w)))
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    shading = 0.6 + (0.01 * xx - 0.015 * yy if affine else 0.0)
    fit = lb.WindowFit(reflectance, torch.ones(h, w, dtype=torch.float64), 2.0, affine)
    estimate, sine = fit.fit(reflectance * shading)
    assert estimate.shape == (1, h, w)  # one grey shading for the three channels
    np.testing.assert_allclose(estimate[0].numpy(), (shading * torch.ones(h, w, dtype=torch.float64)).numpy(),
                               rtol=1e-4)  # the slopes carry a 1e-4 ridge
    assert float(sine.max()) < 2e-3
    if not affine:  # a constant window model cannot follow a gradient: the residual says so
        tilted = lb.WindowFit(reflectance, torch.ones(h, w, dtype=torch.float64), 2.0, False)
        _, sine = tilted.fit(reflectance * (0.6 + 0.03 * xx))
        assert float(sine.median()) > 1e-3


def test_smooth_fill_takes_the_neighbours_values():
    values = torch.zeros(3, 16, 16)
    values[0, :, :8], values[1, :, 8:] = 1.0, 1.0  # red left, green right
    weight = torch.ones(16, 16)
    weight[4:12, 6:10] = 0.0  # a hole across the border
    values[:, 4:12, 6:10] = torch.tensor([0.0, 0.0, 50.0])[:, None, None]  # garbage inside the hole
    filled = lb.smooth_fill(values, weight)
    hole = filled[:, 4:12, 6:10]
    assert float(hole[2].max()) < 1e-6  # the garbage is gone
    np.testing.assert_allclose((hole[0] + hole[1]).numpy(), 1.0, atol=1e-5)  # a blend of the two sides
    assert float(hole[0, :, 0].mean()) > float(hole[0, :, -1].mean())  # red towards the left
    np.testing.assert_allclose(filled[:, weight > 0].numpy(), values[:, weight > 0].numpy(), atol=1e-6)


# --- the whole method ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("colour", ["grey", "per_channel"])
def test_exact_recovery_when_the_model_holds(rng, colour):
    """Shading constant over every window in every frame (grey light, or per channel with the per-channel model)
    → R up to scale."""
    reflectance = textured_reflectance(rng)
    frames = [reflectance * np.float32(rng.uniform(0.2, 1.0, 3) if colour == "per_channel" else rng.uniform(0.2, 1.0))
              for _ in range(6)]
    result = run(frames, shading_colour=colour)
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
    result = run(frames)
    error = scale_invariant_error(result.layers["reflectance"], reflectance)
    naive = scale_invariant_error(np.mean(frames, axis=0), reflectance)
    assert error < 0.01
    assert naive > 8 * error


def test_identical_frames_do_not_crash_and_return_the_image():
    image = textured_reflectance(np.random.default_rng(3), 16, 16)
    result = run([image] * 4)
    assert np.isfinite(result.layers["reflectance"]).all() and np.isfinite(result.layers["shading"]).all()
    assert scale_invariant_error(result.layers["reflectance"], image) < 5e-3


def test_registered_as_a_sequence_method_with_per_frame_shading():
    from engine.registry import InputKind, OutputKind, Role

    assert SPEC.input_kind == InputKind.IMAGE_SEQUENCE and not SPEC.is_baseline
    assert SPEC.output("shading").kind == OutputKind.IMAGE_STACK
    assert SPEC.output("confidence").role == Role.CONFIDENCE and SPEC.output("confidence").colour_space == "none"
    assert {"solver", "window_sigma", "shading_model", "brightness_power", "rounds", "window_size", "gamma_pair",
            "gamma_reg", "n_clusters", "max_solve_megapixels"} <= {p.name for p in SPEC.params}


def test_cuda_gives_the_cpu_result(rng, cuda_device):
    reflectance = textured_reflectance(rng, 20, 20)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(5)]
    resolved = SPEC.resolve_params({"input_encoding": "linear"})
    inputs = MethodInput(frames=tuple(frames))
    on_cpu = lb.run(inputs, resolved, RunContext(device=torch.device("cpu"))).layers["reflectance"]
    on_gpu = lb.run(inputs, resolved, RunContext(device=cuda_device)).layers["reflectance"]
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)




def test_pixels_no_frame_lights_get_low_confidence_and_a_smooth_fill(rng):
    """A patch black in every frame (here: plus sensor noise in one channel, which a ratio would amplify into a
    saturated colour) gets confidence 0 and its neighbours' colour, not a blotch."""
    h, w = 24, 24
    reflectance = np.full((h, w, 3), [0.6, 0.5, 0.4], np.float32)
    frames = []
    for _ in range(6):
        frame = reflectance * rng.uniform(0.3, 1.0)
        frame[8:16, 8:16] = 0.0
        frame[8:16, 8:16, 2] = rng.uniform(0.0, 0.001, (8, 8))  # noise below the dark level
        frames.append(frame.astype(np.float32))
    result = run(frames)
    confidence = result.layers["confidence"][..., 0]
    assert result.layers["confidence"].shape == (h, w, 1)
    assert float(confidence[9:15, 9:15].max()) == 0.0 and float(confidence[:4].min()) > 0.5
    patch = result.layers["reflectance"][9:15, 9:15]
    chroma = patch / patch.sum(2, keepdims=True)
    np.testing.assert_allclose(chroma, np.broadcast_to([0.4, 1 / 3, 0.8 / 3], chroma.shape), atol=0.02)
    assert result.info["no_signal_pixels"] == 64


def test_the_papers_global_solver_is_still_available(rng):
    reflectance = textured_reflectance(rng, 16, 16)
    frames = [reflectance * rng.uniform(0.2, 1.0, 3).astype(np.float32) for _ in range(4)]
    result = run(frames, solver="global", n_clusters=4, pairs_per_cluster=50)
    assert result.info["solver"] == "global" and "solves" in result.info
    assert scale_invariant_error(result.layers["reflectance"], reflectance) < 5e-3
