"""MIT-benchmark metrics against values worked out by hand."""

import numpy as np
import pytest
from helpers.scripts import load_script
from skimage.metrics import structural_similarity

from engine.metrics import intrinsic


def loop_lmse(truth, estimate, mask, window=20, step=10):
    """A literal transcription of the benchmark's definition (loops, per-window LS scale) for cross-checking."""
    ssq = total = 0.0
    for i in range(0, truth.shape[0] - window + 1, step):
        for j in range(0, truth.shape[1] - window + 1, step):
            t, e, m = (a[i:i + window, j:j + window] for a in (truth, estimate, mask))
            denom = np.sum(m * e * e)
            alpha = np.sum(m * t * e) / denom if denom > 1e-5 else 0.0
            ssq += np.sum(m * (t - alpha * e) ** 2)
            total += np.sum(m * t * t)
    return ssq / total


def test_si_mse_hand_value_and_mask():
    truth = np.array([[1.0, 0.0, 9.0]])
    estimate = np.array([[1.0, 1.0, -5.0]])
    mask = np.array([[1, 1, 0]])
    # alpha = (1·1 + 0·1) / (1 + 1) = 0.5; residuals 0.5, -0.5 → mean of squares 0.25; the masked pixel is ignored
    assert intrinsic.si_mse(truth, estimate, mask) == pytest.approx(0.25)


def test_si_mse_is_scale_invariant_and_uses_grey():
    rng = np.random.default_rng(1)
    truth = rng.random((8, 8, 3))
    mask = np.ones((8, 8))
    assert intrinsic.si_mse(truth, 7.0 * truth, mask) == pytest.approx(0.0, abs=1e-12)
    # colour layers are compared as the mean over channels, so a channel permutation changes nothing
    assert intrinsic.si_mse(truth, truth[..., ::-1], mask) == pytest.approx(0.0, abs=1e-12)


def test_lmse_single_window_hand_value():
    truth = np.ones((20, 20))
    estimate = np.ones((20, 20))
    estimate[:, 10:] = 2.0
    # alpha = (200 + 400) / (200 + 800) = 0.6; residual 200·0.4² + 200·0.2² = 40; energy 400
    assert intrinsic.lmse(truth, estimate, np.ones((20, 20))) == pytest.approx(0.1)


def test_lmse_limits_and_loop_agreement():
    rng = np.random.default_rng(2)
    truth = rng.random((45, 37)) + 0.1
    estimate = truth * (1 + 0.3 * rng.standard_normal((45, 37)))
    mask = rng.random((45, 37)) > 0.2
    assert intrinsic.lmse(truth, 3.0 * truth, mask) == pytest.approx(0.0, abs=1e-12)
    assert intrinsic.lmse(truth, np.zeros_like(truth), mask) == pytest.approx(1.0)
    assert intrinsic.lmse(truth, estimate, mask) == pytest.approx(loop_lmse(truth, estimate, mask.astype(float)))


def test_lmse_rescales_each_window_independently():
    truth = np.ones((20, 40))
    estimate = np.ones((20, 40))
    estimate[:, 20:] = 5.0  # a different constant scale per 20-px half: windows entirely in one half are perfect
    value = intrinsic.lmse(truth, estimate, np.ones((20, 40)))
    # windows at columns 0, 10, 20: only the one at 10 straddles the edge: alpha = (200+1000)/(200+5000)
    alpha = 1200 / 5200
    expected = (200 * (1 - alpha) ** 2 + 200 * (1 - 5 * alpha) ** 2) / 1200
    assert value == pytest.approx(expected)


def test_dssim_scale_invariant_and_matches_skimage():
    rng = np.random.default_rng(3)
    truth = rng.random((32, 32))
    noisy = np.clip(truth + 0.1 * rng.standard_normal((32, 32)), 0, None)
    mask = np.ones((32, 32))
    assert intrinsic.dssim(truth, 4.0 * truth, mask) == pytest.approx(0.0, abs=1e-9)
    alpha = np.sum(truth * noisy) / np.sum(noisy * noisy)
    expected = (1 - structural_similarity(truth, alpha * noisy, data_range=1.0)) / 2
    assert intrinsic.dssim(truth, noisy, mask) == pytest.approx(expected, rel=1e-6)


def test_texture_leak_measures_the_share_of_albedo_texture_in_the_shading():
    """scripts/intrinsic_leak.py: a predicted shading = true shading × albedo^k leaks k of the albedo's texture,
    whatever smooth scale error it also has; the true shading leaks nothing; sky pixels are ignored."""
    leak = load_script("intrinsic_leak")
    rng = np.random.default_rng(0)
    h, w = 64, 80
    albedo = np.clip(0.4 + 0.25 * rng.standard_normal((h, w, 1)), 0.05, 1.0) * np.ones((1, 1, 3))  # grey texture
    yy, xx = np.mgrid[0:h, 0:w]
    shading = (0.3 + 0.7 * (xx / w))[..., None] * np.ones((1, 1, 3))  # smooth light from the right
    valid = np.ones((h, w), bool)
    valid[:8] = False  # "sky"
    smooth_error = np.exp(0.3 * np.sin(yy / 20.0))[..., None]
    for k in (0.0, 0.3, 1.0):
        predicted = shading * smooth_error * albedo ** k
        num, den = leak.leak_terms(albedo, shading, predicted, valid, sigma=3.0)
        assert abs(num / den - k) < 0.01, (k, num / den)
    # the sky does not count: garbage there changes nothing
    predicted = shading * albedo ** 0.5
    noisy = predicted.copy()
    noisy[:8] = rng.uniform(0.01, 1.0, (8, w, 3))
    a = leak.leak_terms(albedo, shading, predicted, valid, 3.0)
    b = leak.leak_terms(albedo, shading, noisy, valid, 3.0)
    assert abs(a[0] / a[1] - b[0] / b[1]) < 1e-9
