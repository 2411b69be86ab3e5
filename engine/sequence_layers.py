"""The layers of a decomposed image sequence (I_t = R · S_t per colour channel), shared by the sequence methods.

* :func:`linear_stack`: the frames as one linear (T, H, W, 3) array.
* :func:`shading_from_reflectance`: S_t = I_t / R.
* :func:`normalise_reflectance`: a reflectance known only up to scale, with its bright end at 1.
"""

from __future__ import annotations

import numpy as np

from .imaging import srgb_to_linear
from .registry import MethodInput


def linear_stack(inputs: MethodInput, encoding: str) -> np.ndarray:
    """The frames as one (T, H, W, 3) float32 array of linear values."""
    stack = np.stack(inputs.frames).astype(np.float32)
    return srgb_to_linear(stack) if encoding == "srgb" else stack


def shading_from_reflectance(frames_linear: np.ndarray, reflectance: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """Per-frame shading S_t = I_t / R under the model I = R·S (per channel). (T, H, W, 3), (H, W, 3) → (T, H, W, 3)."""
    return (frames_linear / np.maximum(reflectance, floor)[None]).astype(np.float32)


def normalise_reflectance(reflectance: np.ndarray, mask: np.ndarray | None = None, percentile: float = 99.5
                          ) -> tuple[np.ndarray, float]:
    """Scale a reflectance known only up to scale so that its bright end sits at 1. Returns (scaled, scale)."""
    brightest = reflectance.max(axis=2)
    values = brightest[mask[..., 0] > 0.5] if mask is not None and (mask > 0.5).any() else brightest.ravel()
    values = values[np.isfinite(values)]
    scale = float(np.percentile(values, percentile)) if values.size else 1.0
    scale = scale if scale > 1e-12 else 1.0
    return (reflectance / scale).astype(np.float32), scale
