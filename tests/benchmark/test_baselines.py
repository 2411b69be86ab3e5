"""Baselines against hand-computed values and exactly solvable scenes."""

import numpy as np
import pytest

from engine.imaging import linear_to_srgb
from engine.methods.baselines_illuminant import estimate_illuminant
from engine.methods.baselines_intrinsic import color_retinex, poisson_integrate
from engine.metrics.angular import illuminant_error
from engine.metrics.intrinsic import lmse
from engine.registry import MethodInput, get_method, run_method


def unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


PIXELS = np.array([[[0.2, 0.4, 0.6], [0.4, 0.4, 0.2]], [[0.6, 0.2, 0.2], [0.2, 0.2, 0.2]]])


def test_grey_world_white_patch_shades_of_grey_by_hand():
    kw = dict(order=0, sigma=0.0, saturation=0.98)
    assert estimate_illuminant(PIXELS, None, p=1.0, **kw) == pytest.approx(unit([0.35, 0.3, 0.3]))
    assert estimate_illuminant(PIXELS, None, p=np.inf, **kw) == pytest.approx(unit([0.6, 0.4, 0.6]))
    expected = [np.mean(PIXELS[..., c] ** 6) ** (1 / 6) for c in range(3)]
    assert estimate_illuminant(PIXELS, None, p=6.0, **kw) == pytest.approx(unit(expected))
    clipped = PIXELS.copy()
    clipped[1, 1] = [1.0, 0.1, 0.1]  # a saturated pixel carries no colour information and is left out
    assert estimate_illuminant(clipped, None, p=1.0, **kw) == pytest.approx(unit([0.4, 1 / 3, 1 / 3]))
    mask = np.array([[1, 0], [0, 0]])
    assert estimate_illuminant(PIXELS, mask, p=1.0, **kw) == pytest.approx(unit([0.2, 0.4, 0.6]))


def test_grey_edge_recovers_the_light_of_a_grey_textured_scene():
    rng = np.random.default_rng(0)
    light = np.array([0.9, 0.6, 0.3])
    texture = 0.2 + 0.5 * rng.random((40, 40))  # a grey world of edges under a coloured light
    image = texture[..., None] * light
    estimate = estimate_illuminant(image, None, order=1, p=1.0, sigma=2.0, saturation=0.98)
    assert illuminant_error(light, estimate) == pytest.approx(0.0, abs=1e-6)
    result, _, _ = run_method("baseline_grey_edge", MethodInput((image.astype(np.float32),)), {"sigma": 2.0},
                              device="cpu")
    assert result.values["illuminant"] == pytest.approx(unit(light), abs=1e-5)
    balanced = result.layers["white_balanced"]
    assert np.ptp(balanced[5, 5] / balanced[5, 5].max()) == pytest.approx(0.0, abs=1e-5)  # grey again


def test_poisson_integrate_recovers_a_field_up_to_a_constant():
    rng = np.random.default_rng(1)
    field = rng.standard_normal((12, 15))
    gy = np.zeros_like(field)
    gx = np.zeros_like(field)
    gy[1:] = field[1:] - field[:-1]
    gx[:, 1:] = field[:, 1:] - field[:, :-1]
    mask = np.ones(field.shape, bool)
    mask[:3, :3] = False
    out = poisson_integrate(gy, gx, mask)
    offset = (field - out)[mask].mean()
    assert out[mask] + offset == pytest.approx(field[mask], abs=1e-6)
    assert np.all(out[~mask] == 0)


def test_color_retinex_separates_a_chromatic_albedo_edge_from_smooth_shading():
    y, x = np.mgrid[0:30, 0:40].astype(float)
    reflectance = np.where(x[..., None] < 20, [0.8, 0.3, 0.2], [0.2, 0.4, 0.7])
    shading = 0.3 + 0.6 * x / 39.0 + 0.1 * y / 29.0
    image = reflectance * shading[..., None]
    mask = np.ones((30, 40), bool)
    est_shading, est_reflectance = color_retinex(image, mask, threshold_gray=1.0, threshold_color=0.075)
    assert lmse(shading, est_shading, mask) < 1e-3
    assert lmse(reflectance.mean(axis=2), est_reflectance, mask) < 1e-3
    # through the registry: sRGB in, linear layers out, scaled to a maximum of 1
    result, _, _ = run_method("baseline_color_retinex", MethodInput((linear_to_srgb(image / image.max()),)),
                              device="cpu")
    assert result.layers["shading"].max() == pytest.approx(1.0)
    assert lmse(shading, result.layers["shading"], mask) < 1e-3


def test_image_as_albedo_and_identity():
    image = np.random.default_rng(2).random((6, 5, 3)).astype(np.float32)
    result, _, _ = run_method("baseline_image_albedo", MethodInput((image,)), device="cpu")
    assert np.array_equal(result.layers["reflectance"], image) and np.all(result.layers["shading"] == 1)
    result, _, _ = run_method("baseline_identity_enhance", MethodInput((image,)), device="cpu")
    assert np.array_equal(result.layers["enhanced"], image)
    assert all(get_method(n).is_baseline for n in ("baseline_image_albedo", "baseline_color_retinex",
                                                   "baseline_grey_world", "baseline_identity_derain"))
