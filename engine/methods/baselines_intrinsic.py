"""Intrinsic-image baselines of the MIT benchmark (Grosse, Johnson, Adelson & Freeman, ICCV 2009).

* **Image as albedo** (the benchmark's "BAS", reflectance mode): reflectance is the image, shading is constant.
  It is the yardstick every decomposition must beat.
* **Color Retinex** ("COL-RET"): work on log intensities; a gradient of the grey log image is kept as a reflectance
  change if the *grey* part of the log-RGB gradient (its mean over channels) exceeds ``threshold_gray`` **or** its
  *chromatic* part (the log-RGB gradient minus that mean, whose Euclidean norm measures a change of chromaticity)
  exceeds ``threshold_color``; the others are set to zero as shading. The kept gradients are integrated by a
  least-squares Poisson solve over the mask (only gradients between two mask pixels count), giving log reflectance
  up to a constant; shading = grey image / reflectance.

Both work on *linear* intensities, as the benchmark does. Their input kind is an ordinary (sRGB) image, so Color
Retinex decodes sRGB first; the image-as-albedo baseline returns the input unchanged and declares it sRGB, so a
caller that needs linear layers (the benchmark) converts it exactly back.

Choices of this implementation: intensities are floored at 3/257 of full scale before the logarithm (the MIT code
floors at 3 on its 0–257 scale); the Poisson system gets a 1e-8 diagonal so that mask regions not connected to
each other still have a unique (zero-mean-ish) solution; reflectance is returned in colour (the input divided by
the grey shading, so its grey is the integrated grey reflectance) and each layer is scaled to a maximum of 1 inside
the mask, since the decomposition is only defined up to scale. The default thresholds come from the benchmark's
own grid (``logspace(-1.5, 0, 5)`` for each, 25 pairs) by its own selection rule, leave-one-out over objects: on
the 10 Barron-train objects in ../shared (apple … teabag2) every fold picks the same pair, grey 1.0 and colour
0.075 (mean Grosse LMSE 0.026) — so in effect a gradient counts as reflectance when its chromaticity changes.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..imaging import srgb_to_linear
from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)

GROSSE_2009 = ("R. Grosse, M. K. Johnson, E. H. Adelson, W. T. Freeman. Ground truth dataset and baseline "
               "evaluations for intrinsic image algorithms. ICCV 2009.")
FLOOR = 3.0 / 257.0  # the MIT code's floor of 3 on its 16-bit/255 scale (full scale 257)


# --- building blocks --------------------------------------------------------------------------------------

def forward_gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gy, gx) with gy[i] = I[i] − I[i−1] and gx[:, j] = I[:, j] − I[:, j−1]; the first row/column is 0."""
    gy = np.zeros_like(image)
    gx = np.zeros_like(image)
    gy[1:] = image[1:] - image[:-1]
    gx[:, 1:] = image[:, 1:] - image[:, :-1]
    return gy, gx


def poisson_integrate(target_gy: np.ndarray, target_gx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least-squares x with x[p] − x[q] ≈ target for every vertical/horizontal neighbour pair inside the mask.

    ``target_gy[i, j]`` is the wanted x[i, j] − x[i−1, j]; ``target_gx[i, j]`` the wanted x[i, j] − x[i, j−1].
    Solved as the normal equations DᵀD x = Dᵀt of the sparse difference operator D over mask pixels only.
    """
    mask = mask.astype(bool)
    h, w = mask.shape
    index = -np.ones((h, w), dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    rows_p, rows_q, targets = [], [], []
    pair_y = mask[1:] & mask[:-1]
    rows_p.append(index[1:][pair_y])
    rows_q.append(index[:-1][pair_y])
    targets.append(target_gy[1:][pair_y])
    pair_x = mask[:, 1:] & mask[:, :-1]
    rows_p.append(index[:, 1:][pair_x])
    rows_q.append(index[:, :-1][pair_x])
    targets.append(target_gx[:, 1:][pair_x])
    p, q, t = np.concatenate(rows_p), np.concatenate(rows_q), np.concatenate(targets)
    n, m = int(mask.sum()), p.size
    edge = np.arange(m)
    d = sp.csr_matrix((np.r_[np.ones(m), -np.ones(m)], (np.r_[edge, edge], np.r_[p, q])), shape=(m, n))
    system = (d.T @ d + 1e-8 * sp.identity(n)).tocsc()
    solution = spla.spsolve(system, d.T @ t)
    out = np.zeros((h, w))
    out[mask] = solution
    return out


def color_retinex(rgb_linear: np.ndarray, mask: np.ndarray, threshold_gray: float, threshold_color: float,
                  floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Grey shading (H, W) and grey reflectance (H, W), both up to scale, as in the MIT benchmark."""
    image = np.maximum(rgb_linear.astype(np.float64), floor)
    log_rgb_gy, log_rgb_gx = forward_gradients(np.log(image))
    grey = np.maximum(image.mean(axis=2), floor)
    log_grey_gy, log_grey_gx = forward_gradients(np.log(grey))

    def reflectance_change(g: np.ndarray) -> np.ndarray:
        grey_part = g.mean(axis=2)
        chroma_part = np.linalg.norm(g - grey_part[..., None], axis=2)
        return (np.abs(grey_part) > threshold_gray) | (chroma_part > threshold_color)

    target_gy = np.where(reflectance_change(log_rgb_gy), log_grey_gy, 0.0)
    target_gx = np.where(reflectance_change(log_rgb_gx), log_grey_gx, 0.0)
    reflectance = np.where(mask, np.exp(poisson_integrate(target_gy, target_gx, mask)), 0.0)
    shading = np.where(mask, grey / np.where(mask, reflectance, 1.0), 0.0)
    return shading, reflectance


def _unit_max(layer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    peak = float(layer[mask].max()) if mask.any() else 0.0
    return (layer / peak if peak > 0 else layer).astype(np.float32)


def _mask_of(inputs: MethodInput) -> np.ndarray:
    if inputs.mask is None:
        return np.ones(inputs.image.shape[:2], dtype=bool)
    return np.asarray(inputs.mask)[..., 0] > 0.5 if np.ndim(inputs.mask) == 3 else np.asarray(inputs.mask) > 0.5


# --- runners ----------------------------------------------------------------------------------------------

def _run_image_as_albedo(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    image = inputs.image.astype(np.float32)
    shading = np.ones(image.shape[:2] + (1,), dtype=np.float32)
    return MethodResult(layers={"reflectance": image.copy(), "shading": shading})


def _run_color_retinex(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    mask = _mask_of(inputs)
    if not mask.any():
        raise ValueError("the mask is empty")
    linear = srgb_to_linear(inputs.image)
    ctx.progress(0.1, "classifying gradients")
    with ctx.timed("solve"):
        shading, grey_reflectance = color_retinex(linear, mask, params["threshold_gray"], params["threshold_color"],
                                                  params["floor"])
    ctx.progress(0.9, "composing layers")
    safe_shading = np.where(mask, shading, 1.0)[..., None]
    colour_reflectance = np.where(mask[..., None], np.maximum(linear, 0.0) / safe_shading, 0.0)
    layers = {"reflectance": _unit_max(colour_reflectance, mask), "shading": _unit_max(shading, mask)[..., None]}
    return MethodResult(layers=layers, info={"masked_pixels": int(mask.sum())})


# --- registration -----------------------------------------------------------------------------------------

register(MethodSpec(
    name="baseline_image_albedo",
    title="Baseline: image as albedo, constant shading",
    paper=GROSSE_2009,
    year=2009,
    task="intrinsic",
    summary="Reflectance is the input image and shading is constant: the lower bound every decomposition must beat.",
    input_kind=InputKind.IMAGE,
    outputs=(
        OutputSpec("reflectance", OutputKind.IMAGE, "the input image itself", colour_space="srgb", role=Role.REFLECTANCE),
        OutputSpec("shading", OutputKind.GREY, "constant 1", colour_space="linear", role=Role.SHADING),
    ),
    params=(),
    runner=lambda: _run_image_as_albedo,
    devices=("cpu", "cuda"),
    is_baseline=True,
    provenance="Written for Intrinsic Lab from the definition in Grosse et al. 2009 (their 'BAS' estimator).",
    url="http://people.csail.mit.edu/rgrosse/intrinsic/",
    min_side=1,
    bytes_per_pixel=50,  # measured 40 (scripts/method_memory.py, 768×1152)
))

register(MethodSpec(
    name="baseline_color_retinex",
    title="Baseline: Color Retinex (MIT benchmark)",
    paper=GROSSE_2009,
    year=2009,
    task="intrinsic",
    summary=("Log-domain Retinex that keeps a gradient as reflectance when its grey or its chromatic part is above "
             "a threshold, then integrates by a least-squares Poisson solve inside the mask."),
    input_kind=InputKind.IMAGE,
    outputs=(
        OutputSpec("reflectance", OutputKind.IMAGE, "input / shading, scaled to max 1 in the mask",
                   colour_space="linear", role=Role.REFLECTANCE),
        OutputSpec("shading", OutputKind.GREY, "grey image / integrated reflectance, scaled to max 1 in the mask",
                   colour_space="linear", role=Role.SHADING),
    ),
    params=(
        ParamSpec("threshold_gray", 1.0, "keep a gradient whose grey log-gradient magnitude exceeds this",
                  float, 0.0, 10.0, log_scale=True),
        ParamSpec("threshold_color", 0.0750, "keep a gradient whose chromatic log-gradient norm exceeds this",
                  float, 0.0, 10.0, log_scale=True),
        ParamSpec("floor", FLOOR, "intensity floor before the logarithm (linear, full scale 1)", float, 1e-6, 0.5,
                  log_scale=True),
    ),
    runner=lambda: _run_color_retinex,
    devices=("cpu", "cuda"),  # CPU-only code: on a CUDA worker it simply runs on the host
    is_baseline=True,
    provenance=("Written for Intrinsic Lab from Grosse et al. 2009's description of COL-RET (thresholded "
                "log-gradients, grey or chromatic change, least-squares Poisson integration with scipy.sparse)."),
    url="http://people.csail.mit.edu/rgrosse/intrinsic/",
    min_side=2,
    bytes_per_pixel=2600,  # measured 2315 (scripts/method_memory.py, 768×1152)
))
