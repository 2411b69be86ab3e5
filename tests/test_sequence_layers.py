"""The layers every sequence method shares: linear frames, S = I / R, reflectance normalised to its bright end."""

from __future__ import annotations

import numpy as np
import pytest

from engine import sequence_layers
from engine.imaging import srgb_to_linear
from engine.registry import MethodInput


def test_shading_and_normalisation_helpers():
    reflectance = np.array([[[0.2, 0.4, 0.8]]], np.float32)
    scaled, scale = sequence_layers.normalise_reflectance(reflectance, percentile=100)
    assert scale == pytest.approx(0.8) and scaled.max() == pytest.approx(1.0)
    frames = np.stack([reflectance * 0.5, reflectance * 2.0])
    np.testing.assert_allclose(sequence_layers.shading_from_reflectance(frames, reflectance)[:, 0, 0],
                               [[0.5] * 3, [2.0] * 3], rtol=1e-6)


def test_linear_stack_decodes_srgb_only_when_asked():
    frames = (np.full((2, 3, 3), 0.5, np.float32), np.full((2, 3, 3), 0.25, np.float32))
    inputs = MethodInput(frames=frames)
    np.testing.assert_array_equal(sequence_layers.linear_stack(inputs, "linear"), np.stack(frames))
    np.testing.assert_allclose(sequence_layers.linear_stack(inputs, "srgb"), srgb_to_linear(np.stack(frames)))
