"""Filters and the guided filter: hand-computed values, and the guided filter against a direct per-window sum."""

import numpy as np
import pytest
import torch

from engine.ops import (box_mean_clipped, box_mean_symmetric, box_sum_clipped, forward_diff_x, forward_diff_y,
                        guided_filter, max_filter_replicate, pad_symmetric)

X = torch.tensor([[1., 2., 3., 4.],
                  [5., 6., 7., 8.],
                  [9., 10., 11., 12.]])


def test_forward_differences_have_zero_last_column_and_row():
    assert torch.equal(forward_diff_x(X), torch.tensor([[1., 1., 1., 0.]] * 3))
    assert torch.equal(forward_diff_y(X), torch.tensor([[4., 4., 4., 4.], [4., 4., 4., 4.], [0., 0., 0., 0.]]))


def test_pad_symmetric_repeats_the_edge_like_matlab():
    padded = pad_symmetric(torch.tensor([[1., 2., 3.]]), 1)
    assert torch.equal(padded[1], torch.tensor([1., 1., 2., 3., 3.]))
    wide = pad_symmetric(torch.arange(4.0).view(1, 4).repeat(2, 1), 2)
    assert torch.equal(wide[0], torch.tensor([1., 0., 0., 1., 2., 3., 3., 2.]))


def test_box_mean_symmetric_3x3_by_hand():
    out = box_mean_symmetric(X, 3)
    # corner (0,0): window rows {0,0,1} x cols {0,0,1} -> (1+1+2 + 1+1+2 + 5+5+6) / 9 = 24/9
    assert out[0, 0].item() == pytest.approx(24 / 9)
    # interior (1,1): plain mean of rows 0..2, cols 0..2 = 6
    assert out[1, 1].item() == pytest.approx(6.0)
    # right edge (1,3): cols {2,3,3}: (3+4+4 + 7+8+8 + 11+12+12) / 9 = 69/9
    assert out[1, 3].item() == pytest.approx(69 / 9)


def test_max_filter_replicate_by_hand():
    x = torch.zeros(5, 6)
    x[0, 0] = 1.0
    x[4, 5] = 2.0
    out = max_filter_replicate(x, 5)
    # the 5x5 window of (2,2) reaches (0,0) but not (4,5); (2,3) reaches both
    assert out[2, 2].item() == 1.0
    assert out[2, 3].item() == 2.0
    assert out[0, 3].item() == 0.0  # rows -2..2 (replicated: 0..2) miss row 4
    # replicated, not zero, padding: a negative image stays negative at the border
    assert torch.equal(max_filter_replicate(-torch.ones(4, 4), 5), -torch.ones(4, 4))
    assert torch.equal(max_filter_replicate(X, 3), torch.tensor([[6., 7., 8., 8.], [10., 11., 12., 12.],
                                                                  [10., 11., 12., 12.]]))


def test_box_sum_clipped_counts_only_pixels_inside():
    assert torch.equal(box_sum_clipped(torch.ones(3, 4), 1),
                       torch.tensor([[4., 6., 6., 4.], [6., 9., 9., 6.], [4., 6., 6., 4.]]))
    assert box_mean_clipped(X, 1)[0, 0].item() == pytest.approx((1 + 2 + 5 + 6) / 4)
    # a radius larger than the image: every pixel sees the whole image
    assert torch.allclose(box_mean_clipped(X, 10), torch.full_like(X, 6.5))


def _guided_filter_direct(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s definition written window by window (no box-filter tricks), float64."""
    h, w = guide.shape
    a = np.zeros((h, w))
    b = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            gi = guide[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            pi = src[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            cov = (gi * pi).mean() - gi.mean() * pi.mean()
            a[i, j] = cov / (gi.var() + eps)
            b[i, j] = pi.mean() - a[i, j] * gi.mean()
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            win = (slice(max(i - r, 0), i + r + 1), slice(max(j - r, 0), j + r + 1))
            out[i, j] = a[win].mean() * guide[i, j] + b[win].mean()
    return out


def test_guided_filter_matches_the_windowed_definition(rng):
    guide = rng.random((13, 17))
    src = np.clip(guide + 0.2 * rng.standard_normal((13, 17)), 0, 1)
    expected = _guided_filter_direct(guide, src, 4, 1e-3)
    got = guided_filter(torch.from_numpy(guide).float(), torch.from_numpy(src).float(), 4, 1e-3)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-5)


def test_guided_filter_with_flat_guide_is_a_box_mean():
    src = X / 12
    out = guided_filter(torch.full_like(src, 0.5), src, 1, 1e-4)
    # var(guide) = 0, so a = 0 and q = mean over windows of mean(src): a box mean applied twice
    expected = box_mean_clipped(box_mean_clipped(src, 1), 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_filters_keep_leading_dims_and_reject_even_windows():
    x = torch.rand(2, 3, 7, 9)
    assert max_filter_replicate(x, 5).shape == x.shape
    assert box_mean_symmetric(x, 3).shape == x.shape
    assert torch.allclose(box_mean_symmetric(x, 3)[1, 2], box_mean_symmetric(x[1, 2], 3))
    with pytest.raises(ValueError, match="odd"):
        max_filter_replicate(x, 4)
