"""Full-reference fidelity for enhancement and deraining: PSNR and SSIM under an explicit protocol.

Published PSNR/SSIM numbers differ by protocol more than by method (RetinexNet's LOL SSIM is 0.42 or 0.56 depending
on how it is computed), so every number carries its :class:`Protocol`: which channels (``rgb`` or ``y``), the data
range of the values, and how many border pixels are cropped.

``y`` is the BT.601 luma of MATLAB's ``rgb2ycbcr`` (studio swing, 16–235 for 8-bit) scaled back to [0, 1] — the
convention of the deraining and super-resolution literature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Protocol:
    channels: str = "rgb"  # "rgb" or "y"
    data_range: float = 1.0
    crop: int = 0  # pixels removed from every border before measuring

    def __post_init__(self):
        if self.channels not in ("rgb", "y"):
            raise ValueError(f"channels must be 'rgb' or 'y', got {self.channels!r}")
        if self.data_range <= 0 or self.crop < 0:
            raise ValueError("data_range must be positive and crop non-negative")

    def describe(self) -> str:
        crop = f", crop {self.crop} px" if self.crop else ""
        return f"{self.channels.upper()}, data range {self.data_range:g}{crop}"


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) in [0, 1] → (H, W) BT.601 studio-swing luma in [16/255, 235/255]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _apply(image: np.ndarray, protocol: Protocol) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[:, :, None]
    if protocol.channels == "y":
        if array.shape[2] != 3:
            raise ValueError(f"the Y protocol needs an (H, W, 3) image, got shape {array.shape}")
        array = rgb_to_y(array)[:, :, None]
    if protocol.crop:
        c = protocol.crop
        array = array[c:-c, c:-c]
    return array


def _pair(truth, estimate, protocol: Protocol):
    truth, estimate = _apply(truth, protocol), _apply(estimate, protocol)
    if truth.shape != estimate.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, estimate {estimate.shape}")
    return truth, estimate


def psnr(truth, estimate, protocol: Protocol = Protocol()) -> float:
    """scikit-image PSNR, 10·log10(range² / MSE) in dB over all channels of the protocol; +inf for identical images."""
    from skimage.metrics import peak_signal_noise_ratio

    truth, estimate = _pair(truth, estimate, protocol)
    with np.errstate(divide="ignore"):  # identical images: MSE 0, PSNR +inf
        return float(peak_signal_noise_ratio(truth, estimate, data_range=protocol.data_range))


def ssim(truth, estimate, protocol: Protocol = Protocol()) -> float:
    """scikit-image SSIM (7×7 uniform window, K1 0.01, K2 0.03); colour images average the per-channel SSIM."""
    from skimage.metrics import structural_similarity

    truth, estimate = _pair(truth, estimate, protocol)
    if truth.shape[2] == 1:
        return float(structural_similarity(truth[..., 0], estimate[..., 0], data_range=protocol.data_range))
    return float(structural_similarity(truth, estimate, data_range=protocol.data_range, channel_axis=2))
