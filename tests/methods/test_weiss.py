"""Weiss (2001): the Poisson reintegration is exact, and the temporal median of log derivatives recovers the
reflectance of a synthetic sequence whose illumination edges move."""

from __future__ import annotations

import numpy as np
import torch

from engine.methods import weiss
from engine.registry import MethodInput, RunContext


def run(frames, **params):
    resolved = weiss.SPEC.resolve_params({"input_encoding": "linear", **params})
    inputs = MethodInput(frames=tuple(np.asarray(f, np.float32) for f in frames))
    weiss.SPEC.check_input(inputs)
    return weiss.run(inputs, resolved, RunContext(device=torch.device("cpu")))


def test_poisson_integration_recovers_a_field_from_its_gradients(rng):
    u = rng.normal(size=(13, 17))
    gx, gy = weiss.forward_gradients(torch.from_numpy(u))
    recovered = weiss.poisson_neumann(gx.numpy(), gy.numpy())
    np.testing.assert_allclose(recovered, u - u.mean(), atol=1e-10)


def test_median_of_log_derivatives_recovers_reflectance_under_moving_shadows(rng):
    h, w = 20, 30
    reflectance = np.ones((h, w, 3), np.float32) * 0.4
    for _ in range(8):  # piecewise-constant paint
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        reflectance[y:y + rng.integers(3, 9), x:x + rng.integers(3, 12)] = rng.uniform(0.1, 0.9, 3)
    frames = []
    for index in range(7):  # each pixel is shadowed in at most one frame, so the median ignores shadow edges
        shading = np.full((h, w, 1), rng.uniform(0.4, 1.0), np.float32)
        shading[:, index * 4:index * 4 + 4] *= 0.3
        frames.append(reflectance * shading)
    result = run(frames, log_epsilon=1e-8)
    estimate = result.layers["reflectance"]
    ratio = estimate / reflectance
    assert ratio.std() / ratio.mean() < 1e-4  # exact up to one common scale, colour included
    assert abs(np.percentile(estimate.max(axis=2), 99.5) - 1.0) < 1e-5  # bright end normalised to 1
    np.testing.assert_allclose(result.layers["shading"] * estimate[None], np.stack(frames), rtol=1e-4, atol=1e-6)
    # a plain average keeps the shadows' imprint
    average = np.mean(frames, axis=0) / reflectance
    assert np.ptp(average) / average.mean() > 0.05


def test_registered_as_a_baseline_sequence_method():
    from engine.registry import InputKind, OutputKind

    assert weiss.SPEC.is_baseline and weiss.SPEC.input_kind == InputKind.IMAGE_SEQUENCE
    assert weiss.SPEC.output("shading").kind == OutputKind.IMAGE_STACK


def test_srgb_frames_are_linearised_first(rng):
    from engine.imaging import linear_to_srgb

    reflectance = rng.uniform(0.2, 0.9, (12, 12, 3)).astype(np.float32)
    frames = [reflectance * s for s in (0.3, 0.6, 0.9)]
    linear = run(frames).layers["reflectance"]
    encoded = run([linear_to_srgb(f) for f in frames], input_encoding="srgb").layers["reflectance"]
    np.testing.assert_allclose(encoded, linear, atol=2e-3)
