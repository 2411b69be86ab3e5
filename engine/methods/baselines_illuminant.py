"""Classic statistical illuminant estimators, the yardsticks of every colour-constancy table.

All four are instances of the Minkowski framework of van de Weijer, Gevers & Gijsenij (TIP 2007):
``e_c ∝ (∫ |∂ⁿ f_c,σ|^p)^(1/p)`` over the valid pixels of linear raw channel c.

* **Grey world** (Buchsbaum 1980): n = 0, p = 1 — the mean of each channel.
* **White patch** (Land 1977, max-RGB): n = 0, p = ∞ — the maximum of each channel.
* **Shades of grey** (Finlayson & Trezzi 2004): n = 0, p = 6.
* **Grey edge** (van de Weijer et al. 2007): n = 1, gradient magnitude of the image smoothed with a Gaussian of
  σ (default σ = 6, p = 1, the first-order setting usually tabulated beside learned methods).

One more, outside the Minkowski family:

* **Bright pixels** (Joze, Drew, Finlayson & Rey 2012, "The role of bright pixels in illumination estimation"):
  the mean RGB of the top ``percent`` % (default 2; the paper tabulates 1–5 %) of the valid pixels ranked by
  brightness R + G + B — a white patch made robust by averaging. Clipped pixels are excluded first, as above.

Pixels with any channel at or above ``saturation`` (clipped sensor values carry no colour information) and pixels
outside a given mask are left out; for grey edge the exclusion is widened by the Gaussian's reach, so no
derivative touches a clipped pixel. The estimate is returned as a unit-norm RGB vector; ``white_balanced`` is the
von Kries-corrected image (each channel divided by the estimate, normalised so the strongest channel is unchanged).
Input and output are linear raw RGB (InputKind.RAW_IMAGE).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from ..errors import InputKindError
from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)


# --- building blocks --------------------------------------------------------------------------------------

def valid_pixels(image: np.ndarray, mask: np.ndarray | None, saturation: float, grow: int = 0) -> np.ndarray:
    valid = np.all(image < saturation, axis=2) & np.all(image > 0, axis=2)
    if mask is not None:
        valid &= (mask[..., 0] if mask.ndim == 3 else mask) > 0.5
    if grow > 0:
        valid = ~ndimage.binary_dilation(~valid, iterations=grow)
    return valid


def minkowski_estimate(values: np.ndarray, p: float) -> np.ndarray:
    """(N, 3) non-negative values → per-channel Minkowski p-norm mean (p = inf: the maximum)."""
    if values.shape[0] == 0:
        raise InputKindError("no usable pixels: every pixel is saturated, black or outside the mask")
    if np.isinf(p):
        return values.max(axis=0)
    return np.mean(values ** p, axis=0) ** (1.0 / p)


def gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """Per-channel |∇(G_σ * f)| with Gaussian-derivative filters."""
    out = np.empty_like(image, dtype=np.float64)
    for c in range(image.shape[2]):
        channel = image[..., c].astype(np.float64)
        gx = ndimage.gaussian_filter(channel, sigma, order=(0, 1), mode="nearest")
        gy = ndimage.gaussian_filter(channel, sigma, order=(1, 0), mode="nearest")
        out[..., c] = np.hypot(gx, gy)
    return out


def estimate_illuminant(image: np.ndarray, mask: np.ndarray | None, *, order: int, p: float, sigma: float,
                        saturation: float) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if order == 0:
        valid = valid_pixels(image, mask, saturation)
        values = image[valid]
    else:
        valid = valid_pixels(image, mask, saturation, grow=int(np.ceil(2 * sigma)))
        values = gradient_magnitude(image, sigma)[valid]
    estimate = minkowski_estimate(values, p)
    norm = np.linalg.norm(estimate)
    if not np.isfinite(norm) or norm == 0:
        raise InputKindError("the image has no colour signal to estimate an illuminant from")
    return estimate / norm


def bright_pixels_estimate(image: np.ndarray, mask: np.ndarray | None, *, percent: float, saturation: float
                           ) -> np.ndarray:
    """Mean RGB of the brightest ``percent`` % of the valid pixels (by R + G + B), unit norm."""
    image = np.asarray(image, dtype=np.float64)
    values = image[valid_pixels(image, mask, saturation)]
    if values.shape[0] == 0:
        raise InputKindError("no usable pixels: every pixel is saturated, black or outside the mask")
    brightness = values.sum(axis=1)
    count = max(1, int(round(values.shape[0] * percent / 100.0)))
    top = np.argpartition(brightness, values.shape[0] - count)[values.shape[0] - count:]
    estimate = values[top].mean(axis=0)
    norm = np.linalg.norm(estimate)
    if not np.isfinite(norm) or norm == 0:
        raise InputKindError("the image has no colour signal to estimate an illuminant from")
    return estimate / norm


def white_balance(image: np.ndarray, illuminant: np.ndarray) -> np.ndarray:
    gains = illuminant.max() / np.maximum(illuminant, 1e-8)
    return (image * gains[None, None, :]).astype(np.float32)


# --- runners ----------------------------------------------------------------------------------------------

def _runner(order: int, fixed_p: float | None):
    def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
        p = fixed_p if fixed_p is not None else params["p"]
        sigma = params.get("sigma", 0.0)
        illuminant = estimate_illuminant(inputs.image, inputs.mask, order=order, p=p, sigma=sigma,
                                         saturation=params["saturation"])
        return MethodResult(layers={"white_balanced": white_balance(inputs.image, illuminant)},
                            values={"illuminant": illuminant.tolist()})

    return lambda: run


_OUTPUTS = (
    OutputSpec("illuminant", OutputKind.VECTOR, "estimated illuminant RGB (unit norm, raw camera space)",
               colour_space="linear", role=Role.ILLUMINANT),
    OutputSpec("white_balanced", OutputKind.IMAGE, "the input divided by the estimate (von Kries)",
               colour_space="linear", role=Role.WHITE_BALANCED),
)
_SATURATION = ParamSpec("saturation", 0.98, "leave out pixels with any channel at or above this", float, 0.01, 1.0)
_WEIJER = ("J. van de Weijer, T. Gevers, A. Gijsenij. Edge-based color constancy. IEEE TIP 16(9), 2007.")


def _bright_runner():
    def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
        illuminant = bright_pixels_estimate(inputs.image, inputs.mask, percent=params["percent"],
                                            saturation=params["saturation"])
        return MethodResult(layers={"white_balanced": white_balance(inputs.image, illuminant)},
                            values={"illuminant": illuminant.tolist()})

    return run


def _register(name, title, paper, year, summary, order, p, params, runner=None):
    register(MethodSpec(
        name=name, title=title, paper=paper, year=year, task="illuminant", summary=summary,
        input_kind=InputKind.RAW_IMAGE, outputs=_OUTPUTS, params=params + (_SATURATION,),
        runner=runner or _runner(order, p), is_baseline=True, min_side=4,
        bytes_per_pixel=120,  # measured 81-105 (scripts/method_memory.py, 768×1152)
        provenance="Written for Intrinsic Lab from the Minkowski-framework definitions (van de Weijer et al. 2007).",
    ))


_register("baseline_grey_world", "Baseline: grey world",
          "G. Buchsbaum. A spatial processor model for object colour perception. J. Franklin Inst. 310(1), 1980.",
          1980, "The average reflectance is assumed grey: the illuminant is the mean of each channel.", 0, 1.0, ())
_register("baseline_white_patch", "Baseline: white patch (max-RGB)",
          "E. H. Land, J. J. McCann. Lightness and retinex theory. JOSA 61(1), 1971.",
          1971, "The brightest response of each channel is assumed to be a white surface.", 0, float("inf"), ())
_register("baseline_shades_of_grey", "Baseline: shades of grey (p = 6)",
          "G. D. Finlayson, E. Trezzi. Shades of gray and colour constancy. CIC 2004.",
          2004, "Minkowski p-norm mean of each channel, between grey world (p = 1) and white patch (p = ∞).", 0, None,
          (ParamSpec("p", 6.0, "Minkowski norm", float, 1.0, 64.0),))
_register("baseline_grey_edge", "Baseline: grey edge (1st order)", _WEIJER,
          2007, "The average edge difference is assumed grey: Minkowski norm of Gaussian-derivative magnitudes.", 1,
          None, (ParamSpec("p", 1.0, "Minkowski norm", float, 1.0, 64.0),
                 ParamSpec("sigma", 6.0, "Gaussian scale of the derivative (pixels)", float, 0.5, 50.0)))
_register("baseline_bright_pixels", "Baseline: bright pixels (top 2 %)",
          "H. R. V. Joze, M. S. Drew, G. D. Finlayson, P. A. T. Rey. The role of bright pixels in illumination "
          "estimation. CIC 2012.",
          2012, "The mean of the brightest unclipped pixels (top percent by R + G + B) is assumed to be the light.",
          0, None,
          (ParamSpec("percent", 2.0, "share of the valid pixels kept, brightest first (%)", float, 0.1, 50.0),),
          runner=_bright_runner)
