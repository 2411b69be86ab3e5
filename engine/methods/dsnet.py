"""DS-Net: Deep Specialized Network for Illuminant Estimation.

Wu Shi, Chen Change Loy and Xiaoou Tang. ECCV 2016 (the issue cites ICCV; the paper appeared at ECCV 2016).
Official code: https://github.com/swift-n-brutal/illuminant_estimation (TensorFlow, ``.npz`` weights).

Two networks look at 44×44 patches of a *linear* raw image in log-chroma, u = ln(R/G + 1e-8), v = ln(B/G + 1e-8)
(``../shared/docs/methods.md`` §2):

* **HypNet** subtracts the patch's mean (u, v), runs a shared trunk (conv 8×8/4, 128 filters, ReLU → conv 4×4/2,
  256 filters, ReLU → 4·4·256 = 4096) and two branches (FC 4096→256, ReLU, FC 256→2), then adds the mean back: two
  hypotheses of the illuminant's (u, v) per patch.
* **SelNet** has the same trunk with its own weights (no mean subtraction) and one branch ending in 2 logits: which
  hypothesis to trust. Trained with winner-takes-all (HypNet) and the winner's index as the label (SelNet).
* **Inference:** per patch the hypothesis SelNet picks (hard argmax), (u, v) → (r/g, 1, b/g), then a per-component
  weighted median over patches with weight = the patch mean of per-pixel min(R, G, B), normalised by the largest.

What this implementation adds around the paper, all visible in the result's ``info``:

* **Working resolution.** The official inference runs on Gehler-Shi images at their stored size (no resize, ~1.5–2.8
  MP, stride 4). Our shipped weights were trained on INTEL-TAU images at 384×256, so larger inputs are downscaled
  (area average) to a longest side of ``working_side`` (default 384) before patches are cut, and the patch stride is
  a parameter (default 8; the official 4 costs four times as much). A 12-MP raw image then costs about what a
  384×288 one does.
* **Patch validity.** As in the official code, a patch is used only if all its pixels are > 0 in every channel; we
  also drop patches touching a clipped pixel (any channel ≥ ``saturation`` at the input resolution).
* **Phone photos.** An 8-bit sRGB file (a JPEG from a phone) is not linear raw. With ``input="auto"`` (default) an
  8-bit-quantised input is linearised with the sRGB curve and mapped into the training camera's space by the
  weights' ``reference_white`` (the camera's response to a neutral light); the estimate is mapped back and is the
  residual cast in linear sRGB. The result is labelled an approximation (``info["approximation"]``). With
  ``input="raw"`` such a file is refused with one clear message instead.
* **Outputs.** ``illuminant`` (unit-norm RGB, the convention of :mod:`engine.methods.baselines_illuminant`),
  ``white_balanced`` (von Kries, the strongest channel unchanged), ``confidence`` (per pixel: mean over the patches
  covering it of patch weight × SelNet's probability for its choice) and ``patch_estimates`` (per pixel: the colour
  of the illuminant the covering patches voted for — where the estimate came from).
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputKindError, WeightsUnavailableError
from ..models import load_network
from ..limits import DownscaledMemory
from ..registry import (InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, Role,
                        RunContext, register)

PATCH = 44
UV_EPS = 1e-8


# --- building blocks ------------------------------------------------------------------------------------------------

def log_chroma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) linear RGB → (..., 2, H, W) (u, v) = (ln(R/G + 1e-8), ln(B/G + 1e-8)), the official form."""
    r, g, b = rgb.unbind(-3)
    g = g.clamp(min=1e-12)
    return torch.stack([torch.log(r / g + UV_EPS), torch.log(b / g + UV_EPS)], -3)


def uv_to_rgb(uv: torch.Tensor) -> torch.Tensor:
    """(..., 2) (u, v) → (..., 3) (r/g, 1, b/g), as the official code (exp(·) − 1e-8)."""
    ratios = (torch.exp(uv) - UV_EPS).clamp(min=1e-6)
    return torch.stack([ratios[..., 0], torch.ones_like(ratios[..., 0]), ratios[..., 1]], -1)


def rgb_to_uv(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) illuminant RGB → (..., 2) its (u, v) (the training target)."""
    g = rgb[..., 1].clamp(min=1e-12)
    return torch.stack([torch.log(rgb[..., 0] / g + UV_EPS), torch.log(rgb[..., 2] / g + UV_EPS)], -1)


class Trunk(nn.Module):
    """conv 8×8 stride 4 (2→128), ReLU, conv 4×4 stride 2 (128→256), ReLU; no padding. 44×44 → 256×4×4."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 128, 8, stride=4)
        self.conv2 = nn.Conv2d(128, 256, 4, stride=2)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(uv)))).flatten(1)  # NCHW flatten: index = c·16 + h·4 + w


class Branch(nn.Module):
    def __init__(self, outputs: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(4096, 256)
        self.fc2 = nn.Linear(256, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class HypNet(nn.Module):
    """(B, 2, 44, 44) log-chroma patches → (B, 2 branches, 2) hypotheses of the illuminant's (u, v)."""

    def __init__(self):
        super().__init__()
        self.trunk = Trunk()
        self.branches = nn.ModuleList([Branch(2), Branch(2)])

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        mean = uv.mean((2, 3))
        features = self.trunk(uv - mean[:, :, None, None])
        return torch.stack([branch(features) + mean for branch in self.branches], 1)


class SelNet(nn.Module):
    """(B, 2, 44, 44) log-chroma patches → (B, 2) logits: which HypNet branch to trust."""

    def __init__(self):
        super().__init__()
        self.trunk = Trunk()
        self.branch = Branch(2)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        return self.branch(self.trunk(uv))

    def dense(self, uv_image: torch.Tensor, step: int) -> torch.Tensor:
        """Logits of every patch on a ``step``-pixel grid at once (``step`` a multiple of 4), fully convolutionally.

        (1, 2, H, W) → (2, ⌊(H − 44)/step⌋ + 1, ⌊(W − 44)/step⌋ + 1); entry [:, i, j] equals ``forward`` on the patch
        at (step·i, step·j). SelNet has no per-patch mean subtraction, so overlapping patches share their work: conv1
        (stride 4) runs once over the image, conv2 at stride 2 (grids of 8·k px) or 1 with fc1 dilated by 2 (4·k px),
        fc1 as a 4×4 convolution and fc2 as a 1×1. About 6× cheaper than cutting patches at stride 8.
        """
        if step % 4:
            raise ValueError(f"dense SelNet needs a grid step that is a multiple of 4, not {step}")
        k = step // 4
        x = F.relu(self.trunk.conv1(uv_image))
        conv2, fc1, fc2 = self.trunk.conv2, self.branch.fc1, self.branch.fc2
        coarse = k % 2 == 0
        x = F.relu(F.conv2d(x, conv2.weight, conv2.bias, stride=2 if coarse else 1))
        x = F.relu(F.conv2d(x, fc1.weight.view(256, 256, 4, 4), fc1.bias, dilation=1 if coarse else 2))
        x = F.conv2d(x, fc2.weight[:, :, None, None], fc2.bias)
        every = k // 2 if coarse else k
        return x[0, :, ::every, ::every]


class DSNet(nn.Module):
    """HypNet + SelNet, plus the camera's ``reference_white`` (its raw response to a neutral light, unit norm) used to
    map linearised sRGB photos into the camera space the weights were trained in.

    >>> net = DSNet()
    >>> hyps, logits = net(torch.zeros(3, 2, 44, 44))
    >>> tuple(hyps.shape), tuple(logits.shape)
    ((3, 2, 2), (3, 2))
    """

    def __init__(self):
        super().__init__()
        self.hypnet = HypNet()
        self.selnet = SelNet()
        self.register_buffer("reference_white", torch.full((3,), 3 ** -0.5))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation (the authors'), zero biases."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.hypnet(uv), self.selnet(uv)

    def select(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per patch: the chosen (u, v) (B, 2), the chosen index (B,) and SelNet's probability for it (B,)."""
        hyps, logits = self(uv)
        choice = logits.argmax(1)
        chosen = hyps.gather(1, choice[:, None, None].expand(-1, 1, 2))[:, 0]
        prob = torch.softmax(logits.float(), 1).gather(1, choice[:, None])[:, 0]
        return chosen, choice, prob


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value whose cumulative weight reaches half the total (the official definition)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, 0.5 * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


# --- patches ----------------------------------------------------------------------------------------------------

def patch_offsets(size: int, stride: int, patch: int = PATCH) -> np.ndarray:
    """Patch starts on a stride grid plus one flush with the far border (the official grid)."""
    offsets = list(range(0, size - patch + 1, stride))
    if offsets and offsets[-1] != size - patch:
        offsets.append(size - patch)
    return np.asarray(offsets, dtype=np.int64)


def _box_sums(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """Sums of ``values`` (H, W) over every patch (len(ys), len(xs)) via an integral image."""
    integral = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    integral[1:, 1:] = values.cumsum(0).cumsum(1)
    y0, x0 = ys[:, None], xs[None, :]
    return integral[y0 + patch, x0 + patch] - integral[y0, x0 + patch] - integral[y0 + patch, x0] + integral[y0, x0]


def extract_patches(image: np.ndarray, invalid: np.ndarray, stride: int) -> dict[str, np.ndarray]:
    """Cut the valid 44×44 patches of a linear image (H, W, 3); ``invalid`` (H, W) marks clipped pixels.

    Returns ``patches`` (N, 3, 44, 44) float32, their top-left ``ys``/``xs`` and ``weights`` (patch mean of
    per-pixel min(R, G, B)).
    """
    h, w = image.shape[:2]
    ys, xs = patch_offsets(h, stride), patch_offsets(w, stride)
    bad = invalid | np.any(image <= 0, axis=2)
    bad_count = _box_sums(bad.astype(np.float64), ys, xs)
    mean_min = _box_sums(image.min(axis=2).astype(np.float64), ys, xs) / PATCH ** 2
    iy, ix = np.nonzero(bad_count < 0.5)
    top, left = ys[iy], xs[ix]
    ar = np.arange(PATCH)
    rows = (top[:, None] + ar)[:, :, None]
    cols = (left[:, None] + ar)[:, None, :]
    patches = image[rows, cols]  # (N, 44, 44, 3)
    return {"patches": np.ascontiguousarray(patches.transpose(0, 3, 1, 2), dtype=np.float32), "ys": top, "xs": left,
            "weights": mean_min[iy, ix].astype(np.float64)}


def estimate(model: DSNet, image: np.ndarray, invalid: np.ndarray, device: torch.device, stride: int = 4,
             batch: int = 2048, dense: bool = True) -> dict[str, Any]:
    """The DS-Net estimate of one linear image at the resolution given (no resizing here).

    Returns ``illuminant`` (unit-norm RGB in the image's space), and per patch ``ys``, ``xs``, ``weights``,
    ``rgb`` (the chosen illuminant, (N, 3), g = 1), ``choice`` and ``probability``. With ``dense`` (and a stride that
    is a multiple of 4) SelNet runs fully convolutionally over the image (:meth:`SelNet.dense`); the patches flush
    with the border, off the grid, and HypNet (whose per-patch mean subtraction forbids sharing) run per patch.
    """
    found = extract_patches(image, invalid, stride)
    n = len(found["weights"])
    if n == 0:
        raise InputKindError(
            f"no usable {PATCH}×{PATCH} patch: every patch of the {image.shape[1]}×{image.shape[0]} working image "
            "touches a black (zero) or clipped pixel; DS-Net needs unclipped, non-black regions")
    chosen, choices, probs = [], [], []
    model.eval()
    with torch.no_grad():
        grid_logits = on_grid = None
        if dense and stride % 4 == 0:
            uv_image = log_chroma(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device))
            logits_map = model.selnet.dense(uv_image.float(), stride).float().cpu()
            ys, xs = found["ys"], found["xs"]
            on_grid = torch.from_numpy((ys % stride == 0) & (xs % stride == 0))
            gy = torch.from_numpy(np.where(on_grid.numpy(), ys // stride, 0))
            gx = torch.from_numpy(np.where(on_grid.numpy(), xs // stride, 0))
            grid_logits = logits_map[:, gy, gx].T
        for start in range(0, n, batch):
            rgb = torch.from_numpy(found["patches"][start:start + batch]).to(device)
            uv_patches = log_chroma(rgb)
            hyps = model.hypnet(uv_patches).float()
            if grid_logits is None:
                logits = model.selnet(uv_patches).float()
            else:
                logits = grid_logits[start:start + batch].clone().to(device)
                off = ~on_grid[start:start + batch].to(device)
                if bool(off.any()):
                    logits[off] = model.selnet(uv_patches[off]).float()
            choice = logits.argmax(1)
            chosen.append(hyps.gather(1, choice[:, None, None].expand(-1, 1, 2))[:, 0].cpu())
            choices.append(choice.cpu())
            probs.append(torch.softmax(logits, 1).gather(1, choice[:, None])[:, 0].cpu())
    uv = torch.cat(chosen)
    rgb = uv_to_rgb(uv).numpy().astype(np.float64)
    weights = found["weights"] / max(found["weights"].max(), 1e-12)
    if not np.any(weights > 0):
        weights = np.ones_like(weights)
    illuminant = np.array([weighted_median(rgb[:, 0], weights), 1.0, weighted_median(rgb[:, 2], weights)])
    illuminant /= np.linalg.norm(illuminant)
    return {"illuminant": illuminant, "ys": found["ys"], "xs": found["xs"], "weights": weights, "rgb": rgb,
            "choice": torch.cat(choices).numpy(), "probability": torch.cat(probs).numpy().astype(np.float64)}


def patch_maps(shape: tuple[int, int], found: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence (H, W, 1), patch_estimates (H, W, 3)) at the working resolution from the per-patch results."""
    h, w = shape
    confidence = np.zeros((h, w), np.float64)
    colour = np.zeros((h, w, 3), np.float64)
    count = np.zeros((h, w), np.float64)
    score = found["weights"] * found["probability"]
    rgb = found["rgb"] / found["rgb"].max(axis=1, keepdims=True)
    for y, x, s, c in zip(found["ys"], found["xs"], score, rgb):
        confidence[y:y + PATCH, x:x + PATCH] += s
        colour[y:y + PATCH, x:x + PATCH] += c
        count[y:y + PATCH, x:x + PATCH] += 1.0
    covered = count > 0
    confidence[covered] /= count[covered]
    colour[covered] /= count[covered][:, None]
    return confidence[..., None].astype(np.float32), colour.astype(np.float32)


# --- input checks and the phone-photo path -------------------------------------------------------------------------

def looks_8bit(image: np.ndarray, samples: int = 20000) -> bool:
    """True when the values sit on the 8-bit grid (k/255): an 8-bit file, hence almost surely sRGB-encoded."""
    flat = image.reshape(-1)
    if flat.size > samples:
        flat = flat[np.random.default_rng(0).integers(0, flat.size, samples)]
    scaled = flat.astype(np.float64) * 255.0
    return bool(np.mean(np.abs(scaled - np.round(scaled)) < 1e-3) > 0.999)


def channel_peak(image: np.ndarray) -> np.ndarray:
    """max(R, G, B) per pixel, (H, W): two element-wise passes, much faster than a reduction over a 3-long axis."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def check_input(image: np.ndarray, saturation: float, peak: np.ndarray | None = None) -> None:
    """One clear message per kind of unusable input (1-channel, black, all clipped). ``peak``: channel_peak(image)."""
    if image.ndim != 3 or image.shape[2] == 1:
        raise InputKindError("a 1-channel (greyscale) image carries no colour: DS-Net needs a 3-channel linear raw "
                             "RGB image (demosaiced, black level subtracted)")
    peak = channel_peak(image) if peak is None else peak
    if float(peak.max()) <= 1.0 / 65535.0:
        raise InputKindError("the image is all black: there is no light to estimate the colour of")
    if float(peak.min()) >= saturation:
        raise InputKindError(f"every pixel is saturated (some channel ≥ {saturation:g}): clipped pixels carry no "
                             "colour information; use a less exposed image")
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 250_000)))  # a subsample is enough for these tests
    view = image[::step, ::step]
    if np.all(np.abs(view[..., 0] - view[..., 1]) < 1e-6) and np.all(np.abs(view[..., 1] - view[..., 2]) < 1e-6):
        raise InputKindError("the three channels are identical (a 1-channel greyscale image stored as RGB): there is "
                             "no colour to estimate an illuminant from; DS-Net needs a linear raw RGB image")


def working_image(image: np.ndarray, saturation: float, working_side: int, peak: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """(downscaled image, invalid mask, scale): area downscale to ``working_side``; a working pixel is invalid if
    any input pixel under it was clipped. ``peak``: channel_peak(image), if already computed."""
    import cv2

    clipped = (channel_peak(image) if peak is None else peak) >= saturation
    h, w = image.shape[:2]
    scale = min(1.0, working_side / max(h, w))
    if scale >= 1.0:
        return image.astype(np.float32, copy=False), clipped, 1.0
    size = (max(PATCH, round(w * scale)), max(PATCH, round(h * scale)))
    small = cv2.resize(image.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
    invalid = cv2.resize(clipped.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    return small, invalid, scale


# --- official weights (npz) ---------------------------------------------------------------------------------------

class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what the official ``params`` object holds: an OrderedDict of lists of numpy arrays."""

    _ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("builtins", "list"), ("__builtin__", "list"), ("copy_reg", "_reconstructor"),
                ("copyreg", "_reconstructor"), ("builtins", "object"), ("__builtin__", "object")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


def read_official_npz(path: str | Path) -> "OrderedDict[str, list[np.ndarray]]":
    """The ``params`` entry of an official ``hypnet_*.npz``/``selnet_*.npz`` ({layer: [weight, bias]}), read without
    a general unpickle (``np.load(allow_pickle=True)`` would run any code a file carries)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("params.npy")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsUnavailableError(f"{path}: not an official DS-Net npz with a 'params' entry ({exc})") from None
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    shape, _, dtype = (np.lib.format.read_array_header_1_0(stream) if version == (1, 0)
                       else np.lib.format.read_array_header_2_0(stream))
    if dtype != np.dtype(object) or shape != ():
        raise WeightsUnavailableError(f"{path}: 'params' is a {dtype} array of shape {shape}, not a pickled dict")
    try:
        obj = _RestrictedUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsUnavailableError(f"{path}: cannot read 'params' safely ({exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj[()]
    if not isinstance(obj, Mapping):
        raise WeightsUnavailableError(f"{path}: 'params' holds a {type(obj).__name__}, expected a dict of layers")
    return OrderedDict((str(k), [np.asarray(a, dtype=np.float32) for a in v]) for k, v in obj.items())


def _conv(weight: np.ndarray) -> torch.Tensor:  # HWIO → OIHW
    return torch.from_numpy(np.ascontiguousarray(weight.transpose(3, 2, 0, 1)))


def _fc1(weight: np.ndarray) -> torch.Tensor:
    """[4096, 256] whose rows follow the NHWC flatten ((h·4 + w)·256 + c) → our [256, 4096] over the NCHW flatten."""
    nchw = weight.reshape(4, 4, 256, 256).transpose(3, 2, 0, 1).reshape(256, 4096)
    return torch.from_numpy(np.ascontiguousarray(nchw))


def _fc2(weight: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(weight.T))


_OFFICIAL_LAYOUT = {  # official key → (our prefix, converter, expected weight shape)
    "hypnet/base/conv1": ("hypnet.trunk.conv1", _conv, (8, 8, 2, 128)),
    "hypnet/base/conv2": ("hypnet.trunk.conv2", _conv, (4, 4, 128, 256)),
    "hypnet/head/b0/fc1": ("hypnet.branches.0.fc1", _fc1, (4096, 256)),
    "hypnet/head/b0/fc2": ("hypnet.branches.0.fc2", _fc2, (256, 2)),
    "hypnet/head/b1/fc1": ("hypnet.branches.1.fc1", _fc1, (4096, 256)),
    "hypnet/head/b1/fc2": ("hypnet.branches.1.fc2", _fc2, (256, 2)),
    "selnet/base/conv1": ("selnet.trunk.conv1", _conv, (8, 8, 2, 128)),
    "selnet/base/conv2": ("selnet.trunk.conv2", _conv, (4, 4, 128, 256)),
    "selnet/head/b0/fc1": ("selnet.branch.fc1", _fc1, (4096, 256)),
    "selnet/head/b0/fc2": ("selnet.branch.fc2", _fc2, (256, 2)),
}


def _official_pair(path: Path) -> tuple[Path, Path]:
    """A folder holding ``hypnet_*.npz`` and ``selnet_*.npz``, or one of the two files (the other beside it)."""
    if path.is_dir():
        hyp, sel = sorted(path.glob("hypnet_*.npz")), sorted(path.glob("selnet_*.npz"))
        if len(hyp) != 1 or len(sel) != 1:
            raise WeightsUnavailableError(f"{path}: expected exactly one hypnet_*.npz and one selnet_*.npz, found "
                                          f"{[p.name for p in hyp + sel] or 'none'}")
        return hyp[0], sel[0]
    match = re.match(r"(hypnet|selnet)(_.*\.npz)$", path.name)
    if not match:
        raise WeightsUnavailableError(f"{path.name}: official DS-Net files are named hypnet_<iter>.npz and "
                                      "selnet_<iter>.npz")
    hyp, sel = path.with_name("hypnet" + match.group(2)), path.with_name("selnet" + match.group(2))
    missing = [p.name for p in (hyp, sel) if not p.is_file()]
    if missing:
        raise WeightsUnavailableError(f"{path.parent}: DS-Net needs both networks; missing {', '.join(missing)}")
    return hyp, sel


def convert_official(path) -> dict[str, torch.Tensor]:
    """The authors' ``hypnet_*.npz`` + ``selnet_*.npz`` (``official-weights.md`` §4) → a :class:`DSNet` state dict.

    Conv weights HWIO → OIHW; fc1 rows re-ordered from TF's channels-last flatten to our channels-first one; fc2
    transposed. Every key and shape is checked. ``reference_white`` is set neutral (1, 1, 1)/√3: the authors'
    camera response to a neutral light is not part of their files (only the phone-photo path uses it).
    """
    hyp_path, sel_path = _official_pair(Path(path))
    params = OrderedDict()
    for file, prefix in ((hyp_path, "hypnet/"), (sel_path, "selnet/")):
        layers = read_official_npz(file)
        for key, value in layers.items():
            full = key if key.startswith(prefix) else prefix + key.lstrip("/")
            params[full] = (value, file.name)
    state: dict[str, torch.Tensor] = {}
    for key, (ours, convert, shape) in _OFFICIAL_LAYOUT.items():
        if key not in params:
            raise WeightsUnavailableError(f"official DS-Net weights: layer {key} is missing "
                                          f"(found {', '.join(params) or 'nothing'})")
        value, source = params[key]
        if len(value) != 2:
            raise WeightsUnavailableError(f"{source}: {key} holds {len(value)} arrays, expected [weight, bias]")
        weight, bias = value
        if tuple(weight.shape) != shape or tuple(bias.shape) != (shape[-1],):
            raise WeightsUnavailableError(f"{source}: {key} has weight {tuple(weight.shape)} / bias "
                                          f"{tuple(bias.shape)}, expected {shape} / ({shape[-1]},)")
        state[f"{ours}.weight"] = convert(weight).float()
        state[f"{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(bias)).float()
    extra = sorted(set(params) - set(_OFFICIAL_LAYOUT))
    if extra:
        raise WeightsUnavailableError(f"official DS-Net weights: unexpected layers {extra}")
    state["reference_white"] = torch.full((3,), 3 ** -0.5)
    return state


def quantize_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store every weight matrix as int8 with one float32 scale per output channel (``<name>.weight_int8`` and
    ``<name>.weight_scale``): 4.2 M parameters in about 4.3 MB instead of 17 MB. Biases and buffers stay float32."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim >= 2:
            w = value.float()
            scale = w.abs().flatten(1).amax(1).clamp(min=1e-12) / 127.0
            q = torch.round(w / scale.view(-1, *([1] * (w.ndim - 1)))).clamp(-127, 127).to(torch.int8)
            out[key + "_int8"], out[key + "_scale"] = q, scale
        else:
            out[key] = value.float()
    return out


def dequantize_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`quantize_state` (a state without int8 entries passes through, as float32)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_int8"):
            name = key[: -len("_int8")]
            scale = state[name + "_scale"].float()
            out[name] = value.float() * scale.view(-1, *([1] * (value.ndim - 1)))
        elif not key.endswith(".weight_scale"):
            out[key] = value.float()
    return out


def model_from_state(state: Mapping[str, torch.Tensor]) -> DSNet:
    model = DSNet()
    state = dequantize_state(state)
    state.setdefault("reference_white", torch.full((3,), 3 ** -0.5))
    model.load_state_dict(state)
    return model.eval()


# --- runner ---------------------------------------------------------------------------------------------------------

def _load(weights: str | None, device: torch.device) -> tuple[DSNet, dict]:
    return load_network("dsnet", weights, device, model_from_state)


def _white_balance(image: np.ndarray, illuminant: np.ndarray) -> np.ndarray:
    gains = (illuminant.max() / np.maximum(illuminant, 1e-8)).astype(np.float32)
    return image * gains[None, None, :]


APPROXIMATION_NOTE = ("8-bit sRGB input (e.g. a phone JPEG): linearised with the sRGB curve and mapped into the "
                      "training camera's space; the camera already white-balanced and tone-mapped it, so the estimate "
                      "is the residual colour cast in linear sRGB, an approximation")


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    from ..imaging import srgb_to_linear

    image = np.asarray(inputs.image, dtype=np.float32)
    saturation = float(params["saturation"])
    if image.ndim == 3 and image.shape[2] == 3:
        peak = channel_peak(image)
        check_input(image, saturation, peak)
    else:
        check_input(image, saturation)
    is_8bit = looks_8bit(image)
    mode = params["input"]
    if mode == "raw" and is_8bit:
        raise InputKindError("this is an 8-bit file (values on the 1/255 grid), i.e. a non-linear sRGB picture, not "
                             "a linear raw image; use a 16-bit linear raw PNG/TIFF, or run with input=srgb (or auto) "
                             "to linearise it as an approximation")
    srgb = mode == "srgb" or (mode == "auto" and is_8bit)
    with ctx.timed("load"):
        model, weights_info = _load(ctx.weights, ctx.device)
    ctx.progress(0.2, "preparing patches")
    with ctx.timed("prepare"):
        linear = srgb_to_linear(image) if srgb else image
        small, invalid, scale = working_image(linear, saturation, int(params["working_side"]),
                                              None if srgb else peak)
        reference = model.reference_white.detach().float().cpu().numpy().astype(np.float64)
        camera_gain = reference / reference.max() if srgb else np.ones(3)
        network_input = (small * camera_gain[None, None, :].astype(np.float32)) if srgb else small
    ctx.progress(0.4, "estimating")
    with ctx.timed("inference"):
        found = estimate(model, network_input, invalid, ctx.device, int(params["stride"]))
    illuminant = found["illuminant"]
    if srgb:
        illuminant = illuminant / camera_gain
        illuminant = illuminant / np.linalg.norm(illuminant)
    with ctx.timed("outputs"):
        import cv2

        balanced = _white_balance(linear, illuminant)
        confidence, votes = patch_maps(small.shape[:2], found)
        if srgb:
            votes = votes / camera_gain[None, None, :].astype(np.float32)
            votes = votes / np.maximum(votes.max(axis=2, keepdims=True), 1e-8)
        if scale < 1.0:
            h, w = image.shape[:2]
            confidence = cv2.resize(confidence[..., 0], (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
            votes = cv2.resize(votes, (w, h), interpolation=cv2.INTER_LINEAR)
    ctx.progress(1.0, "done")
    info = {"weights": weights_info, "input_encoding": "srgb (8-bit, linearised)" if srgb else "linear raw",
            "approximation": APPROXIMATION_NOTE if srgb else None,
            "working_size": f"{small.shape[1]}×{small.shape[0]}", "working_scale": scale,
            "patches_used": int(len(found["weights"])), "stride": int(params["stride"]),
            "branch_share": float(np.mean(found["choice"] == 1)),
            "mean_selection_probability": float(np.mean(found["probability"]))}
    return MethodResult(layers={"white_balanced": balanced.astype(np.float32, copy=False), "confidence": confidence,
                                "patch_estimates": votes.astype(np.float32, copy=False)},
                        values={"illuminant": illuminant.tolist()}, info=info)


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="dsnet", name="intel-tau",
        description="trained by this project on the 10 INTEL-TAU Sony IMX135 images, re-illuminated along the "
                    "camera's illuminant locus; a CPU run of 4,000 steps: 2.16° / 2.04° mean in 5-fold "
                    "cross-validation (two seeds), below the grey-edge baseline's 2.46° but short of the 1.5° aim "
                    "(see the card)",
        filename="dsnet-intel-tau.safetensors",
        sha256=SHIPPED_SHA256,
        licence="MIT (project weights); training data: INTEL-TAU terms",
        model_card="assets/model_cards/dsnet-intel-tau.md",
    ))
    declare_weights(WeightSet(
        method="dsnet", name="official", official=True, format="numpy-npz",
        description="the authors' HypNet + SelNet trained on Gehler-Shi (568 images, fold 0 of 3), 4M iterations",
        source_url="https://github.com/swift-n-brutal/illuminant_estimation",
        source_filename="hypnet_4000000.npz",
        licence="see the authors' repository", converter="engine.methods.dsnet:convert_official",
    ))


SHIPPED_SHA256 = "210fc3738f659dc53ddb366fc17a698ca21072fdaec00403ce2e9df55b71c819"
_declare_weights()

_PAPER = ("W. Shi, C. C. Loy, X. Tang. Deep Specialized Network for Illuminant Estimation. ECCV 2016.")

SPEC = register(MethodSpec(
    name="dsnet", title="DS-Net (HypNet + SelNet)", year=2016, task="illuminant", paper=_PAPER,
    summary="Two networks on 44×44 log-chroma patches: HypNet proposes two illuminants per patch, SelNet picks one; "
            "a weighted median over patches gives the image's illuminant.",
    input_kind=InputKind.RAW_IMAGE,
    outputs=(
        OutputSpec("illuminant", OutputKind.VECTOR, "estimated illuminant RGB (unit norm, raw camera space; for an "
                   "8-bit sRGB photo: the residual cast in linear sRGB, an approximation)", colour_space="linear",
                   role=Role.ILLUMINANT),
        OutputSpec("white_balanced", OutputKind.IMAGE, "the input divided by the estimate (von Kries), linear; an "
                   "8-bit sRGB photo is linearised first (an approximation)", colour_space="linear",
                   role=Role.WHITE_BALANCED),
        OutputSpec("confidence", OutputKind.GREY, "per pixel: mean over the covering patches of patch weight × "
                   "SelNet's probability for its choice (0 = no usable patch)", colour_space="none",
                   role=Role.CONFIDENCE),
        OutputSpec("patch_estimates", OutputKind.IMAGE, "per pixel: the illuminant colour the covering patches voted "
                   "for (max channel = 1): where the estimate came from", colour_space="linear", role=Role.OTHER),
    ),
    params=(
        ParamSpec("input", "auto", "auto: 8-bit files are treated as sRGB photos and linearised (an approximation), "
                  "others as linear raw; raw: refuse 8-bit files; srgb: always linearise", str,
                  choices=("auto", "raw", "srgb")),
        ParamSpec("working_side", 384, "longest side the patches are cut at (larger inputs are area-downscaled; the "
                  "shipped weights were trained at 384)", int, 64, 4096),
        ParamSpec("stride", 8, "patch grid stride in working pixels (official: 4, about 4× slower; whether it "
                  "changes the estimate has not been measured — the cross-validation used 8)", int, 1, 44),
        ParamSpec("saturation", 0.98, "pixels with any channel at or above this are clipped (their patches are "
                  "skipped)", float, 0.01, 1.0),
    ),
    runner=lambda: run, learned=True, min_side=PATCH,
    # The networks see the working image (working_side); the rest is full-resolution work (clip mask, area
    # downscale, white balance, upscaled maps). scripts/method_memory.py --methods dsnet --size 4000x3000
    # (-p dsnet.working_side=1536): 0.54 GB of growth at 384, 1.63 GB at 1536, so about 39 bytes per image pixel and
    # 652 per working pixel; declared with a margin. (The former flat 400 B/px refused 12 MP raw images.)
    memory=DownscaledMemory("working_side", full_bytes=45, network_bytes=750),
    provenance="architecture, inference and weight layout from the paper and the authors' released model; weights "
               "trained by this project (engine/train/dsnet_recipe.py)",
    url="https://github.com/swift-n-brutal/illuminant_estimation",
))
