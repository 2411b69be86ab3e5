"""JieP (Cai et al., ICCV 2017): prior pieces by hand, the whole iteration against an independent scipy
reference, recovery of a known decomposition, outputs, devices and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from engine.cli import main as cli_main
from engine.errors import ParameterError
from engine.imaging import encode_png, luminance, read_image
from engine.methods.jiep import (bright_channel_prior, compose_outputs, shape_prior_weights,
                                 texture_prior_weights)
from engine.registry import MethodInput, OutputKind, get_method, run_method

REPO = Path(__file__).resolve().parents[2]


# --- test images ----------------------------------------------------------------------------------------------

def ink_on_paper(h: int = 64, w: int = 96, seed: int = 0):
    """A known decomposition: piecewise-constant reflectance (paper 0.9 with thin coloured strokes, narrower
    than the 5×5 bright-channel window, as the bright-channel prior assumes) times a smooth illumination."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    illum = 0.25 + 0.7 * np.exp(-(((xx - 0.3 * w) / (0.7 * w)) ** 2 + ((yy - 0.4 * h) / (0.8 * h)) ** 2))
    refl = np.full((h, w, 3), 0.9, np.float32)
    for _ in range(40):
        if rng.random() < 0.5:
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 12)
            refl[y:y + 3, x:x + 12] = rng.uniform(0.1, 0.6, 3)
        else:
            y, x = rng.integers(0, h - 12), rng.integers(0, w - 3)
            refl[y:y + 12, x:x + 3] = rng.uniform(0.1, 0.6, 3)
    return (refl * illum[..., None]).astype(np.float32), illum.astype(np.float32), refl


def scale_invariant_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """‖c·estimate − truth‖ / ‖truth‖ with the least-squares scale c (Retinex is defined up to I·c, R/c)."""
    c = float((estimate * truth).sum() / (estimate * estimate).sum())
    return float(np.linalg.norm(c * estimate - truth) / np.linalg.norm(truth))


# --- an independent reference: numpy/scipy, float64, direct sparse solves ------------------------------------

def _reference_system(d, wx, wy, rhs):
    h, w = d.shape
    idx = np.arange(h * w).reshape(h, w)
    ex, ey = wx[:, :-1].ravel(), wy[:-1, :].ravel()
    rows = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    cols = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    off = sp.coo_matrix((-np.concatenate([ex, ey]), (rows, cols)), shape=(h * w, h * w))
    diag = d.copy()
    diag[:, :-1] += ex.reshape(h, w - 1)
    diag[:, 1:] += ex.reshape(h, w - 1)
    diag[:-1, :] += ey.reshape(h - 1, w)
    diag[1:, :] += ey.reshape(h - 1, w)
    a = (off + off.T + sp.diags(diag.ravel())).tocsc()
    return spl.spsolve(a, rhs.ravel()).reshape(h, w)


def _clipped_mean(x, r):
    size = 2 * r + 1
    return ndi.uniform_filter(x, size, mode="constant") / ndi.uniform_filter(np.ones_like(x), size, mode="constant")


def _mic_pcg(d, wx, wy, rhs):
    """The authors' solver, emulated: MATLAB's ``pcg(A, b, 0.01, 40, L, L')`` from zero, with ``L`` the modified
    incomplete Cholesky factor (``ichol(A, struct('michol','on'))``), in MATLAB's column-major pixel order.
    For a 5-point matrix MIC(0) is ``M = (D̃ + L_A) D̃⁻¹ (D̃ + L_Aᵀ)`` with ``D̃`` from a recurrence that adds the
    dropped fill-in to the diagonal (so ``M·1 = A·1``). scipy's cg has MATLAB's stopping test; it returns the
    last iterate where MATLAB returns the best one when 40 iterations are not enough."""
    h, w = d.shape
    n = h * w
    flat = lambda a: a.ravel(order="F")  # noqa: E731  (k = i + j·h, MATLAB's order)
    up = np.zeros((h, w))
    up[1:, :] = -wy[:-1, :]  # A[k, k−1]: the pixel above
    left = np.zeros((h, w))
    left[:, 1:] = -wx[:, :-1]  # A[k, k−h]: the pixel to the left
    up, left = flat(up), flat(left)
    diag = flat(d) - np.concatenate([up[1:], [0]]) - up - np.concatenate([left[h:], np.zeros(h)]) - left
    down = np.concatenate([up[1:], [0.0]])  # A[k+1, k]
    right = np.concatenate([left[h:], np.zeros(h)])  # A[k+h, k]
    a_, up_, left_, down_, right_ = (v.tolist() for v in (diag, up, left, down, right))
    dt = [0.0] * n
    for k in range(n):
        v = a_[k]
        if k % h:
            v -= (up_[k] ** 2 + up_[k] * right_[k - 1]) / dt[k - 1]
        if k >= h:
            v -= (left_[k] ** 2 + left_[k] * down_[k - h]) / dt[k - h]
        dt[k] = v
    dt = np.array(dt)
    idx = np.arange(n)
    lower = sp.coo_matrix((np.concatenate([up[1:], left[h:]]),
                           (np.concatenate([idx[1:], idx[h:]]), np.concatenate([idx[:-1], idx[:-h]]))),
                          shape=(n, n)).tocsr()
    factor = (sp.diags(dt) + lower).tocsr()
    factor_t = factor.T.tocsr()

    def apply(r):
        return spl.spsolve_triangular(factor_t, dt * spl.spsolve_triangular(factor, r, lower=True), lower=False)

    a = (sp.diags(diag) + lower + lower.T).tocsr()
    x, _ = spl.cg(a, flat(rhs), rtol=0.01, maxiter=40, M=spl.LinearOperator((n, n), matvec=apply))
    return x.reshape((h, w), order="F")


def _direct_solve(d, wx, wy, rhs):
    return _reference_system(d, wx, wy, rhs)


def reference_jiep(rgb: np.ndarray, iterations: int, alpha=1e-3, beta=1e-4, lam=0.25, eps=1e-4, stop_tol=0.0,
                   solve=_direct_solve):
    """JieP as methods.md §3 and the authors' code state it, written from scratch with numpy/scipy.
    Returns (I, R, iterations run)."""
    rgb = rgb.astype(np.float64)
    s = rgb.max(axis=2)
    gray = 0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]
    p = ndi.maximum_filter(s, size=5, mode="nearest")
    mi, mp = _clipped_mean(gray, 20), _clipped_mean(p, 20)
    a = (_clipped_mean(gray * p, 20) - mi * mp) / (_clipped_mean(gray * gray, 20) - mi * mi + 1e-4)
    b_prior = _clipped_mean(a, 20) * gray + _clipped_mean(mp - a * mi, 20)

    def grads(x):
        gx = np.zeros_like(x)
        gy = np.zeros_like(x)
        gx[:, :-1] = np.diff(x, axis=1)
        gy[:-1, :] = np.diff(x, axis=0)
        return gx, gy

    i, r = s.copy(), np.ones_like(s)
    for k in range(1, iterations + 1):
        previous_i, previous_r = i, r
        gx, gy = grads(s / r)
        ux = 1 / np.maximum(np.abs(ndi.uniform_filter(gx, 3, mode="reflect") * gx), eps)  # scipy reflect = symmetric
        uy = 1 / np.maximum(np.abs(ndi.uniform_filter(gy, 3, mode="reflect") * gy), eps)
        ux[:, -1] = 0
        uy[-1, :] = 0
        i = solve(r * r + lam, alpha * ux, alpha * uy, r * s + lam * b_prior)
        gx, gy = grads(s / i)
        vx, vy = 1 / np.maximum(np.abs(gx), eps), 1 / np.maximum(np.abs(gy), eps)
        vx[:, -1] = 0
        vy[-1, :] = 0
        r = solve(i * i, beta * vx, beta * vy, i * s)
        change_i = np.linalg.norm(i - previous_i) / np.linalg.norm(previous_i)
        change_r = np.linalg.norm(r - previous_r) / np.linalg.norm(previous_r)
        if change_i < stop_tol or change_r < stop_tol:
            break
    return i, r, k


# --- spec -----------------------------------------------------------------------------------------------------

def test_spec_declares_the_paper_defaults():
    spec = get_method("jiep")
    assert spec.defaults() == {
        "alpha": 0.001, "beta": 0.0001, "lambda": 0.25, "K": 20, "stop_tol": 0.01, "r": 3, "r0": 5, "eps": 1e-4,
        "gamma": 2.2, "guide_radius": 20, "guide_eps": 1e-4, "cg_tol": 0.01, "cg_maxiter": 40,
        "preconditioner": "multigrid", "weights_from": "ratio",
    }
    assert [(o.name, o.kind) for o in spec.outputs] == [
        ("illumination", OutputKind.GREY), ("reflectance", OutputKind.IMAGE), ("enhanced", OutputKind.IMAGE)]
    with pytest.raises(ParameterError):
        spec.resolve_params({"r": 4})  # windows are centred: odd sizes only


# --- prior pieces by hand -------------------------------------------------------------------------------------

def test_shape_prior_weights_by_hand():
    i = torch.tensor([[0.0, 0.1, 0.3], [0.0, 0.0, 0.0]])
    ux, uy = shape_prior_weights(i, 3, 1e-4)
    # Ix = [[.1, .2, 0], [0, 0, 0]]; 3×3 symmetric mean at (0,0) = (.1+.1+.2)·2/9 = .8/9 → 1/(.8/9·.1) = 112.5
    # at (0,1): (.1+.2+0)·2/9 = .6/9 → 1/(.6/9·.2) = 75; row 1 has Ix = 0 → 1/ε; last column zeroed
    np.testing.assert_allclose(ux.numpy(), [[112.5, 75.0, 0.0], [1e4, 1e4, 0.0]], rtol=1e-5)
    # Iy = [[0, -.1, -.3], [0, 0, 0]]; at (0,1): (0-.1-.3)·2/9 · (-.1) → 112.5; at (0,2): (-.1-.3-.3)·2/9 · (-.3)
    np.testing.assert_allclose(uy.numpy(), [[1e4, 112.5, 1 / (1.4 / 9 * 0.3)], [0.0, 0.0, 0.0]], rtol=1e-5)


def test_texture_prior_weights_by_hand():
    r = torch.tensor([[1.0, 1.5, 1.5], [1.0, 1.0, 2.0]])
    vx, vy = texture_prior_weights(r, 1e-4)
    np.testing.assert_allclose(vx.numpy(), [[2.0, 1e4, 0.0], [1e4, 1.0, 0.0]], rtol=1e-5)
    np.testing.assert_allclose(vy.numpy(), [[1e4, 2.0, 2.0], [0.0, 0.0, 0.0]], rtol=1e-5)


def test_bright_channel_prior_by_hand():
    s = torch.full((1, 30, 30), 0.2)
    s[0, 10, 12] = 0.8
    flat = torch.full_like(s, 0.5)
    b = bright_channel_prior(s, flat, window=5, guide_radius=2, guide_eps=1e-4)
    # a flat guide has zero variance: B = clipped 5×5 mean of the clipped 5×5 mean of the max-filtered S, whose
    # 5×5 block at rows 8..12, cols 10..14 is 0.8. At the block's centre every pixel of both windows is inside
    # the block's 9×9 neighbourhood; weight of the block = Σ over the 25 window offsets of overlap/25/25.
    overlap = sum((5 - abs(dy)) * (5 - abs(dx)) for dy in range(-2, 3) for dx in range(-2, 3))
    expected = 0.2 + 0.6 * overlap / 625
    assert b[0, 10, 12].item() == pytest.approx(expected, abs=1e-6)
    assert b[0, 25, 25].item() == pytest.approx(0.2, abs=1e-6)  # far from the bright pixel


# --- the whole iteration ----------------------------------------------------------------------------------------

def test_three_iterations_match_the_scipy_reference(rng):
    img, _, _ = ink_on_paper(24, 32, seed=1)
    img = np.clip(img + 0.02 * rng.standard_normal(img.shape), 0.01, 1).astype(np.float32)
    ref_i, ref_r, _ = reference_jiep(img, iterations=3)
    # tight CG and no early stop, so that only the solver's accuracy separates the two
    params = {"K": 3, "stop_tol": 0.0, "cg_tol": 1e-6, "cg_maxiter": 5000}
    result, _, _ = run_method("jiep", MethodInput(frames=(img,)), params, device="cpu")
    assert result.info["iterations"] == 3
    # measured: max |difference| ~1e-6 (float32 CG to 1e-6 against float64 direct solves)
    np.testing.assert_allclose(result.layers["illumination"][..., 0], ref_i, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(result.layers["reflectance"].max(axis=2), ref_r, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("preconditioner", ["multigrid", "jacobi"])
def test_default_solver_tolerance_stays_close_to_exact_solves(preconditioner):
    """With the official loose CG settings (tol 0.01, ≤ 40 iterations) the warm-started PCG ends close to the
    exact-solve iteration (measured here: 0.02-0.05 % in I and R; on 600×400 LOL photos 0.2 % in R with
    multigrid, 2.8 % with Jacobi, whose 40-iteration cap binds there)."""
    img, _, _ = ink_on_paper(48, 64, seed=2)
    loose, _, _ = run_method("jiep", MethodInput(frames=(img,)),
                             {"K": 4, "stop_tol": 0.0, "preconditioner": preconditioner}, device="cpu")
    ref_i, ref_r, _ = reference_jiep(img, iterations=4)
    i = loose.layers["illumination"][..., 0]
    r = loose.layers["reflectance"].max(axis=2)
    assert np.linalg.norm(i - ref_i) / np.linalg.norm(ref_i) < 0.005
    assert np.linalg.norm(r - ref_r) / np.linalg.norm(ref_r) < 0.005


def _compare_with_authors_solver(img: np.ndarray) -> tuple[float, float]:
    ours, _, _ = run_method("jiep", MethodInput(frames=(img,)), device="cpu")
    ref_i, ref_r, iterations = reference_jiep(img, 20, stop_tol=0.01, solve=_mic_pcg)
    assert ours.info["iterations"] == iterations
    i = ours.layers["illumination"][..., 0]
    r = ours.layers["reflectance"].max(axis=2)
    return (float(np.linalg.norm(i - ref_i) / np.linalg.norm(ref_i)),
            float(np.linalg.norm(r - ref_r) / np.linalg.norm(ref_r)))


def test_mic_emulation_is_a_valid_preconditioned_solver(rng):
    """The emulated authors' solver is itself right: its factor keeps row sums and it solves to its tolerance."""
    d = rng.random((12, 15)) ** 2
    wx, wy = (1e-3 / np.maximum(rng.random((12, 15)), 1e-2) for _ in range(2))
    wx[:, -1] = 0
    wy[-1, :] = 0
    rhs = rng.random((12, 15))
    exact = _reference_system(d, wx, wy, rhs)
    approx = _mic_pcg(d, wx, wy, rhs)
    assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 0.005  # measured 0.06 %


def test_matches_an_emulation_of_the_authors_solver():
    """Same outer loop and stopping rule, the authors' solver (MIC-PCG from zero, tol 0.01, ≤ 40 iterations)
    emulated in scipy: ours stops at the same iteration and lands within 1 % (measured: 0.3 % in I and R)."""
    img, _, _ = ink_on_paper()
    err_i, err_r = _compare_with_authors_solver(img)
    assert err_i < 0.01 and err_r < 0.01


def test_matches_an_emulation_of_the_authors_solver_on_a_photo(shared_dir):
    """On a 150×100 LOL low-light photo (measured: 0.7 % in I, 1.3 % in R; at 300×200 0.4-0.9 % and 0.9-1.3 %):
    the two solvers stop at different points of loose solves, so their iterates differ by about the tolerance."""
    photos = sorted((shared_dir / "data" / "lol" / "our485" / "low").glob("*.png"))
    if not photos:
        pytest.skip("no LOL photos in the shared folder")
    img = cv2.resize(read_image(photos[0]).pixels, (150, 100), interpolation=cv2.INTER_AREA)
    err_i, err_r = _compare_with_authors_solver(img)
    assert err_i < 0.02 and err_r < 0.03


def test_recovers_a_known_decomposition_up_to_scale():
    """Tolerance: 12 % scale-invariant relative error for both I and R. JieP's priors are soft (I is pulled
    towards a smoothed bright channel with λ = 0.25, R is only approximately piecewise constant after ≤ 20
    reweighted iterations), so it does not reproduce a synthetic decomposition exactly: on this image it lands at
    ~8 %. The trivial splits (I = S, R = 1, or I = 1, R = S) are all at ≥ 17 %, so a bound of 12 % fails for any
    solver that does not actually separate shading from the strokes."""
    img, illum, refl = ink_on_paper()
    result, _, _ = run_method("jiep", MethodInput(frames=(img,)), device="cpu")
    assert result.info["converged"]
    i = result.layers["illumination"][..., 0]
    s = img.max(axis=2)
    assert scale_invariant_error(i, illum) < 0.12
    assert scale_invariant_error(result.layers["reflectance"], refl) < 0.12
    assert scale_invariant_error(s, illum) > 0.17  # the trivial split the test must beat
    assert scale_invariant_error(s, refl.max(axis=2)) > 0.17


# --- outputs, info, progress ----------------------------------------------------------------------------------

def test_outputs_replace_the_hsv_value_without_clipping():
    rgb = torch.tensor([[[0.2, 0.0]], [[0.4, 0.0]], [[0.1, 0.0]]])  # (3, 1, 2): one colour pixel, one black
    i = torch.tensor([[[0.25, 0.5]]])
    r = torch.tensor([[[2.0, 0.3]]])
    out = compose_outputs(rgb, i, r, gamma=2.2)
    np.testing.assert_allclose(out["reflectance"][:, 0, 0].numpy(), [1.0, 2.0, 0.5], rtol=1e-6)  # > 1 kept
    value = 2.0 * 0.25 ** (1 / 2.2)
    np.testing.assert_allclose(out["enhanced"][:, 0, 0].numpy(), [0.5 * value, value, 0.25 * value], rtol=1e-6)
    # black input: hue and saturation undefined → grey R
    np.testing.assert_allclose(out["reflectance"][:, 0, 1].numpy(), [0.3, 0.3, 0.3])
    assert torch.equal(out["illumination"], i)


def test_info_progress_and_timings():
    img, _, _ = ink_on_paper(32, 48)
    seen = []
    result, ctx, _ = run_method("jiep", MethodInput(frames=(img,)), device="cpu",
                                progress=lambda f, m: seen.append(f))
    info = result.info
    assert 1 <= info["iterations"] <= 20 and len(info["per_iteration"]) == info["iterations"]
    last = info["per_iteration"][-1]
    assert info["converged"] == (min(last["change_I"], last["change_R"]) < 0.01)
    assert all(0 <= h["cg_iterations_I"] <= 40 and 0 <= h["cg_iterations_R"] <= 40 for h in info["per_iteration"])
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0
    assert {"bright_channel_prior", "weights", "solve_I", "solve_R", "outputs"} <= set(ctx.timings)
    assert result.layers["illumination"].shape == (32, 48, 1) and result.layers["enhanced"].dtype == np.float32


def test_cpu_and_cuda_agree(cuda_device):
    img, _, _ = ink_on_paper(48, 64, seed=3)
    # tight solves and a fixed iteration count: only floating-point reduction order differs between devices
    tight = {"K": 5, "stop_tol": 0.0, "cg_tol": 1e-6, "cg_maxiter": 500}
    cpu, _, _ = run_method("jiep", MethodInput(frames=(img,)), tight, device="cpu")
    gpu, ctx, _ = run_method("jiep", MethodInput(frames=(img,)), tight, device=str(cuda_device))
    assert ctx.device.type == "cuda"
    for name in ("illumination", "reflectance", "enhanced"):
        np.testing.assert_allclose(gpu.layers[name], cpu.layers[name], rtol=1e-3, atol=1e-4)
    # default settings: loose CG tolerances may stop an iteration apart, so compare within the tolerance scale
    cpu, _, _ = run_method("jiep", MethodInput(frames=(img,)), device="cpu")
    gpu, _, _ = run_method("jiep", MethodInput(frames=(img,)), device=str(cuda_device))
    for name in ("illumination", "reflectance"):
        a, b = cpu.layers[name], gpu.layers[name]
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.02


# --- end to end through the CLI -------------------------------------------------------------------------------

def _check_cli_output(out_dir, image: np.ndarray) -> dict:
    record = json.loads((out_dir / "result.json").read_text())
    assert record["method"] == "jiep" and record["parameters"]["alpha"] == 0.001
    assert record["info"]["iterations"] >= 1 and record["timings_s"]["total"] > 0
    h, w = image.shape[:2]
    for name, channels in (("illumination", 1), ("reflectance", 3), ("enhanced", 3)):
        entry = record["files"][name]
        png = cv2.imread(str(out_dir / entry["file"]), cv2.IMREAD_UNCHANGED)
        assert png is not None and png.dtype == np.uint16
        assert png.shape[:2] == (h, w) and (png.ndim == 2 if channels == 1 else png.shape[2] == 3)
        assert 0.0 <= entry["clipped_fraction"] < 1.0
    # the illumination PNG holds the clipped layer, and its mean follows the input's brightness
    illum = cv2.imread(str(out_dir / "illumination.png"), cv2.IMREAD_UNCHANGED) / 65535.0
    s = image.max(axis=2)
    assert abs(illum.mean() - np.clip(s, 0, 1).mean()) < 0.15
    return record


def test_cli_end_to_end_on_a_generated_image(tmp_path):
    """The real command line, in a subprocess: ``python -m engine run jiep PHOTO --out DIR``."""
    img, _, _ = ink_on_paper(40, 56, seed=4)
    photo = tmp_path / "ink.png"
    photo.write_bytes(encode_png(img))
    proc = subprocess.run([sys.executable, "-m", "engine", "run", "jiep", str(photo), "--out", str(tmp_path / "out"),
                           "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # a tiny image: threads only add sync cost
    assert proc.returncode == 0, proc.stderr
    assert "jiep: wrote 3 layer(s)" in proc.stdout
    _check_cli_output(tmp_path / "out", read_image(photo).pixels)


def test_cli_end_to_end_on_a_real_low_light_photo(tmp_path, shared_dir):
    photos = sorted((shared_dir / "data" / "lol" / "our485" / "low").glob("*.png"))
    if not photos:
        pytest.skip("no LOL photos in the shared folder")
    img = read_image(photos[0]).pixels
    small = cv2.resize(img, (150, 100), interpolation=cv2.INTER_AREA)  # keeps the test fast
    photo = tmp_path / "low.png"
    photo.write_bytes(encode_png(small))
    assert cli_main(["run", "jiep", str(photo), "--out", str(tmp_path / "out"), "--device", "cpu",
                     "-p", "K=10"]) == 0
    record = _check_cli_output(tmp_path / "out", read_image(photo).pixels)
    assert record["parameters"]["K"] == 10
    # a low-light photo: the enhanced image is brighter than the input
    enhanced = cv2.imread(str(tmp_path / "out" / "enhanced.png"), cv2.IMREAD_UNCHANGED) / 65535.0
    assert enhanced.mean() > 1.5 * np.mean(luminance(small))
