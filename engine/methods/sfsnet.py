"""SfSNet: Learning Shape, Reflectance and Illuminance of Faces in the Wild.

Soumyadip Sengupta, Angjoo Kanazawa, Carlos D. Castillo and David W. Jacobs. CVPR 2018.
https://github.com/senguptaumd/SfSNet

From one 128×128 face crop the network predicts surface normals, albedo and 27 second-order spherical-harmonic
lighting coefficients (9 per colour channel); shading is ``Σ_k L_k H_k(n)`` and the reconstruction is
``albedo · shading`` (:mod:`engine.ops.sh`). Architecture (``../shared/docs/methods.md`` §4,
``official-weights.md`` §2): a stem (7×7 conv 3→64, BN, ReLU; 3×3 conv 64→128, BN, ReLU; 3×3 stride-2 conv
128→128, no BN/ReLU, "conv3"); two branches (normal, albedo) of 5 pre-activation residual blocks, BN+ReLU ("f6"), a
fixed bilinear ×2 upsampling (grouped 4×4 stride-2 deconvolution, not trained), 1×1 conv 128→128 +BN+ReLU, 3×3 conv
128→64 +BN+ReLU, 1×1 conv 64→3; a light head on [normal f6, albedo f6, conv3] (384 ch): 1×1 conv →128 +BN+ReLU,
global average pooling, FC 128→27. BatchNorm has no affine parameters (Caffe BatchNorm without Scale). ``width``
scales every channel count (1.0 = the paper; the shipped weights use a narrower network, see the model card).

Interface of the network, as the authors': input BGR in [0, 1] (no mean subtraction); the normal head's channels
reversed and mapped by ``2x − 1``, then normalised, give (x, y, z); the albedo head's channels reversed give RGB.

**This project's conventions.** Normals are camera-space unit vectors, x right, y up, z toward the camera (the
weights this project trains use exactly that; for the authors' weights the axis signs are *unverified*, since no
weight file was available to check them). Albedo and shading are in the image's (sRGB-encoded) values, as in the
paper, where ``image ≈ albedo · shading`` directly.

**Any photo with faces.** Faces are found with dlib's HOG frontal-face detector (the ``dlib-bin`` wheel carries it
compiled in: no model download; Boost Software Licence), on a copy of the photo scaled to at most
``detect_max_side`` pixels. Each box becomes a square crop framed like the training faces (see :func:`crop_box`),
resized to 128×128 with area averaging, decomposed, and the results are pasted back onto the photo (inside a soft
ellipse that covers the face in that framing). Known failure modes of the detector: profile and strongly turned
faces (beyond about 30–40° of yaw), tilted faces (beyond about 20–30° of roll), faces smaller than about 80 pixels at
the detection scale (``upsample`` helps, at a cost), heavy occlusion. No face raises
:class:`~engine.errors.NoFaceError`. With ``crop_mode = auto`` a square image of at most 160 px (an aligned crop,
as in face datasets) is used whole when no face, or a face at least 35 % of its width, is detected.

**Relighting.** :func:`relight` re-renders a face from its albedo and normals under a new light: the face's own
ambient term plus a directional light from a preset (front, left, right, above, below) or any azimuth/elevation
(the ``relight``, ``light_azimuth`` and ``light_elevation`` parameters), with the energy of the estimated light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NoFaceError, WeightsUnavailableError
from ..ops.sh import directional_sh, lit_sphere, shading as sh_shading
from ..models import load_network
from ..limits import DownscaledMemory
from ..registry import (InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, Role,
                        RunContext, Task, register)

INPUT_SIZE = 128
BLOCKS = 5


# --- building blocks ------------------------------------------------------------------------------------------------

def _bn(channels: int) -> nn.BatchNorm2d:
    """Caffe BatchNorm without a Scale layer: normalisation only (no γ/β), eps 1e-5."""
    return nn.BatchNorm2d(channels, eps=1e-5, affine=False)


class ResBlock(nn.Module):
    """Pre-activation residual block: BN → ReLU → conv3×3 → BN → ReLU → conv3×3, plus the identity."""

    def __init__(self, c: int):
        super().__init__()
        self.bn1, self.conv1 = _bn(c), nn.Conv2d(c, c, 3, padding=1)
        self.bn2, self.conv2 = _bn(c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        return x + self.conv2(F.relu(self.bn2(y)))


def bilinear_kernel(channels: int) -> torch.Tensor:
    """The fixed ×2 upsampling kernel of ``nup6``/``aup6``: outer([.25, .75, .75, .25]) per channel, (C, 1, 4, 4)."""
    k = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return (k[:, None] * k[None, :]).expand(channels, 1, 4, 4).clone()


class Branch(nn.Module):
    """Normal or albedo branch: 5 residual blocks → BN, ReLU (f6) → fixed ×2 up → 1×1 → 3×3 → 1×1 to 3 channels."""

    def __init__(self, c: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c) for _ in range(BLOCKS))
        self.bn6r = _bn(c)
        self.register_buffer("up", bilinear_kernel(c), persistent=False)
        self.conv6, self.bn6 = nn.Conv2d(c, c, 1), _bn(c)
        self.conv7, self.bn7 = nn.Conv2d(c, c // 2, 3, padding=1), _bn(c // 2)
        self.conv0 = nn.Conv2d(c // 2, 3, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return F.relu(self.bn6r(x))

    def head(self, f6: torch.Tensor) -> torch.Tensor:
        x = F.conv_transpose2d(f6, self.up.to(f6.dtype), stride=2, padding=1, groups=f6.shape[1])
        x = F.relu(self.bn6(self.conv6(x)))
        x = F.relu(self.bn7(self.conv7(x)))
        return self.conv0(x)


class SfSNet(nn.Module):
    """``forward(x)`` with x (N, 3, H, W) BGR in [0, 1] → (normal head, albedo head, light (N, 27)).

    The heads are raw, in the authors' channel order (see :func:`decode`).

    >>> net = SfSNet(width=0.25)
    >>> n, a, light = net(torch.rand(2, 3, 128, 128))
    >>> tuple(n.shape), tuple(light.shape)
    ((2, 3, 128, 128), (2, 27))
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = float(width)
        c1, c2 = max(8, int(round(64 * width))), max(8, int(round(128 * width)))
        c2 += c2 % 2
        self.conv1, self.bn1 = nn.Conv2d(3, c1, 7, padding=3), _bn(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 3, padding=1), _bn(c2)
        self.conv3 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.normal, self.albedo = Branch(c2), Branch(c2)
        self.lconv1, self.lbn1 = nn.Conv2d(3 * c2, c2, 1), _bn(c2)
        self.fc_light = nn.Linear(c2, 27)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        conv3 = self.conv3(x)
        nf, af = self.normal.features(conv3), self.albedo.features(conv3)
        light = F.relu(self.lbn1(self.lconv1(torch.cat([nf, af, conv3], 1))))
        light = self.fc_light(F.adaptive_avg_pool2d(light, 1).flatten(1))
        return self.normal.head(nf), self.albedo.head(af), light


# --- the authors' interface: pre- and post-processing, shading ------------------------------------------------------

def encode_input(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] → the network's BGR input."""
    return rgb.flip(1)


def decode(normal_head: torch.Tensor, albedo_head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw heads → unit normals (x, y, z) and RGB albedo: channels reversed, normals 2x − 1 then normalised."""
    normals = F.normalize(normal_head.flip(1).float() * 2 - 1, dim=1, eps=1e-6)
    return normals, albedo_head.flip(1).float()


def encode_normals(normals: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`decode` for normals: the raw head values a training target should have."""
    return ((normals + 1) / 2).flip(1)


def predict(model: SfSNet, crops_rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, 3, 128, 128) RGB crops → normals, albedo, sh (N, 27), shading and reconstruction."""
    n_head, a_head, light = model(encode_input(crops_rgb))
    normals, albedo = decode(n_head, a_head)
    light = light.float()
    shade = sh_shading(normals, light)
    return {"normals": normals, "albedo": albedo, "sh": light, "shading": shade, "reconstruction": albedo * shade}


#: preset light directions (azimuth: positive toward image right; elevation: positive up), degrees
PRESETS: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0), "left": (-60.0, 10.0), "right": (60.0, 10.0), "above": (0.0, 55.0),
    "below": (0.0, -45.0),
}


def light_direction(azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """Unit vector toward the light in camera space (x right, y up, z toward the camera)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return torch.tensor([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])


def relit_sh(sh: torch.Tensor, azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """(N, 27) estimated light → (N, 27): its ambient (order-0) term plus one directional light of the estimated
    light's colour from the given direction, with the strength of the estimate's first-order (directional) part."""
    sh = sh.reshape(-1, 3, 9)
    ambient = sh[..., :1]
    first = sh[..., 1:4].norm(dim=-1).mean(-1)  # |L1| per face, averaged over colours
    colour = sh[..., 0] / sh[..., 0].mean(-1, keepdim=True).clamp(min=1e-6)
    y1 = math.sqrt(3 / (4 * math.pi))
    strength = (first / y1).clamp(min=0.3 * (sh[..., 0, 0].mean() * math.sqrt(4 * math.pi)).clamp(min=0.1))
    d = light_direction(azimuth_deg, elevation_deg).to(sh.device)
    new = directional_sh(d.expand(sh.shape[0], 3), strength[:, None] * colour).reshape(-1, 3, 9)
    new[..., :1] = new[..., :1] + ambient
    return new.reshape(-1, 27)


def relight(albedo: torch.Tensor, normals: torch.Tensor, sh: torch.Tensor, preset: str = "front",
            azimuth_deg: float | None = None, elevation_deg: float | None = None) -> torch.Tensor:
    """Re-render faces (N, 3, H, W albedo and normals, (N, 27) estimated light) under a new light: a ``preset`` name
    from :data:`PRESETS` or an explicit azimuth/elevation. Returns albedo · shading under the new light, with the new
    shading scaled to the mean level of the estimated one (relighting moves the light, not the exposure)."""
    if azimuth_deg is None or elevation_deg is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown light preset {preset!r}; presets: {', '.join(PRESETS)}")
        azimuth_deg, elevation_deg = PRESETS[preset]
    new = relit_sh(sh, azimuth_deg, elevation_deg)
    shade = sh_shading(normals, new)
    # keep each face's overall brightness: scale the new shading to the mean level of the estimated one
    before = sh_shading(normals, sh.reshape(-1, 27)).mean((1, 2, 3), keepdim=True)
    shade = shade * (before.clamp(min=1e-3) / shade.mean((1, 2, 3), keepdim=True).clamp(min=1e-3))
    return (albedo * shade).clamp(0, 1)


# --- the authors' Caffe HDF5 weights --------------------------------------------------------------------------------

def official_layers() -> list[tuple[str, str, str]]:
    """(Caffe layer name, kind, our module path) for every layer with blobs, in net order (62 layers)."""
    layers = [("conv1", "conv", "conv1"), ("bn1", "bn", "bn1"), ("conv2", "conv", "conv2"), ("bn2", "bn", "bn2"),
              ("conv3", "conv", "conv3")]
    for letter, branch in (("n", "normal"), ("a", "albedo")):
        for k in range(1, BLOCKS + 1):
            block = f"{branch}.blocks.{k - 1}"
            layers += [(f"{letter}bn{k}", "bn", f"{block}.bn1"), (f"{letter}conv{k}", "conv", f"{block}.conv1"),
                       (f"{letter}bn{k}r", "bn", f"{block}.bn2"), (f"{letter}conv{k}r", "conv", f"{block}.conv2")]
        layers += [(f"{letter}bn6r", "bn", f"{branch}.bn6r"), (f"{letter}up6", "up", f"{branch}.up"),
                   (f"{letter}conv6", "conv", f"{branch}.conv6"), (f"{letter}bn6", "bn", f"{branch}.bn6"),
                   (f"{letter}conv7", "conv", f"{branch}.conv7"), (f"{letter}bn7", "bn", f"{branch}.bn7"),
                   (f"{letter.upper()}conv0", "conv", f"{branch}.conv0")]
    layers += [("lconv1", "conv", "lconv1"), ("lbn1", "bn", "lbn1"), ("fc_light", "fc", "fc_light")]
    return layers


def convert_official(path) -> dict[str, torch.Tensor]:
    """``SfSNet.caffemodel.h5`` (Caffe HDF5: ``/data/<layer>/0,1,2``) → a state dict of :class:`SfSNet` (width 1).

    Convolutions and the FC layer copy weight and bias; BatchNorm blobs are (mean·s, var·s, s) and become
    ``running_mean = b0 / s``, ``running_var = b1 / s`` (0 where s = 0); the fixed upsampling blobs are checked
    against the bilinear kernel and not stored. Every shape is checked; a missing layer is an error, unknown
    (train-only) layers are ignored, as Caffe does.
    """
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in requirements.txt
        raise WeightsUnavailableError("reading the official SfSNet weights needs h5py (pip install h5py)") from None
    ours = SfSNet(width=1.0).state_dict()
    state: dict[str, torch.Tensor] = {}
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsUnavailableError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle:
        if "data" not in handle:
            raise WeightsUnavailableError(f"{path}: no /data group; this is not a Caffe HDF5 weights file")
        data = handle["data"]
        for caffe_name, kind, module in official_layers():
            if caffe_name not in data:
                raise WeightsUnavailableError(f"{path}: layer {caffe_name!r} is missing; not SfSNet weights")
            blobs = [torch.from_numpy(np.asarray(data[caffe_name][str(i)], dtype=np.float32))
                     for i in range(len(data[caffe_name]))]
            if kind in ("conv", "fc"):
                targets = {f"{module}.weight": blobs[0], f"{module}.bias": blobs[1] if len(blobs) > 1 else None}
            elif kind == "bn":
                if len(blobs) != 3:
                    raise WeightsUnavailableError(f"{path}: BatchNorm {caffe_name} has {len(blobs)} blobs, expected 3")
                s = float(blobs[2].reshape(-1)[0])
                factor = 0.0 if s == 0 else 1.0 / s
                targets = {f"{module}.running_mean": blobs[0] * factor, f"{module}.running_var": blobs[1] * factor}
            else:  # the fixed upsampling: check it, keep ours
                expected = bilinear_kernel(blobs[0].shape[0])
                if blobs[0].shape != expected.shape or not torch.allclose(blobs[0], expected, atol=1e-4):
                    raise WeightsUnavailableError(f"{path}: {caffe_name} is not the fixed bilinear kernel")
                continue
            for key, tensor in targets.items():
                if tensor is None:
                    raise WeightsUnavailableError(f"{path}: {caffe_name} has no bias blob")
                if tuple(tensor.shape) != tuple(ours[key].shape):
                    raise WeightsUnavailableError(f"{path}: {caffe_name} has shape {tuple(tensor.shape)}, expected "
                                                  f"{tuple(ours[key].shape)} for {key}")
                state[key] = tensor.clone()
    for key, tensor in ours.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(ours) - set(state))
    if missing:
        raise WeightsUnavailableError(f"{path}: conversion left {len(missing)} tensors unset, e.g. {missing[:3]}")
    return state


def model_from_state(state: Mapping[str, torch.Tensor]) -> SfSNet:
    """Build a network whose width matches the state dict (conv1's output channels / 64)."""
    model = SfSNet(width=state["conv1.weight"].shape[0] / 64)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


# --- faces in a photo -----------------------------------------------------------------------------------------------

#: the detector box → crop mapping (crop side = CROP_SCALE × box width, centre shifted down by CROP_SHIFT × box
#: height), measured by running the detector on rendered training faces (scripts/sfsnet_calibrate_crop.py)
CROP_SCALE = 1.56
CROP_SHIFT = -0.07
#: with crop_mode "auto", a square image at most this large whose face (if detected) is large is used whole
CROP_MAX_SIDE = 160
#: the soft ellipse (centre x, y, radii x, y as fractions of the crop) that covers the face in that framing
PASTE_ELLIPSE = (0.5, 0.5, 0.40, 0.47)


@dataclass(frozen=True)
class FaceBox:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def _dlib():
    try:
        import dlib
    except ImportError:
        raise NoFaceError("face detection needs dlib (pip install dlib-bin); it is not installed") from None
    return dlib


_DETECTOR = None


def detect_faces(image: np.ndarray, max_side: int = 1024, upsample: int = 0) -> list[FaceBox]:
    """dlib HOG frontal faces in an RGB float image, as boxes in input pixels, largest first."""
    import cv2

    global _DETECTOR
    dlib = _dlib()
    if _DETECTOR is None:
        _DETECTOR = dlib.get_frontal_face_detector()
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1.0 else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                  interpolation=cv2.INTER_AREA)
    grey = (np.clip(small @ np.array([0.299, 0.587, 0.114], dtype=np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    rects, scores, _ = _DETECTOR.run(np.ascontiguousarray(grey), int(upsample), 0.0)
    boxes = [FaceBox(r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale, float(s))
             for r, s in zip(rects, scores)]
    return sorted(boxes, key=lambda b: -b.width * b.height)


def crop_box(box: FaceBox) -> tuple[float, float, float]:
    """A detector box → the square crop (centre x, centre y, side) in input pixels, framed like the training faces."""
    side = CROP_SCALE * box.width
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2 + CROP_SHIFT * box.height, side


def extract_crop(image: np.ndarray, cx: float, cy: float, side: float, size: int = INPUT_SIZE) -> np.ndarray:
    """The square (cx, cy, side) of an RGB image resized to size×size (area averaging; borders replicated).

    Only the square is copied (padded where it leaves the image), never the whole photo."""
    import cv2

    h, w = image.shape[:2]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if ix1 <= ix0 or iy1 <= iy0:
        raise NoFaceError(f"the face crop ({x0}, {y0}, side {s}) lies outside the {w}×{h} image")
    region = np.ascontiguousarray(image[iy0:iy1, ix0:ix1])
    pads = (iy0 - y0, y0 + s - iy1, ix0 - x0, x0 + s - ix1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return np.clip(cv2.resize(region, (size, size), interpolation=interp), 0, 1).astype(np.float32)


def paste_mask(size: int) -> np.ndarray:
    """Soft ellipse (size, size) in [0, 1] used to paste a face's results back onto the photo."""
    ex, ey, rx, ry = PASTE_ELLIPSE
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    d = ((t[None, :] - ex) / rx) ** 2 + ((t[:, None] - ey) / ry) ** 2
    return np.clip((1.0 - d) / 0.15, 0, 1).astype(np.float32)


def _paste(canvas: np.ndarray, layer: np.ndarray, cx: float, cy: float, side: float, scale: float,
           hard: bool = False) -> None:
    """Blend a (128, 128, C) layer into ``canvas`` (scaled by ``scale`` from input pixels) inside the paste mask,
    in place (soft edge; ``hard``: replace where the mask passes 0.5, e.g. for unit normals)."""
    import cv2

    hc, wc = canvas.shape[:2]
    s = max(2, int(round(side * scale)))
    x0, y0 = int(round((cx - side / 2) * scale)), int(round((cy - side / 2) * scale))
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(wc, x0 + s), min(hc, y0 + s)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    resized = cv2.resize(layer, (s, s), interpolation=cv2.INTER_LINEAR if s > layer.shape[0] else cv2.INTER_AREA)
    if resized.ndim == 2:
        resized = resized[..., None]
    alpha = cv2.resize(paste_mask(INPUT_SIZE), (s, s), interpolation=cv2.INTER_LINEAR)
    sub = (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))
    region = canvas[ay0:ay1, ax0:ax1]
    if hard:
        inside = alpha[sub] > 0.5
        values = resized[sub][inside]
        region[inside] = values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-6)
        return
    delta = resized[sub] - region
    delta *= alpha[sub][..., None]
    region += delta


# --- runner ---------------------------------------------------------------------------------------------------------

def _load(weights: str | None, device: torch.device) -> tuple[SfSNet, dict]:
    return load_network("sfsnet", weights, device, model_from_state)


def find_crops(image: np.ndarray, params: Mapping[str, Any], small: np.ndarray | None = None
               ) -> list[tuple[FaceBox, tuple[float, float, float]]]:
    """The faces to decompose: (box in input pixels, crop square), largest first, at most ``max_faces``.

    ``small`` is an optional downscaled copy of ``image`` to run the detector on (saves a second resize)."""
    h, w = image.shape[:2]
    mode = params["crop_mode"]
    whole = FaceBox(0.0, 0.0, float(w), float(h), 0.0)
    if mode == "whole":
        return [(whole, (w / 2, h / 2, float(max(h, w))))]
    source = image if small is None else small
    f = w / source.shape[1]
    boxes = [FaceBox(b.x0 * f, b.y0 * f, b.x1 * f, b.y1 * f, b.score)
             for b in detect_faces(source, int(params["detect_max_side"]), int(params["upsample"]))]
    looks_like_crop = mode == "auto" and max(h, w) <= CROP_MAX_SIDE and 0.8 <= w / h <= 1.25
    if looks_like_crop and (not boxes or boxes[0].width >= 0.35 * w):
        return [(whole, (w / 2, h / 2, float(max(h, w))))]  # already an aligned face crop, as in face datasets
    if not boxes:
        raise NoFaceError(f"no face found in the {w}×{h} photo (dlib's frontal-face detector finds upright faces "
                          f"seen from the front, at least ~80 px tall at the detection scale of "
                          f"{int(params['detect_max_side'])} px; try upsample = 1 for small faces, or crop_mode = "
                          f"whole for a photo that is already a face crop)")
    return [(b, crop_box(b)) for b in boxes[:int(params["max_faces"])]]


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    import cv2

    image = inputs.image
    h, w = image.shape[:2]
    scale = min(1.0, int(params["output_max_side"]) / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    with ctx.timed("downscale"):  # one area resize serves the detector and the pasted-back layers
        base = image if scale == 1.0 else cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
    with ctx.timed("detect"):
        faces = find_crops(image, params, base)
    ctx.progress(0.2, f"{len(faces)} face(s)")
    with ctx.timed("load"):
        model, weights_info = _load(ctx.weights, ctx.device)
    with ctx.timed("crop"):
        # crop from the downscaled copy when it still holds at least twice the network's resolution
        crops = np.stack([extract_crop(base, cx * scale, cy * scale, side * scale) if side * scale >= 2 * INPUT_SIZE
                          else extract_crop(image, cx, cy, side) for _, (cx, cy, side) in faces])
    with ctx.timed("inference"), torch.no_grad():
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).to(ctx.device)
        out = predict(model, x)
        relit = None
        if params["relight"] != "none":
            az, el = ((float(params["light_azimuth"]), float(params["light_elevation"]))
                      if params["relight"] == "custom" else PRESETS[params["relight"]])
            relit = relight(out["albedo"], out["normals"], out["sh"], azimuth_deg=az, elevation_deg=el)
        sphere = lit_sphere(out["sh"], INPUT_SIZE)
    ctx.progress(0.7, "pasting back")
    with ctx.timed("paste"):
        hwc = {k: v.permute(0, 2, 3, 1).float().cpu().numpy() for k, v in out.items() if v.ndim == 4}
        spheres = sphere.permute(0, 2, 3, 1).cpu().numpy()
        relit_np = relit.permute(0, 2, 3, 1).cpu().numpy() if relit is not None else None
        base = base.astype(np.float32, copy=False)
        layers = {"normals": np.zeros((*size, 3), np.float32), "albedo": base.copy(),
                  "shading": np.zeros((*size, 3), np.float32), "reconstruction": base.copy()}
        if relit_np is not None:
            layers["relit"] = base.copy()
        for i, (_, (cx, cy, side)) in enumerate(faces):
            _paste(layers["normals"], hwc["normals"][i], cx, cy, side, scale, hard=True)
            _paste(layers["albedo"], np.clip(hwc["albedo"][i], 0, 1), cx, cy, side, scale)
            _paste(layers["shading"], np.clip(hwc["shading"][i], 0, None), cx, cy, side, scale)
            _paste(layers["reconstruction"], np.clip(hwc["reconstruction"][i], 0, 1), cx, cy, side, scale)
            if relit_np is not None:
                _paste(layers["relit"], relit_np[i], cx, cy, side, scale)
        shading_scale = float(max(1.0, np.percentile(hwc["shading"], 99)))
        np.clip(layers["shading"] / shading_scale, 0, 1, out=layers["shading"])
        layers["lighting"] = np.concatenate(list(spheres), axis=1)
        panels = []
        for i in range(len(faces)):
            row = [crops[i], (hwc["normals"][i] + 1) / 2, hwc["albedo"][i], hwc["shading"][i] / shading_scale,
                   spheres[i], hwc["reconstruction"][i]]
            if relit_np is not None:
                row.append(relit_np[i])
            panels.append(np.clip(np.concatenate(row, axis=1), 0, 1))
        layers["faces"] = np.stack(panels).astype(np.float32)
    boxes = [[round(b.x0, 1), round(b.y0, 1), round(b.x1, 1), round(b.y1, 1)] for b, _ in faces]
    sh = out["sh"].cpu().numpy().astype(float)
    ctx.progress(1.0, "done")
    return MethodResult(
        layers={k: v.astype(np.float32, copy=False) for k, v in layers.items()},
        values={"sh": sh[0].tolist(), "sh_all_faces": sh.tolist(), "face_boxes": boxes},
        info={"weights": weights_info, "faces": [{"box": bx, "crop": [round(v, 1) for v in sq],
                                                  "detector_score": round(b.score, 3)}
                                                 for bx, (b, sq) in zip(boxes, faces)],
              "shading_scale": shading_scale, "output_scale": scale, "network_width": model.width,
              "normals_convention": "camera space: x right, y up, z toward the camera"})


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="sfsnet", name="synthetic",
        description="quarter width, trained by this project on the CPU on Surrey Face Model renders "
                    "(engine.synth.faces; 3,114 steps, then 1,312 with cast shadows, then 1,000 with hard side "
                    "lights, then 2,500 with photo backgrounds and photo skin detail): 10.5° mean normal error on "
                    "held-out synthetic faces, 11.7° on faces textured from unseen photographs, 12 % of a cast "
                    "shadow in the albedo; on real photos the normals still carry facial texture and side-lit faces "
                    "keep some shadow in the albedo (see the card)",
        filename="sfsnet-synthetic.safetensors",
        sha256="eae07c5683dc29243a7942f20466e1b0b81b9ca558803532c84b3aecba4d6c15",
        licence="project weights; trained on renders of the Surrey Face Model (with Kodak24 and CBSD68 photo "
                "crops): non-commercial use only",
        model_card="assets/model_cards/sfsnet-synthetic.md",
    ))
    declare_weights(WeightSet(
        method="sfsnet", name="official", official=True, format="caffe-hdf5",
        description="the authors' Caffe weights (synthetic + pseudo-labelled CelebA), full width",
        source_url="https://github.com/senguptaumd/SfSNet", source_filename="SfSNet.caffemodel.h5",
        licence="see the authors' repository", converter="engine.methods.sfsnet:convert_official",
    ))


_declare_weights()

SPEC = register(MethodSpec(
    name="sfsnet", title="SfSNet", year=2018, task=Task.FACE,
    paper="S. Sengupta, A. Kanazawa, C. D. Castillo and D. W. Jacobs. SfSNet: Learning Shape, Reflectance and "
          "Illuminance of Faces in the Wild. CVPR 2018.",
    summary="Faces in a photo are detected and cropped; per face a network predicts normals, albedo and 27 SH "
            "lighting coefficients; shading, reconstruction and relighting follow, pasted back onto the photo.",
    input_kind=InputKind.FACE,
    outputs=(
        OutputSpec("normals", OutputKind.NORMALS, "surface normals, camera space (x right, y up, z toward the "
                   "camera), faces pasted onto the photo; zero elsewhere", "none", role=Role.NORMALS),
        OutputSpec("albedo", OutputKind.IMAGE, "albedo of each face pasted onto the photo", "srgb",
                   role=Role.REFLECTANCE),
        OutputSpec("shading", OutputKind.IMAGE, "SH shading of each face (divided by shading_scale)", "srgb",
                   role=Role.SHADING),
        OutputSpec("reconstruction", OutputKind.IMAGE, "albedo · shading pasted onto the photo", "srgb",
                   role=Role.RECONSTRUCTION),
        OutputSpec("lighting", OutputKind.IMAGE, "each face's estimated light on a grey sphere, side by side",
                   "srgb", role=Role.LIGHTING, same_size=False),
        OutputSpec("relit", OutputKind.IMAGE, "each face re-rendered with its albedo and normals under the chosen "
                   "light (parameter relight)", "srgb", role=Role.OTHER),
        OutputSpec("faces", OutputKind.IMAGE_STACK, "per face: crop | normals | albedo | shading | light | "
                   "reconstruction (| relit)", "srgb", role=Role.OTHER, same_size=False),
        OutputSpec("sh", OutputKind.VECTOR, "27 SH lighting coefficients (R 1–9, G 10–18, B 19–27) of the largest "
                   "face", "none", role=Role.LIGHTING),
        OutputSpec("sh_all_faces", OutputKind.VECTOR, "27 SH coefficients per face (largest first)", "none",
                   role=Role.LIGHTING),
        OutputSpec("face_boxes", OutputKind.VECTOR, "each face's detector box [x0, y0, x1, y1] in input pixels",
                   "none", role=Role.OTHER),
    ),
    params=(
        ParamSpec("relight", "front", "re-render the faces under a preset light (custom: use light_azimuth and "
                  "light_elevation)", str, choices=("none", *PRESETS, "custom")),
        ParamSpec("light_azimuth", 45.0, "custom light: degrees toward image right", float, -180.0, 180.0),
        ParamSpec("light_elevation", 20.0, "custom light: degrees up", float, -90.0, 90.0),
        ParamSpec("crop_mode", "auto", "detect: find faces; whole: the image is one face crop; auto: detect, but "
                  "use a square image of at most 160 px whole when it shows no face or one large face", str, choices=("auto", "detect", "whole")),
        ParamSpec("max_faces", 8, "largest number of faces decomposed (largest first)", int, 1, 64),
        ParamSpec("detect_max_side", 1024, "the detector sees the photo scaled to at most this side", int, 256,
                  4096),
        ParamSpec("upsample", 0, "detector upsampling steps (finds faces half as large per step; slower)", int, 0, 2),
        ParamSpec("output_max_side", 1600, "longest side of the pasted-back full-photo layers", int, 128, 8192),
    ),
    runner=lambda: run, learned=True,
    # Detection at 1024 px and 128-px crops; the photo is area-resized to output_max_side for the five pasted-back
    # layers. A 12 MP photo with one face (python -m engine run sfsnet, peak resident set): 0.49 GB of growth at
    # output_max_side 1600, 1.97 GB at full size, so about 18 bytes per photo pixel and 147 per output pixel; declared
    # with a margin. (The former flat 400 B/px refused 12 MP photos.)
    memory=DownscaledMemory("output_max_side", full_bytes=20, network_bytes=155),
    licence="MIT (this implementation); shipped weights: non-commercial (trained on Surrey Face Model renders)",
    provenance="architecture and the official weight layout from the paper and the authors' released model (layer names, shapes); "
               "weights trained by this project on engine.synth.faces renders",
    url="https://github.com/senguptaumd/SfSNet", min_side=32,
))
