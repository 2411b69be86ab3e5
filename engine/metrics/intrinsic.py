"""Scale-invariant, masked error measures for intrinsic images, following the MIT Intrinsic Images benchmark.

Grosse, Johnson, Adelson & Freeman, "Ground truth dataset and baseline evaluations for intrinsic image algorithms",
ICCV 2009. Their evaluation compares *grey* layers (reflectance averaged over R, G, B; shading is grey already),
lets the estimate be rescaled by the least-squares scalar (an intrinsic decomposition is only defined up to scale),
and only counts pixels inside the object mask. LMSE rescales the estimate separately in every 20×20 window placed
on a 10-pixel grid, and normalises the summed window errors by the summed energy of the ground truth in the same
windows, so a perfect estimate scores 0 and the all-zero estimate scores 1.

All functions take 2-D float arrays (H, W) or (H, W, 1)/(H, W, C) arrays that are averaged to grey first
(``to_grey``); the mask is boolean or {0, 1}.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Below this the estimate is treated as zero inside the region and the LS scale as 0 (as the MIT code does), so an
# empty window of the estimate contributes the full ground-truth energy instead of dividing by ~0.
_MIN_ESTIMATE_ENERGY = 1e-5


def to_grey(layer: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, C) → (H, W) float64: the mean over channels (the MIT benchmark's grey)."""
    array = np.asarray(layer, dtype=np.float64)
    if array.ndim == 3:
        return array.mean(axis=2)
    if array.ndim != 2:
        raise ValueError(f"Expected an (H, W) or (H, W, C) layer, got shape {array.shape}")
    return array


def _prepare(truth, estimate, mask):
    truth, estimate = to_grey(truth), to_grey(estimate)
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    mask = mask.astype(bool).astype(np.float64)
    if not (truth.shape == estimate.shape == mask.shape):
        raise ValueError(f"shapes differ: truth {truth.shape}, estimate {estimate.shape}, mask {mask.shape}")
    return truth, np.nan_to_num(estimate, nan=0.0, posinf=0.0, neginf=0.0), mask


def ls_scale(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray) -> float:
    """The scalar a minimising Σ mask·(truth − a·estimate)² (0 when the estimate is empty in the mask)."""
    denominator = float(np.sum(mask * estimate * estimate))
    if denominator <= _MIN_ESTIMATE_ENERGY:
        return 0.0
    return float(np.sum(mask * truth * estimate)) / denominator


def si_mse(truth, estimate, mask) -> float:
    """Scale-invariant MSE: the mean over mask pixels of (truth − a·estimate)², a the least-squares scale."""
    truth, estimate, mask = _prepare(truth, estimate, mask)
    count = mask.sum()
    if count == 0:
        raise ValueError("the mask is empty")
    alpha = ls_scale(truth, estimate, mask)
    return float(np.sum(mask * (truth - alpha * estimate) ** 2) / count)


def lmse(truth, estimate, mask, window: int = 20, step: int = 10) -> float:
    """Local scale-invariant MSE of Grosse et al. 2009 (windows ``window``×``window`` every ``step`` pixels).

    Σ_windows min_a Σ mask·(truth − a·estimate)²  /  Σ_windows Σ mask·truth².
    Windows start at 0, step, 2·step, … and must fit entirely inside the image (no padding), as in the MIT code.
    """
    truth, estimate, mask = _prepare(truth, estimate, mask)
    if min(truth.shape) < window:
        raise ValueError(f"the layer is {truth.shape[1]}×{truth.shape[0]}; LMSE needs at least {window}×{window}")
    # Per-window sums via strided views: every statistic the LS fit needs is a sum over the window.
    def window_sums(a: np.ndarray) -> np.ndarray:
        return sliding_window_view(a, (window, window))[::step, ::step].sum(axis=(2, 3))

    tt = window_sums(mask * truth * truth)
    te = window_sums(mask * truth * estimate)
    ee = window_sums(mask * estimate * estimate)
    alpha = np.where(ee > _MIN_ESTIMATE_ENERGY, te / np.where(ee > _MIN_ESTIMATE_ENERGY, ee, 1.0), 0.0)
    # Σ m (t − a e)² expanded, so no per-window array copies are needed.
    residual = tt - 2 * alpha * te + alpha * alpha * ee
    total = tt.sum()
    if total <= 0:
        raise ValueError("the ground truth has no energy inside the mask")
    return float(max(residual.sum(), 0.0) / total)


def dssim(truth, estimate, mask, data_range: float = 1.0) -> float:
    """Structural dissimilarity (1 − SSIM) / 2 between truth and the LS-rescaled estimate, averaged over the mask.

    SSIM is scikit-image's (7×7 uniform window, K1 = 0.01, K2 = 0.03) on grey layers with the stated
    ``data_range``; its per-pixel map is averaged over mask pixels only.
    """
    from skimage.metrics import structural_similarity

    truth, estimate, mask = _prepare(truth, estimate, mask)
    if mask.sum() == 0:
        raise ValueError("the mask is empty")
    alpha = ls_scale(truth, estimate, mask)
    _, ssim_map = structural_similarity(truth, alpha * estimate, data_range=data_range, full=True)
    # scikit-image's own mean leaves out the 3-px border its 7×7 window cannot cover; do the same, so a full mask
    # gives exactly scikit-image's SSIM.
    pad = (7 - 1) // 2
    inner_map, inner_mask = ssim_map[pad:-pad, pad:-pad], mask[pad:-pad, pad:-pad]
    if inner_mask.sum() == 0:
        raise ValueError("the mask has no pixels at least 3 px from the image border")
    ssim_value = float(np.sum(inner_map * inner_mask) / inner_mask.sum())
    return (1.0 - ssim_value) / 2.0
