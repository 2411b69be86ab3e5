"""Laffont & Bazin (2015), the paper's global formulation: one sparse least-squares solve over the whole image.

Selected by ``solver="global"`` in :mod:`engine.methods.laffont_bazin` (whose docstring says why it is not the
default: on the MIT light01–10 sequences it loses to the max over frames). Kept for the ablations.

Energy, minimised over one reflectance image R per channel (model and parameters: ``laffont_bazin``):

* Local term. Overlapping k×k windows W_i (N = k² pixels) in which shading is one constant S(i, t) per frame.
  Eliminating it in closed form (1/S(i,t) = I_itᵀR_i / I_itᵀI_it) leaves e_local(i,t) = ‖M_it R_i‖² with the
  projector M_it = Id_N − I_it I_itᵀ / (I_itᵀ I_it). Robust ρ(x) = √x over frames by IRLS: R_i is the singular
  vector of the smallest singular value of the stacked [√w_it M_it]_t, i.e. the smallest eigenvector of
  A_i = Σ_t w_it M_it = (Σ_t w_it)·Id − Σ_t w_it û_it û_itᵀ (û = I/‖I‖), i.e. the top eigenvector of the Gram
  matrix of the weighted unit patch vectors. We solve the T×T (or N×N, whichever is smaller) symmetric eigen
  problems for all windows at once with ``torch.linalg.eigh``.
* Pairwise term on pixel pairs that share shading: e_pair = Σ_t w_pq (R(p) I(q,t) − R(q) I(p,t))². Pairs are drawn
  within clusters of per-pixel appearance profiles over time (k-means on mean-removed log-intensity profiles:
  pixels whose shading moves together have equal profiles whatever their reflectance).
* Regulariser E_reg = Σ_p Σ_t (R(p) − 3 I(p,t) / Σ_c I(p,t)_c)²: pulls R toward the input chromaticity and fixes
  the scale (the other two terms are homogeneous in R).

How the windows enter the global solve (the paper's formulation, kept): the windows' own reflectance estimates are
known only up to a scale each, so they are not pasted together. Each window contributes its weighted local energy
Σ_t w_it ‖M_it R_i‖² = R_iᵀ A_i R_i, with R_i the restriction of the *global* R, to one sparse quadratic form. The
per-window IRLS (the paper's eq. 6, with the SVD) supplies the first weights w_it; outer IRLS rounds then
re-weight windows and pairs from the global solution and solve again. For fixed weights the minimiser solves

    (P/|Γ| · Σ_i P_iᵀ A_i P_i  +  γ_pair · P/|Φ| · L_pair  +  γ_reg · Id) R = γ_reg · C̄

(E_local and E_pair are means over windows and pairs as in the paper; we also take E_reg as a mean over pixels
and frames rather than a sum, so that γ values do not depend on the image size or the number of frames; C̄ is the
mean chromaticity over the frames where the pixel is not black).

One deliberate change to the paper's quadratic form: each window's block is A_i − λ_i·Id, λ_i the smallest
eigenvalue of A_i (its best achievable energy at unit scale), and likewise for each pair's 2×2 block. The
minimiser of every window and pair, hence every reflectance ratio they imply, is unchanged. Without the shift the
homogeneous energies keep a residual ∝ ‖R‖² wherever the model fits imperfectly, which the regulariser trades
against scale, so R shrinks towards 0 in proportion to the local misfit: on the MIT sequences that gave blotchy,
near-zero reflectance (LMSE ≈ 0.99 on apple); with the shift 0.009. The matrix is symmetric positive definite;
stored and preconditioned by :mod:`engine.ops.window_stencil` and solved by ``engine.ops.pcg``. S = I / R.

IRLS weights are scale-free: w = 1 / (2·max(sin θ, δ)) where sin θ = ‖M R‖ / ‖R‖ is the sine of the angle between
a window's reflectance and its frame (for pairs, the analogous normalised residual). That is the IRLS weight of
ρ = √· once the unknown global scale of R is factored out, and keeps γ_pair and γ_reg meaningful across rounds.

With a mask, windows whose centre lies inside it and pairs of pixels inside it take part; frames in which a window
is black or has a clipped pixel carry no information and get weight 0.

Large inputs are solved at ``max_solve_megapixels`` (frames averaged down in linear light); the shading found there
is upsampled and the full-resolution reflectance is its per-pixel least-squares fit over the frames,
R = Σ_t I_t S_t / Σ_t S_t², which keeps reflectance detail the coarse solve could not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from ..ops.pcg import pcg
from ..ops.window_stencil import Stencil, TwoLevelPreconditioner
from ..registry import RunContext

SATURATED = 0.99  # linear value above which a sensor clips and the model I = R·S no longer holds


# --- local term: windows ---------------------------------------------------------------------------------------

def _starts(length: int, size: int, step: int) -> torch.Tensor:
    starts = list(range(0, length - size + 1, step))
    if starts[-1] != length - size:  # the last window touches the border so every pixel is covered
        starts.append(length - size)
    return torch.tensor(starts, dtype=torch.long)


@dataclass
class WindowGrid:
    ys: torch.Tensor  # top rows of the windows
    xs: torch.Tensor  # left columns
    size: int

    @classmethod
    def build(cls, height: int, width: int, size: int, step: int) -> "WindowGrid":
        return cls(_starts(height, size, step), _starts(width, size, step), size)

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def chunks(self, max_windows: int):
        rows = max(1, max_windows // len(self.xs))
        for start in range(0, len(self.ys), rows):
            yield self.ys[start:start + rows]


def gather_patches(stack: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, k: int) -> torch.Tensor:
    """(T, C, H, W) → (C, n_windows, T, k·k) for the windows with top-left corners ys × xs (row-major)."""
    offsets = torch.arange(k, device=stack.device)
    rows = (ys.to(stack.device)[:, None] + offsets)[:, None, :, None]
    cols = (xs.to(stack.device)[:, None] + offsets)[None, :, None, :]
    patches = stack[:, :, rows, cols]  # (T, C, ny, nx, k, k)
    t, c = stack.shape[:2]
    return patches.reshape(t, c, -1, k * k).permute(1, 2, 0, 3)


def window_positions(ys: torch.Tensor, xs: torch.Tensor, k: int, width: int, device) -> torch.Tensor:
    """Flat pixel index of every window pixel: (n_windows, k·k)."""
    offsets = torch.arange(k, device=device)
    rows = (ys.to(device)[:, None] + offsets)[:, None, :, None]
    cols = (xs.to(device)[:, None] + offsets)[None, :, None, :]
    return (rows * width + cols).reshape(-1, k * k)


def unit_patches(patches: torch.Tensor, dark: float, saturated: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors û = I/‖I‖ per window and frame, and whether the frame says anything about the window.

    A frame where the window is black carries no information (its M_it would be the identity and pull R to 0);
    one with a clipped pixel breaks the model. Both get weight 0.
    """
    n = patches.shape[-1]
    sq = (patches * patches).sum(-1)
    valid = (sq > n * dark * dark) & (patches.amax(-1) < saturated)
    unit = patches / sq.clamp_min(1e-30).sqrt()[..., None]
    return unit, valid


def smallest_singular_vector(unit: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_{‖r‖=1} Σ_t w_t ‖M_t r‖² for every window at once, and the minimum (the smallest eigenvalue of
    Σ_t w_t M_t, i.e. the squared smallest singular value of the stacked √w_t M_t).
    (..., T, N), (..., T) → r (..., N) with r ≥ 0, minimum (...).

    Σ_t w_t M_t = (Σ w)·Id − ŨᵀŨ with Ũ = √w·û, so the minimiser is the top eigenvector of ŨᵀŨ (N×N), or
    equivalently Ũᵀg for the top eigenvector g of ŨŨᵀ (T×T); we solve whichever is smaller.
    """
    scaled = unit * weights.sqrt()[..., None]
    t, n = scaled.shape[-2:]
    if t <= n:
        values, vectors = torch.linalg.eigh(scaled @ scaled.transpose(-1, -2))
        r = (vectors[..., -1:].transpose(-1, -2) @ scaled)[..., 0, :]
    else:
        values, vectors = torch.linalg.eigh(scaled.transpose(-1, -2) @ scaled)
        r = vectors[..., -1]
    r = r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    minimum = (weights.sum(-1) - values[..., -1]).clamp_min(0.0)
    # Perron–Frobenius: the top eigenvector of a non-negative matrix can be taken non-negative.
    return r * torch.where(r.sum(-1, keepdim=True) < 0, -1.0, 1.0).to(r.dtype), minimum


def robust_weights(sin_theta: torch.Tensor, valid: torch.Tensor, delta: float) -> torch.Tensor:
    """IRLS weights of ρ(x) = √x on a squared residual whose square root is ``sin_theta``."""
    return torch.where(valid, 0.5 / sin_theta.clamp_min(delta), torch.zeros_like(sin_theta))


def frame_sines(unit: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """sin θ_t = ‖M_t r‖ / ‖r‖ between each frame's patch and the reflectance r. (..., T, N), (..., N) → (..., T)."""
    cos = (unit @ r[..., None])[..., 0] / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return (1.0 - cos * cos).clamp_min(0.0).sqrt()


def refine_top_direction(unit: torch.Tensor, weights: torch.Tensor, r: torch.Tensor, steps: int) -> torch.Tensor:
    """Power iterations r ← ŨᵀŨ r / ‖·‖ towards the minimiser of ``smallest_singular_vector`` from a guess r ≥ 0.

    Inside the IRLS loop the weights move a little per round and the top eigenvalue of ŨᵀŨ dominates (≈ Σ w when
    the frames agree), so a few warm-started products replace a batched eigen solve, which on the CPU costs
    ~50 µs of LAPACK overhead per small matrix.
    """
    scaled = unit * weights.sqrt()[..., None]
    for _ in range(steps):
        r = (scaled.transpose(-1, -2) @ (scaled @ r[..., None]))[..., 0]
        r = r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return r


def local_irls(unit: torch.Tensor, valid: torch.Tensor, iterations: int, delta: float, steps: int = 3
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's eq. 6 for every window: (unit reflectance, final frame weights). Start from the weighted mean
    patch direction (exact when all frames agree), then IRLS rounds of re-weighting and power refinement."""
    weights = valid.to(unit.dtype)
    r = (unit * weights[..., None]).sum(-2)
    r = refine_top_direction(unit, weights, r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30), steps)
    for _ in range(iterations):
        weights = robust_weights(frame_sines(unit, r), valid, delta)
        r = refine_top_direction(unit, weights, r, steps)
    return r, weights


def block_matrices(unit: torch.Tensor, weights: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """A_i − λ_i·Id with A_i = Σ_t w_it M_it and λ_i its smallest eigenvalue. (..., T, N), (..., T), (...) → (..., N, N).

    Subtracting λ_i (the energy the window cannot avoid at unit scale) leaves each window's minimiser and the
    reflectance ratios it implies unchanged, but makes its best fit cost nothing. Without it the homogeneous local
    energy keeps a residual ∝ ‖R_i‖² that the regulariser trades against scale, so R shrinks towards 0 wherever
    the model fits worse — blotchy, spatially varying reflectance scale on real sequences.
    """
    scaled = unit * weights.sqrt()[..., None]
    blocks = -(scaled.transpose(-1, -2) @ scaled)
    blocks.diagonal(dim1=-2, dim2=-1).add_((weights.sum(-1) - minimum)[..., None])
    return blocks


def assemble_local(stack: torch.Tensor, window_ok: torch.Tensor, grid: WindowGrid, *, dark: float,
                   saturated: float, iterations: int, delta: float, reflectance: torch.Tensor | None,
                   max_windows: int, shift: bool = True) -> tuple[Stencil, dict[str, float]]:
    """Build Σ_i P_iᵀ A_i P_i with IRLS weights, taken from each window's own solve (``reflectance`` None: the
    paper's eq. 6) or from the current global reflectance (C, H, W). ``window_ok`` (rows, cols of the grid) is
    False for windows that leave the mask."""
    t, c, h, w = stack.shape
    k = grid.size
    stencil = Stencil(c, h, w, k, stack.device, stack.dtype)
    sines, used, row = [], 0.0, 0
    for ys in grid.chunks(max_windows):
        unit, valid = unit_patches(gather_patches(stack, ys, grid.xs, k), dark, saturated)
        valid &= window_ok[row:row + len(ys)].reshape(1, -1, 1)
        row += len(ys)
        positions = window_positions(ys, grid.xs, k, w, stack.device)
        if reflectance is None:
            # The IRLS weights need no great precision; only the blocks and their shift do (see decompose).
            _, weights = local_irls(unit.float(), valid, iterations, delta)
            r, minimum = smallest_singular_vector(unit, weights.to(unit.dtype))
        else:
            r = reflectance.reshape(c, -1)[:, positions]  # (C, n, N): the global R restricted to each window
            weights = robust_weights(frame_sines(unit, r), valid, delta)
            minimum = smallest_singular_vector(unit, weights)[1]
        sines.append(frame_sines(unit, r)[valid])
        used += float(valid.sum())
        stencil.add_blocks(block_matrices(unit, weights, minimum if shift else torch.zeros_like(minimum)), positions)
    all_sines = torch.cat(sines)
    return stencil, {
        "frames_used": used / max(1, c * grid.count * t),
        "median_sine": float(all_sines.median()) if all_sines.numel() else 0.0,
    }


# --- pairwise term ---------------------------------------------------------------------------------------------

@dataclass
class Pairs:
    """Pixel pairs with their per-channel moments over time. Per-channel arrays are flattened to (C·n,), and the
    indices carry the channel offset, because 1-D gathers and index_add_ are much faster on the CPU."""

    p: torch.Tensor  # (C·n,) flat indices into a (C, H, W) image
    q: torch.Tensor
    a: torch.Tensor  # Σ_t I(q,t)²
    b: torch.Tensor  # Σ_t I(p,t)²
    c: torch.Tensor  # Σ_t I(p,t) I(q,t)
    minimum: torch.Tensor  # smallest eigenvalue of [[a, −c], [−c, b]]: the pair's unavoidable energy at unit scale
    weights: torch.Tensor

    @classmethod
    def build(cls, stack: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> "Pairs":
        t, c, h, w = stack.shape
        flat = stack.reshape(t, c, -1)
        ip, iq = flat[:, :, p], flat[:, :, q]  # (T, C, n)
        channel = torch.arange(c, device=stack.device)[:, None] * (h * w)
        a, b, cross = (iq * iq).sum(0).reshape(-1), (ip * ip).sum(0).reshape(-1), (ip * iq).sum(0).reshape(-1)
        minimum = (0.5 * (a + b) - torch.sqrt((0.5 * (a - b)) ** 2 + cross ** 2)).clamp_min(0.0)
        return cls((p[None] + channel).reshape(-1), (q[None] + channel).reshape(-1), a, b, cross, minimum,
                   torch.zeros_like(a))

    @property
    def count(self) -> int:
        return int(self.p.numel())

    def sines(self, reflectance: torch.Tensor | None) -> torch.Tensor:
        """Normalised pair residual in [0, 1]; for None, the pair's own optimum (the paper's eq. 10)."""
        total = (self.a + self.b).clamp_min(1e-30)
        if reflectance is None:
            return (self.minimum / total).sqrt()
        flat = reflectance.reshape(-1)
        rp, rq = flat.index_select(0, self.p), flat.index_select(0, self.q)
        energy = rp * rp * self.a - 2 * rp * rq * self.c + rq * rq * self.b
        return (energy.clamp_min(0.0) / ((rp * rp + rq * rq).clamp_min(1e-30) * total)).sqrt()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The pair energies' Hessian times x, each pair's unavoidable energy removed (see ``block_matrices``)."""
        flat = x.reshape(-1)
        xp, xq = flat.index_select(0, self.p), flat.index_select(0, self.q)
        out = torch.zeros_like(flat)
        out.index_add_(0, self.p, self.weights * ((self.a - self.minimum) * xp - self.c * xq))
        out.index_add_(0, self.q, self.weights * ((self.b - self.minimum) * xq - self.c * xp))
        return out.reshape(x.shape)

    def diagonal(self, shape) -> torch.Tensor:
        out = torch.zeros(math.prod(shape), device=self.a.device, dtype=self.a.dtype)
        out.index_add_(0, self.p, self.weights * (self.a - self.minimum))
        out.index_add_(0, self.q, self.weights * (self.b - self.minimum))
        return out.reshape(shape)


def appearance_profiles(stack: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean-removed log intensity over time per pixel, (T, C, H, W) → (H·W, T). Reflectance cancels out."""
    log_lum = torch.log(stack.mean(1) + eps).reshape(stack.shape[0], -1).T
    return log_lum - log_lum.mean(1, keepdim=True)


def select_pairs(stack: torch.Tensor, pixel_ok: torch.Tensor, n_clusters: int, per_cluster: int, eps: float,
                 rng: np.random.Generator, max_fit: int = 20000) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Cluster per-pixel profiles with k-means and draw random pairs among each cluster's tighter half."""
    profiles = appearance_profiles(stack, eps)
    candidates = torch.nonzero(pixel_ok.reshape(-1)).squeeze(1)
    empty = torch.zeros(0, dtype=torch.long, device=stack.device)
    if candidates.numel() < 2 or n_clusters < 1:
        return empty, empty, np.zeros(0)
    data = profiles[candidates]
    fit = data[torch.from_numpy(rng.choice(len(data), min(len(data), max_fit), replace=False)).to(data.device)]
    fit_np = fit.double().cpu().numpy()
    # k-means++ divides by the spread, so a sequence whose pixels all vary alike (e.g. identical frames) is one cluster
    distinct = len(np.unique(np.round(fit_np, 4), axis=0))
    k = min(n_clusters, distinct)
    if k > 1:
        centroids, _ = kmeans2(fit_np, k, minit="++", seed=rng)
    else:
        centroids = fit_np.mean(0, keepdims=True)
    centroids_t = torch.from_numpy(centroids).to(data)
    labels = torch.empty(len(data), dtype=torch.long, device=data.device)
    distance = torch.empty(len(data), dtype=data.dtype, device=data.device)
    for start in range(0, len(data), 65536):
        d = torch.cdist(data[start:start + 65536], centroids_t)
        distance[start:start + 65536], labels[start:start + 65536] = d.min(1)
    labels_np, distance_np, cand_np = labels.cpu().numpy(), distance.cpu().numpy(), candidates.cpu().numpy()
    ps, qs, spreads = [], [], []
    for cluster in range(k):
        members = np.nonzero(labels_np == cluster)[0]
        if len(members) < 4:
            continue
        # The tighter half of a cluster is likelier to truly share shading; IRLS handles the rest.
        core = members[distance_np[members] <= np.median(distance_np[members])]
        draws = min(per_cluster, 4 * len(core))  # no point in many more pairs than pixels
        p = rng.choice(core, draws)
        q = rng.choice(core, draws)
        keep = p != q
        ps.append(cand_np[p[keep]])
        qs.append(cand_np[q[keep]])
        spreads.append(float(np.median(distance_np[members])))
    if not ps:
        return empty, empty, np.zeros(0)
    p = torch.from_numpy(np.concatenate(ps)).to(stack.device)
    q = torch.from_numpy(np.concatenate(qs)).to(stack.device)
    return p, q, np.asarray(spreads)


# --- regulariser and solver ------------------------------------------------------------------------------------

def mean_chromaticity(stack: torch.Tensor, dark: float) -> torch.Tensor:
    """C̄(p) = mean over the frames where p is not black of 3·I_c / Σ_c I. (T, C, H, W) → (C, H, W)."""
    total = stack.sum(1, keepdim=True)
    lit = (total > stack.shape[1] * dark).to(stack.dtype)
    chroma = stack.shape[1] * stack / total.clamp_min(1e-30)
    count = lit.sum(0)
    return torch.where(count > 0, (chroma * lit).sum(0) / count.clamp_min(1), torch.ones_like(chroma[0]))


# --- runner ----------------------------------------------------------------------------------------------------

def _resize_stack(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def decompose_global(frames: np.ndarray, mask: np.ndarray | None, params: Mapping[str, Any], ctx: RunContext
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """Reflectance (H, W, 3), up to scale, of linear frames (T, H, W, 3). Solves at ≤ max_solve_megapixels."""
    t, height, width, _ = frames.shape
    limit = float(params["max_solve_megapixels"]) * 1e6
    factor = min(1.0, math.sqrt(limit / (height * width)))
    h, w = max(1, round(height * factor)), max(1, round(width * factor))
    small = frames if factor == 1.0 else _resize_stack(frames, h, w)
    small_mask = None
    if mask is not None:
        small_mask = mask[..., 0] if factor == 1.0 else cv2.resize(mask[..., 0], (w, h), interpolation=cv2.INTER_AREA)
    # float64: the system's slowest mode is a near-cancellation of window blocks whose entries reach 1/δ, held up
    # only by γ_reg; float32 rounding of the coefficients exceeds γ_reg there, and CG then reports convergence of
    # its recurrence while the true residual stays O(1).
    device, dtype = ctx.device, torch.float64
    # One global scale for all channels keeps colours; the model is scale-free, the thresholds are not.
    scale = float(small[small < SATURATED].mean()) if (small < SATURATED).any() else 1.0
    scale = scale if scale > 1e-12 else 1.0
    stack = torch.from_numpy(small / scale).to(device=device, dtype=dtype).permute(0, 3, 1, 2).contiguous()
    dark = float(params["dark_level"]) / scale
    saturated_rel = SATURATED / scale
    inside = torch.ones(h, w, dtype=torch.bool, device=device) if small_mask is None else \
        torch.from_numpy(small_mask > 0.5).to(device)
    k = min(int(params["window_size"]), h, w)
    grid = WindowGrid.build(h, w, k, int(params["window_step"]))
    # A window counts when its centre is inside the mask, so the object's rim is still covered.
    window_ok = inside[(grid.ys + k // 2).to(device)[:, None], (grid.xs + k // 2).to(device)[None, :]]
    delta = float(params["irls_delta"])
    shift = bool(params["energy_shift"])
    max_windows = max(256, (1 << 22) // (k ** 4 + t * k * k))
    info: dict[str, Any] = {"solve_size": [w, h], "window_size": k, "windows": grid.count}

    ctx.progress(0.05, "local windows: per-window IRLS (eq. 6)")
    with ctx.timed("local"):
        stencil, stats = assemble_local(stack, window_ok, grid, dark=dark, saturated=saturated_rel,
                                        iterations=int(params["local_irls_iterations"]), delta=delta,
                                        reflectance=None, max_windows=max_windows, shift=shift)

    ctx.progress(0.3, "pairs: clustering appearance profiles")
    rng = np.random.default_rng(int(params["seed"]))
    with ctx.timed("pairs"):
        lit = (stack.amax(1) > dark).all(0) & (stack.amax(1) < saturated_rel).all(0) & inside
        p, q, spreads = select_pairs(stack, lit, int(params["n_clusters"]), int(params["pairs_per_cluster"]),
                                     1e-3 / scale, rng)
        pairs = Pairs.build(stack, p, q)
        pairs.weights = robust_weights(pairs.sines(None), torch.ones_like(pairs.a, dtype=torch.bool), delta)
        if not shift:
            pairs.minimum = torch.zeros_like(pairs.minimum)
    info["pairs"] = int(p.numel())

    n_pixels = h * w
    local_scale = n_pixels / max(1, grid.count)
    pair_scale = float(params["gamma_pair"]) * n_pixels / max(1, int(p.numel()))
    gamma_reg = float(params["gamma_reg"])
    target = mean_chromaticity(stack, dark)
    pattern = stack.mean(0)
    rhs = gamma_reg * target
    reflectance = target.clone()
    solves = []
    rounds = int(params["global_irls_iterations"])
    for round_index in range(rounds + 1):
        if round_index > 0:
            ctx.progress(0.4 + 0.5 * round_index / (rounds + 1), f"IRLS round {round_index}: re-weighting")
            with ctx.timed("local"):
                stencil, stats = assemble_local(stack, window_ok, grid, dark=dark, saturated=saturated_rel,
                                                iterations=0, delta=delta, reflectance=reflectance.clamp_min(1e-6),
                                                max_windows=max_windows, shift=shift)
            pairs.weights = robust_weights(pairs.sines(reflectance.clamp_min(1e-6)),
                                           torch.ones_like(pairs.a, dtype=torch.bool), delta)

        def apply(x):
            return local_scale * stencil.apply(x) + pair_scale * pairs.apply(x) + gamma_reg * x

        diagonal = local_scale * stencil.diagonal() + pair_scale * pairs.diagonal(target.shape) + gamma_reg
        ctx.progress(0.45 + 0.5 * round_index / (rounds + 1), f"global solve {round_index + 1}/{rounds + 1}")
        with ctx.timed("solve"):
            if int(params["coarse_unknowns"]) > 0:
                # a few hundred coarse unknowns: enough for the slow modes, and a dense Cholesky stays cheap
                block = max(2, math.ceil(math.sqrt(n_pixels / int(params["coarse_unknowns"]))))
                precond = TwoLevelPreconditioner(diagonal, pattern, block, stencil, pairs, local_scale, pair_scale,
                                                 gamma_reg)
                solved = pcg(apply, rhs, x0=reflectance, precond=precond, tol=float(params["cg_tolerance"]),
                             maxiter=int(params["cg_max_iterations"]), record_history=False)
            else:
                solved = pcg(apply, rhs, x0=reflectance, inv_diag=1.0 / diagonal,
                             tol=float(params["cg_tolerance"]), maxiter=int(params["cg_max_iterations"]),
                             record_history=False)
        reflectance = solved.x
        solves.append({"cg_iterations": max(solved.iterations), "relative_residual": max(solved.relative_residual),
                       "median_window_sine": stats["median_sine"], "window_frames_used": stats["frames_used"]})
        del stencil
    info["solves"] = solves
    info["pair_cluster_spread"] = float(np.median(spreads)) if len(spreads) else None

    r_small = reflectance.clamp_min(1e-6).permute(1, 2, 0).cpu().numpy().astype(np.float32)
    if factor == 1.0:
        return r_small, info
    ctx.progress(0.95, "upsampling")
    with ctx.timed("upsample"):
        shading_small = small / r_small[None]
        num = np.zeros((height, width, 3), np.float64)
        den = np.zeros((height, width, 3), np.float64)
        for frame, s in zip(frames, shading_small):
            s_full = cv2.resize(s, (width, height), interpolation=cv2.INTER_LINEAR)
            num += frame * s_full
            den += s_full * s_full
        r_full = (num / np.maximum(den, 1e-12)).astype(np.float32)
    return r_full, info


