"""PSNR/SSIM protocols, angular statistics, WHDR and normal errors against hand-computed values."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from engine.metrics import HIGHER, LOWER, all_metrics, get_metric
from engine.metrics.angular import error_statistics, illuminant_error, normal_errors
from engine.metrics.fidelity import Protocol, psnr, ssim
from engine.metrics.whdr import whdr


def test_psnr_rgb_y_and_crop():
    truth = np.zeros((6, 6, 3))
    assert psnr(truth, truth + 0.1) == pytest.approx(20.0)  # MSE 0.01
    # black vs white in studio-swing Y: 16/255 vs 235/255 → 20·log10(255/219)
    assert psnr(truth, np.ones((6, 6, 3)), Protocol("y")) == pytest.approx(20 * np.log10(255 / 219))
    est = truth + 0.1
    est[0, :, :] = 1.0  # a bad border row disappears with crop=1
    assert psnr(truth, est, Protocol(crop=1)) == pytest.approx(20.0)
    assert psnr(truth, est, Protocol(data_range=2.0)) > psnr(truth, est)


def test_ssim_uses_skimage_per_protocol():
    rng = np.random.default_rng(0)
    truth = rng.random((24, 24, 3))
    est = np.clip(truth + 0.05 * rng.standard_normal(truth.shape), 0, 1)
    assert ssim(truth, truth) == pytest.approx(1.0)
    assert ssim(truth, est) == pytest.approx(structural_similarity(truth, est, data_range=1.0, channel_axis=2))
    y = lambda a: (16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255
    assert ssim(truth, est, Protocol("y")) == pytest.approx(structural_similarity(y(truth), y(est), data_range=1.0))


def test_illuminant_error_and_statistics():
    assert illuminant_error([1, 0, 0], [1, 1, 0]) == pytest.approx(45.0)
    assert illuminant_error([0.2, 0.4, 0.1], [2, 4, 1]) == pytest.approx(0.0, abs=1e-6)
    stats = error_statistics([8, 1, 7, 2, 6, 3, 5, 4])
    # quartiles (linear interpolation): 2.75, 4.5, 6.25 → tri-mean 4.5; best 25 % = mean(1, 2); worst = mean(7, 8)
    assert stats == pytest.approx({"mean": 4.5, "median": 4.5, "trimean": 4.5, "best25": 1.5, "worst25": 7.5})


def test_normal_errors_hand_values():
    angles = np.radians([10, 22, 27, 40])
    est = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], axis=-1)[None]
    truth = np.tile([0.0, 0.0, 1.0], (1, 4, 1))
    out = normal_errors(truth, est)
    assert out == pytest.approx({"mean": 24.75, "under20": 25.0, "under25": 50.0, "under30": 75.0})
    masked = normal_errors(truth, est, mask=np.array([[1, 1, 0, 0]]))
    assert masked["mean"] == pytest.approx(16.0)


def test_whdr_hand_value():
    refl = np.array([[0.5, 0.5], [0.2, 0.54]])  # rows = y, cols = x
    points = [{"id": 1, "x": 0.1, "y": 0.1, "opaque": True}, {"id": 2, "x": 0.9, "y": 0.1, "opaque": True},
              {"id": 3, "x": 0.1, "y": 0.9, "opaque": True}, {"id": 4, "x": 0.9, "y": 0.9, "opaque": True},
              {"id": 5, "x": 0.5, "y": 0.5, "opaque": False}]
    comps = [
        {"point1": 1, "point2": 2, "darker": "E", "darker_score": 1.0},  # 0.5 vs 0.5: E, agrees
        {"point1": 1, "point2": 3, "darker": "1", "darker_score": 2.0},  # 3 is darker: algorithm says "2" → error 2
        {"point1": 1, "point2": 4, "darker": "E", "darker_score": 0.5},  # 0.54/0.5 = 1.08 < 1.1 → E, agrees
        {"point1": 3, "point2": 4, "darker": "1", "darker_score": 1.5},  # 0.2 darker: "1", agrees
        {"point1": 1, "point2": 5, "darker": "1", "darker_score": 9.0},  # non-opaque point: skipped
        {"point1": 1, "point2": 2, "darker": "1", "darker_score": 0.0},  # no weight: skipped
    ]
    value = whdr(refl, {"intrinsic_points": points, "intrinsic_comparisons": comps})
    assert value == pytest.approx(2.0 / 5.0)


def test_registry_declares_direction_and_protocol():
    names = {m.name for m in all_metrics()}
    assert {"albedo_lmse", "shading_lmse", "albedo_dssim", "psnr_y", "ssim_rgb", "angular_error", "whdr",
            "normal_mean", "normal_under20"} <= names
    assert get_metric("psnr_rgb").direction == HIGHER and get_metric("albedo_lmse").direction == LOWER
    assert get_metric("normal_under30").better(90.0, 80.0) and get_metric("whdr").better(0.1, 0.2)
    for m in all_metrics():
        assert m.protocol and m.needs
    # compute goes through roles: perfect predictions score the best end of the range
    truth = {"reflectance": np.full((20, 20, 3), 0.5), "shading": np.full((20, 20, 1), 0.3), "mask": np.ones((20, 20))}
    pred = {"reflectance": truth["reflectance"] * 2, "shading": truth["shading"] * 3}
    assert get_metric("grosse_lmse").compute(pred, truth) == pytest.approx(0.0, abs=1e-12)
