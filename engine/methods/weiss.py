"""Weiss (2001), "Deriving intrinsic images from image sequences", ICCV 2001 — the classic multi-image baseline.

Model: a static scene under changing light, log I_t = log R + log S_t (per colour channel). Illumination images
are assumed to have sparse derivatives (a Laplacian-like prior), so the maximum-likelihood estimate of a
reflectance derivative is the median over time of the frames' log-derivative filter responses. Weiss uses the
horizontal and vertical derivative filters and reintegrates the median responses with the pseudo-inverse of the
filter bank, which for forward differences is a Neumann Poisson solve (done exactly here with a DCT).

Colour: each channel's log reflectance is recovered up to an additive constant; we fix the constants so that
the mean log shading is the same in every channel (shading assumed achromatic on average). The overall scale is
meaningless; the output reflectance is normalised so that its bright end is 1. Outputs are linear RGB.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from scipy import fft

from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)
from ..sequence_layers import linear_stack, normalise_reflectance, shading_from_reflectance


# --- building blocks -------------------------------------------------------------------------------------------

def forward_gradients(log_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of (..., H, W), zero at the last column / row (Neumann boundary)."""
    gx = torch.zeros_like(log_image)
    gy = torch.zeros_like(log_image)
    gx[..., :, :-1] = log_image[..., :, 1:] - log_image[..., :, :-1]
    gy[..., :-1, :] = log_image[..., 1:, :] - log_image[..., :-1, :]
    return gx, gy


def poisson_neumann(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Least-squares integration of a gradient field: argmin_u ‖∇u − (gx, gy)‖², zero-mean. (H, W) → (H, W).

    With forward differences and zero-flux boundaries the normal equations are a Neumann Poisson equation,
    which the type-II DCT diagonalises exactly.
    """
    h, w = gx.shape
    div = gx.astype(np.float64).copy()
    div[:, 1:] -= gx[:, :-1]
    div += gy
    div[1:, :] -= gy[:-1, :]
    eig = (2 * np.cos(np.pi * np.arange(w) / w) - 2)[None, :] + (2 * np.cos(np.pi * np.arange(h) / h) - 2)[:, None]
    eig[0, 0] = 1.0
    coeffs = fft.dctn(div, type=2, norm="ortho") / eig
    coeffs[0, 0] = 0.0
    return fft.idctn(coeffs, type=2, norm="ortho")


def weiss_log_reflectance(log_frames: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) log frames → (C, H, W) log reflectance from the temporal median of derivative responses."""
    gx, gy = forward_gradients(log_frames)
    median_gx = gx.median(dim=0).values.cpu().numpy()
    median_gy = gy.median(dim=0).values.cpu().numpy()
    return np.stack([poisson_neumann(median_gx[c], median_gy[c]) for c in range(log_frames.shape[1])])


# --- runner ----------------------------------------------------------------------------------------------------

def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    frames = linear_stack(inputs, params["input_encoding"])
    eps = float(params["log_epsilon"])
    ctx.progress(0.1, "log-derivative medians")
    with ctx.timed("median"):
        log_frames = torch.log(torch.from_numpy(frames).to(ctx.device).permute(0, 3, 1, 2) + eps)
        log_r = weiss_log_reflectance(log_frames)
        mean_log_i = log_frames.mean(dim=0).cpu().numpy()  # (C, H, W)
    ctx.progress(0.8, "colour balance and shading")
    mask = inputs.mask
    inside = (mask[..., 0] > 0.5) if mask is not None and (mask > 0.5).any() else np.ones(log_r.shape[1:], bool)
    # log I − log R is the mean log shading; equalising its mean across channels is the achromatic-light guess.
    offsets = np.array([(mean_log_i[c] - log_r[c])[inside].mean() for c in range(log_r.shape[0])])
    log_r += (offsets - offsets.mean())[:, None, None]
    reflectance = np.exp(log_r).transpose(1, 2, 0).astype(np.float32)
    reflectance, scale = normalise_reflectance(reflectance, mask)
    shading = shading_from_reflectance(frames, reflectance)
    ctx.progress(1.0, "done")
    return MethodResult(
        layers={"reflectance": reflectance, "shading": shading},
        info={"frames": len(inputs.frames), "reflectance_scale": scale},
    )


def _runner():
    return run


SPEC = register(MethodSpec(
    name="weiss",
    title="Weiss: intrinsic images from image sequences (median of log derivatives)",
    paper="Y. Weiss, \"Deriving intrinsic images from image sequences\", ICCV 2001",
    year=2001,
    task="intrinsic",
    summary="Reflectance as the temporal median of log-derivative filter responses, reintegrated by a Poisson "
            "solve; shading of each frame as image / reflectance.",
    input_kind=InputKind.IMAGE_SEQUENCE,
    outputs=(
        OutputSpec("reflectance", OutputKind.IMAGE, "reflectance (albedo), scaled so its bright end is 1", "linear", role=Role.REFLECTANCE),
        OutputSpec("shading", OutputKind.IMAGE_STACK, "shading of each frame (frame / reflectance)", "linear", role=Role.SHADING),
    ),
    params=(
        ParamSpec("input_encoding", "srgb", "how the frames are encoded: sRGB photos or linear (raw, 16-bit "
                  "linear PNG) values", type=str, choices=("srgb", "linear")),
        ParamSpec("log_epsilon", 1e-4, "added before taking logs so black pixels stay finite", minimum=1e-8,
                  maximum=0.1, log_scale=True),
    ),
    runner=_runner,
    is_baseline=True,
    bytes_per_pixel=100,  # measured 89 (scripts/method_memory.py, 4 frames of 768×1152)
    provenance="Written from the paper's description (median of derivative filter outputs, pseudo-inverse "
               "reintegration); no code copied.",
    url="https://doi.org/10.1109/ICCV.2001.937606",
))
