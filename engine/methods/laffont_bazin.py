"""Laffont & Bazin (2015), "Intrinsic Decomposition of Image Sequences from Local Temporal Variations", ICCV 2015.

Model (per colour channel, static Lambertian scene): I(p, t) = R(p) · S(p, t). No code was released; this is
written from the paper's equations (``docs/methods.md`` §1). Every constant the paper does not give is a parameter.

The paper's local term: in a small window W_i the shading of frame t is one constant S(i, t), so within the window
the reflectance is proportional to the frame, R_i ∝ I_it, and e_local(i, t) = Σ_p (R(p) − I(p, t)/S(i, t))²,
made robust over frames with ρ(x) = √x and solved by IRLS. The paper adds a pairwise term (pixels whose
appearance over time says they share shading) and a chromaticity regulariser, and solves for R globally.

What this implementation does by default (``solver="local"``), and why. Measured on the ten MIT objects in
``../shared`` (light01–10, linear, object mask) with ``scripts/eval_mit_sequences.py``; reflectance LMSE as
colour / grey, mean over the objects: max over frames 0.0120 / 0.0089; the paper's global solve
(``solver="global"``, :mod:`engine.methods.laffont_bazin_global`) 0.0318 / 0.0163; this solver 0.0112 / 0.0084.

* **Every pixel is solved at full resolution by alternating the local term's two unknowns**, starting from the
  max over frames: for the current R, each frame's shading in the Gaussian window (``window_sigma``) around every
  pixel is its least-squares fit (closed form, from Gaussian-weighted moments); then R(p) is the IRLS-weighted mean
  over frames of I(p, t) / S(p, t). The global solve needed a 0.1 MP solve and a per-pixel refit, an energy shift
  against scale shrinkage (without it teabag2 goes from 0.0269 / 0.0025 to 0.0455 / 0.0086) and a chromaticity
  regulariser to fix the scale — and it solves each channel separately, which is where it lost most: its grey
  LMSE beats the max on teabag2 (0.0025 vs 0.0065) while its colour LMSE is 2.6× the max's there and 7.7× on
  apple (the cyan/blue blotches). Here the scale is the start's, and each round moves R only where the windows
  say the start is wrong (2 rounds; 1 and 3 are within ±2 %).
  The global solve's own departures, on teabag2 / apple (colour / grey; its default 0.0269 / 0.0025 and
  0.0783 / 0.0092, max over frames 0.0102 / 0.0065 and 0.0102 / 0.0078): solving at full size instead of 0.1 MP
  then refitting 0.0269 / 0.0025 and 0.0738 / 0.0091; no energy shift 0.0455 / 0.0086 and 0.3243 / 0.1843; no
  pairs 0.0356 / 0.0028 and 0.0363 / 0.0128; no outer IRLS round 0.0247 / 0.0026 and 0.0809 / 0.0095; 3×3 windows
  at step 1 0.0281 / 0.0024 and 0.0745 / 0.0089; a 100× stronger regulariser 0.0368 / 0.0026 and 0.0311 / 0.0088.
  None of them fixes the colour (``scripts/eval_mit_sequences.py --objects teabag2 apple -p solver=global``
  with those ``--variant``s).
* **Shading is grey** (one value per window and frame for all three channels, ``shading_colour``), so R's colour
  is a weighted mean of the frames' colours and cannot drift per channel. Per-channel shading: 0.0114 / 0.0084.
* **Shading is affine within a window** (``shading_model``), not constant (constant: 0.0112 / 0.0084 at σ = 1,
  worse at σ ≥ 2 where a window spans more of a curved surface).
* Frame t's weight at p is S^k / max(sin θ, δ), sin θ the normalised window residual (√ of 1 − explained / total
  energy), so 1 / max(sin θ, δ) is the IRLS weight of ρ = √·: frames whose window a shadow edge or a highlight
  crosses count less. k = 0 is the paper's reflectance-domain residual (every frame counts alike however dimly
  lit it is), k = 2 the image-domain least squares. k = 0 is better on smooth objects and worse on relief
  (box grey 1.06× the max's at σ = 1, 1.29× at σ = 2); the default k = 1 is the safer of the two.

What is left: on the MIT objects the windows cannot remove shading that varies within a few pixels in every frame
(the box's and the panther's relief, creases): there this solver only matches the max over frames.

Pixels with no usable signal in any frame (black or clipped in all of them) cannot be decomposed. The
``confidence`` layer (0…1) is the product of a signal term (the brightest usable frame, from 2× to 8× the
``dark_level``) and a fit term (how well the windows explain the pixel's frames); where the signal term is below
1 the reflectance is blended into a smooth fill (push-pull average of the confident reflectance), so such
pixels get their neighbours' colour instead of amplified noise. S = I / R.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)
from ..sequence_layers import linear_stack, normalise_reflectance, shading_from_reflectance

SATURATED = 0.99  # linear value above which a sensor clips and the model I = R·S no longer holds


# --- building blocks -------------------------------------------------------------------------------------------

def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian (truncated at 3σ) of (..., H, W), zero outside the image: window sums over real pixels
    only, so ratios of blurred moments are exact least-squares fits up to the border."""
    *lead, h, w = x.shape
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    y = x.reshape(-1, 1, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0)), kernel.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius)), kernel.view(1, 1, -1, 1))
    return y.reshape(*lead, h, w)


class WindowFit:
    """Per-pixel least-squares fit of one frame's shading in the Gaussian window around every pixel.

    Minimises Σ_q g(q − p) m(q) Σ_c (I_c(q) − R_c(q) · s_p(q))² with s_p constant or affine in q − p, one s_p
    for all channels (grey light) or one per channel (``per_channel``, the paper's per-channel model). The moments
    of R that do not depend on the frame are computed once per round (``__init__``); ``fit`` then costs one blur per
    regressor and one for the frame's energy. Returns the shading at the window centre and sin θ, the square
    root of the unexplained fraction of the frame's energy in the window.
    """

    def __init__(self, reflectance: torch.Tensor, inside: torch.Tensor, sigma: float, affine: bool,
                 per_channel: bool = False):
        self.sigma, self.affine, self.per_channel = sigma, affine, per_channel
        self.inside = inside
        self.r = reflectance * inside  # (C, H, W)
        r2 = self._channels(self.r * self.r)  # (C or 1, H, W)
        h, w = r2.shape[-2:]
        # coordinates in units of σ keep the normal equations well scaled
        self.y = (torch.arange(h, device=r2.device, dtype=r2.dtype) / sigma)[:, None].expand(h, w)
        self.x = (torch.arange(w, device=r2.device, dtype=r2.dtype) / sigma)[None, :].expand(h, w)
        if not affine:
            self.m00 = gaussian_blur(r2, sigma)
            return
        x, y = self.x, self.y
        g = gaussian_blur(torch.stack([r2, r2 * x, r2 * y, r2 * x * x, r2 * y * y, r2 * x * y]), sigma)
        m00 = g[0]
        mx, my = g[1] - x * m00, g[2] - y * m00  # first moments about the centre
        mxx = g[3] - 2 * x * g[1] + x * x * m00
        myy = g[4] - 2 * y * g[2] + y * y * m00
        mxy = g[5] - x * g[2] - y * g[1] + x * y * m00
        ridge = 1e-4 * m00 + 1e-12  # on the slopes only: a window with one row of pixels still has a centre value
        a, b, c, d, e, f = m00 + 1e-30, mxx + ridge, myy + ridge, mx, my, mxy
        # inverse of the symmetric [[a, d, e], [d, b, f], [e, f, c]] by cofactors (only row 0 is needed: s at q = p)
        c00, c01, c02 = b * c - f * f, e * f - d * c, d * f - b * e
        det = a * c00 + d * c01 + e * c02
        safe = torch.where(det.abs() > 1e-30, det, torch.full_like(det, 1e-30))
        c11, c12, c22 = a * c - e * e, d * e - a * f, a * b - d * d
        self.full = torch.stack([c00, c01, c02, c11, c12, c22]) / safe

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.per_channel else x.sum(0, keepdim=True)

    def energy(self, frame: torch.Tensor) -> torch.Tensor:
        """The frame's energy in every window (H, W); it does not depend on R, so callers keep it across rounds."""
        return gaussian_blur((frame * frame).sum(0) * self.inside, self.sigma)

    def fit(self, frame: torch.Tensor, energy: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, H, W) frame → shading at each window centre (C or 1, H, W) and sin θ (H, W)."""
        ir = self._channels(frame * self.r)
        ii = self.energy(frame) if energy is None else energy
        if not self.affine:
            b0 = gaussian_blur(ir, self.sigma)
            shading = b0 / self.m00.clamp_min(1e-30)
            explained = b0 * shading
        else:
            g = gaussian_blur(torch.stack([ir, ir * self.x, ir * self.y]), self.sigma)
            b0, b1, b2 = g[0], g[1] - self.x * g[0], g[2] - self.y * g[0]
            c00, c01, c02, c11, c12, c22 = self.full
            k0 = c00 * b0 + c01 * b1 + c02 * b2
            k1 = c01 * b0 + c11 * b1 + c12 * b2
            k2 = c02 * b0 + c12 * b1 + c22 * b2
            shading = k0
            explained = k0 * b0 + k1 * b1 + k2 * b2
        sin2 = (1.0 - explained.sum(0) / ii.clamp_min(1e-30)).clamp(0.0, 1.0)
        return shading, sin2.sqrt()


def usable_frames(stack: torch.Tensor, dark: float) -> torch.Tensor:
    """(T, C, H, W) → (T, H, W): the pixel is above the dark level and no channel is clipped."""
    return (stack.mean(1) > dark) & (stack.amax(1) < SATURATED)


def initial_reflectance(stack: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Max over the usable frames (all frames where none is usable): each pixel at its best-lit moment."""
    masked = torch.where(usable[:, None], stack, torch.zeros_like(stack)).amax(0)
    return torch.where(usable.any(0)[None], masked, stack.amax(0))


def local_rounds(stack: torch.Tensor, usable: torch.Tensor, inside: torch.Tensor, reflectance: torch.Tensor, *,
                 sigma: float, affine: bool, power: float, delta: float, rounds: int, per_channel: bool = False,
                 progress=None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Alternate window shading fits and the per-pixel IRLS update of R. Returns R (C, H, W) and the weighted mean
    sin θ of each pixel's frames in the last round (H, W; 1 where no frame counted)."""
    t = stack.shape[0]
    fit_error = torch.ones_like(reflectance[0])
    energies = None
    for round_index in range(rounds):
        windows = WindowFit(reflectance, inside, sigma, affine, per_channel)
        if energies is None:
            energies = [windows.energy(stack[k]) for k in range(t)]
        numerator = torch.zeros_like(reflectance)
        total = torch.zeros_like(reflectance[0])
        sine_sum = torch.zeros_like(total)
        for k in range(t):
            shading, sine = windows.fit(stack[k], energies[k])
            positive = (shading > 1e-12).all(0)
            level = shading.mean(0).clamp_min(1e-12)
            weight = torch.where(usable[k] & positive, level ** power / sine.clamp_min(delta), torch.zeros_like(level))
            numerator += weight * stack[k] / torch.where(positive, shading, torch.ones_like(shading))
            total += weight
            sine_sum += weight * sine
        counted = total > 0
        reflectance = torch.where(counted, numerator / total.clamp_min(1e-30), reflectance)
        fit_error = torch.where(counted, sine_sum / total.clamp_min(1e-30), torch.ones_like(total))
        if progress is not None:
            progress(round_index + 1)
    return reflectance, fit_error


def smooth_fill(values: torch.Tensor, weight: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """Push-pull fill: every pixel gets the weighted mean of the nearest confident values, smoothly.

    Weighted values and weights are averaged down a 2× pyramid until one pixel is left; going back up, each level
    keeps its own weighted mean where its weight reaches ``threshold`` and blends towards the (bilinearly
    upsampled) coarser estimate where it does not. (C, H, W), (H, W) → (C, H, W).
    """
    levels = [(values * weight, weight)]
    while max(levels[-1][1].shape) > 1:
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v[None], 2, ceil_mode=True)[0],
                       F.avg_pool2d(w[None, None], 2, ceil_mode=True)[0, 0]))
    v, w = levels[-1]
    estimate = v / w.clamp_min(1e-30)
    for v, w in reversed(levels[:-1]):
        coarse = F.interpolate(estimate[None], size=w.shape, mode="bilinear", align_corners=False)[0]
        alpha = (w / threshold).clamp(0.0, 1.0)
        estimate = alpha * v / w.clamp_min(1e-30) + (1.0 - alpha) * coarse
    return estimate


def signal_confidence(stack: torch.Tensor, usable: torch.Tensor, dark: float) -> torch.Tensor:
    """0 where the best usable frame is below 2× the dark level, 1 above 8×, linear between. (H, W)."""
    grey = torch.where(usable, stack.mean(1), torch.zeros_like(stack[:, 0])).amax(0)
    return ((grey / max(dark, 1e-12) - 2.0) / 6.0).clamp(0.0, 1.0)


# --- runner ----------------------------------------------------------------------------------------------------

def decompose_local(frames: np.ndarray, mask: np.ndarray | None, params: Mapping[str, Any], ctx: RunContext
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Reflectance (H, W, 3), up to scale, and confidence (H, W) of linear frames (T, H, W, 3)."""
    t, h, w, _ = frames.shape
    device = ctx.device
    stack = torch.from_numpy(np.ascontiguousarray(frames)).to(device=device, dtype=torch.float32)
    stack = stack.permute(0, 3, 1, 2).contiguous()  # (T, C, H, W)
    inside = torch.ones(h, w, dtype=torch.float32, device=device) if mask is None else \
        torch.from_numpy((mask[..., 0] > 0.5).astype(np.float32)).to(device)
    dark = float(params["dark_level"])
    usable = usable_frames(stack, dark)
    rounds = int(params["rounds"])
    with ctx.timed("local"):
        reflectance, fit_error = local_rounds(
            stack, usable, inside, initial_reflectance(stack, usable), sigma=float(params["window_sigma"]),
            affine=params["shading_model"] == "affine", power=float(params["brightness_power"]),
            delta=float(params["sine_floor"]), rounds=rounds, per_channel=params["shading_colour"] == "per_channel",
            progress=lambda k: ctx.progress(0.1 + 0.8 * k / max(1, rounds), f"round {k}/{rounds}"))
    with ctx.timed("confidence"):
        signal = signal_confidence(stack, usable, dark)
        fit = 1.0 / (1.0 + (fit_error / 0.2) ** 2)
        confidence = signal * fit
        weak = signal < 1.0
        if bool(weak.any()):
            fill = smooth_fill(reflectance, signal * inside)
            reflectance = signal * reflectance + (1.0 - signal) * fill
    info = {"rounds": rounds, "frames_used": float(usable.float().mean()),
            "no_signal_pixels": int(((signal == 0) & (inside > 0)).sum()),
            "median_fit_sine": float(fit_error[inside > 0].median()) if bool((inside > 0).any()) else None}
    r = reflectance.clamp_min(0.0).permute(1, 2, 0).cpu().numpy()
    return r, confidence.cpu().numpy(), info


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    frames = linear_stack(inputs, params["input_encoding"])
    ctx.progress(0.05, "frames")
    if params["solver"] == "global":
        from .laffont_bazin_global import decompose_global

        reflectance, info = decompose_global(frames, inputs.mask, params, ctx)
        confidence = np.ones(frames.shape[1:3], np.float32)
    else:
        reflectance, confidence, info = decompose_local(frames, inputs.mask, params, ctx)
    reflectance, scale = normalise_reflectance(reflectance.astype(np.float32), inputs.mask)
    ctx.progress(1.0, "done")
    info.update(frames=len(inputs.frames), reflectance_scale=scale, solver=params["solver"])
    return MethodResult(layers={"reflectance": reflectance, "shading": shading_from_reflectance(frames, reflectance),
                                "confidence": confidence.astype(np.float32)[..., None]},
                        info=info)


def _runner():
    return run


SPEC = register(MethodSpec(
    name="laffont_bazin",
    title="Laffont & Bazin: intrinsic decomposition of image sequences from local temporal variations",
    paper="P.-Y. Laffont and J.-C. Bazin, \"Intrinsic Decomposition of Image Sequences from Local Temporal "
          "Variations\", ICCV 2015",
    year=2015,
    task="intrinsic",
    summary="One reflectance and the shading of every frame from a time-lapse of a static scene: robust local "
            "window constraints (shading smooth within a window, frames weighted by how well they are lit and how "
            "well the window fits), solved per pixel at full resolution; a confidence layer marks pixels that no "
            "frame lights.",
    input_kind=InputKind.IMAGE_SEQUENCE,
    bytes_per_pixel=180,  # per frame pixel; measured 157 (scripts/method_memory.py, 4 × 768×1152)
    # per-pixel solves of small operations: 10 frames of 334×334 take 0.41 s with 1 CPU thread, 0.44 s with 2
    # (python -m engine.speed --cases laffont_bazin-10frames); a second thread from 2 MP of frames up
    pixels_per_thread=2_000_000,
    outputs=(
        OutputSpec("reflectance", OutputKind.IMAGE, "reflectance (albedo), scaled so its bright end is 1", "linear",
                   role=Role.REFLECTANCE),
        OutputSpec("shading", OutputKind.IMAGE_STACK, "shading of each frame (frame / reflectance, per channel)",
                   "linear", role=Role.SHADING),
        OutputSpec("confidence", OutputKind.GREY, "0…1: how well lit and how well explained each pixel is; below "
                   "1 for lack of signal the reflectance is a smooth fill from the neighbours", "none",
                   role=Role.CONFIDENCE),
    ),
    params=(
        ParamSpec("input_encoding", "srgb", "how the frames are encoded: sRGB photos or linear (raw, 16-bit linear "
                  "PNG) values", type=str, choices=("srgb", "linear")),
        ParamSpec("solver", "local", "local: per-pixel alternation at full resolution; global: the paper's sparse "
                  "global solve (slow, kept for comparison)", type=str, choices=("local", "global")),
        ParamSpec("window_sigma", 1.0, "Gaussian window (σ, pixels) within which a frame's shading is smooth",
                  minimum=0.5, maximum=20.0),
        ParamSpec("shading_model", "affine", "shading within a window: constant (the paper) or affine",
                  type=str, choices=("constant", "affine")),
        ParamSpec("shading_colour", "grey", "one shading for the three channels (white light) or one per channel "
                  "(the paper's model; for light whose colour changes between frames)", type=str,
                  choices=("grey", "per_channel")),
        ParamSpec("brightness_power", 1.0, "frames weigh as shading^k: 0 = the paper's reflectance-domain "
                  "residual, 2 = image-domain least squares", minimum=0.0, maximum=4.0),
        ParamSpec("rounds", 2, "alternations of window fits and reflectance updates", type=int, minimum=1,
                  maximum=20),
        ParamSpec("sine_floor", 0.02, "δ: floor on the window residual sin θ in the IRLS weight 1/max(sin θ, δ)",
                  minimum=1e-6, maximum=1.0, log_scale=True),
        ParamSpec("dark_level", 0.002, "linear intensity below which a pixel is treated as noise (black)",
                  minimum=0.0, maximum=0.5),
        # the global solver's parameters
        ParamSpec("window_size", 5, "solver=global: side of the square windows (pixels, at the solve resolution)",
                  type=int, minimum=2, maximum=15),
        ParamSpec("window_step", 2, "solver=global: distance between neighbouring windows", type=int, minimum=1,
                  maximum=15),
        ParamSpec("gamma_pair", 1.0, "solver=global: weight of the pairwise shading-consistency term", minimum=0.0,
                  maximum=1e4, log_scale=True),
        ParamSpec("gamma_reg", 0.01, "solver=global: weight of the chromaticity regulariser", minimum=1e-8,
                  maximum=1e4, log_scale=True),
        ParamSpec("local_irls_iterations", 5, "solver=global: IRLS rounds of each window's own SVD solve (eq. 6)",
                  type=int, minimum=0, maximum=50),
        ParamSpec("global_irls_iterations", 1, "solver=global: re-weighting rounds of the global solve", type=int,
                  minimum=0, maximum=20),
        ParamSpec("n_clusters", 32, "solver=global: k-means clusters of per-pixel appearance profiles", type=int,
                  minimum=0, maximum=1000),
        ParamSpec("pairs_per_cluster", 2000, "solver=global: random pixel pairs drawn within each cluster",
                  type=int, minimum=0, maximum=1_000_000),
        ParamSpec("max_solve_megapixels", 0.1, "solver=global: larger inputs are solved at this size and the "
                  "reflectance refitted at full size", minimum=1e-4, maximum=64.0, log_scale=True),
        ParamSpec("cg_tolerance", 1e-3, "solver=global: relative residual at which conjugate gradients stop",
                  minimum=1e-10, maximum=0.1, log_scale=True),
        ParamSpec("coarse_unknowns", 400, "solver=global: unknowns of the conjugate-gradient coarse correction; "
                  "0 = Jacobi", type=int, minimum=0, maximum=5000),
        ParamSpec("cg_max_iterations", 3000, "solver=global: conjugate-gradient iteration cap per solve", type=int,
                  minimum=1, maximum=100_000),
        ParamSpec("energy_shift", True, "solver=global: remove each window's and pair's unavoidable energy (keeps "
                  "the scale from shrinking where the model fits worse); off = the paper's quadratic form",
                  type=bool),
        ParamSpec("irls_delta", 1e-3, "solver=global: floor on the normalised residual in the IRLS weights "
                  "1/(2·max(r, δ))", minimum=1e-8, maximum=1.0, log_scale=True),
        ParamSpec("seed", 0, "solver=global: random seed of the k-means and pair sampling", type=int, minimum=0),
    ),
    runner=_runner,
    provenance="Written from the paper's equations (no code was released); unverified constants exposed as "
               "parameters; departures (full-resolution alternation, image-domain frame weights, affine window "
               "shading, grey shading) measured and documented in the module docstring.",
    url="https://openaccess.thecvf.com/content_iccv_2015/html/Laffont_Intrinsic_Decomposition_of_ICCV_2015_paper.html",
))
