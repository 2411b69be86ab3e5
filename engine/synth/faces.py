"""Synthetic training faces from the Surrey Face Model, with exact normals, albedo, shading, lighting and mask.

``python -m engine.synth.faces --n 1000 --out DIR`` writes a folder of faces; ``FaceRenderer.render(seeds)`` renders
a batch on any device (GPU when present) for training on the fly. Every face is a pure function of its seed.

**The model** (Huber et al., "A Multiresolution 3D Morphable Face Model and Fitting Framework", VISAPP 2016): the
public shape-only Surrey Face Model, 3448 vertices, 63 PCA shape components and 6 expression blendshapes, in the eos
binary (cereal) format. It is free for non-commercial use only and is **not** part of this repository: the renderer
reads it at run time from ``--model DIR``, the environment variable ``INTRINSIC_LAB_SFM`` or ``../shared/models/
surrey-face-model`` beside the repository, and raises :class:`FaceModelUnavailable` without it. Anything trained on
these renders inherits that non-commercial condition (stated in the model card).

eos file layout, read here with ``struct`` (little-endian, as written by eos' cereal binary archive):

* ``sfm_shape_3448.bin``: uint32 class version; the shape PCA model as three Eigen float32 matrices, each
  ``int32 rows, int32 cols`` then the data **column-major** (mean 3V×1, orthonormal basis 3V×63, eigenvalues 63×1),
  then the triangle list (``uint64 n`` then n × 3 int32); an empty colour model (the same layout with zero rows);
  texture coordinates (``uint64 n`` then n × 2 float64, in [0, 1]).
* ``expression_blendshapes_3448.bin``: ``uint64`` count, then per blendshape ``uint64`` name length, the name, and an
  Eigen float32 matrix 3V×1 (the vertex offsets).

Model coordinates are millimetres, x to the subject's left as seen by the camera (image right), y up, z out of the
face (toward the camera in a frontal view); triangles are counter-clockwise seen from the front.

**Rendering.** Random identity (N(0, 1) in units of the PCA standard deviations, clipped at ±3), expression (0–2
blendshapes), pose (yaw ±45°, pitch ±20°, roll ±12°) and framing (the face's height fills 70–90 % of the crop, shifted
by up to 4 %), orthographic camera. A small batched z-buffer rasteriser in torch (:func:`rasterise`) finds, per
pixel, the nearest front-facing triangle and its barycentric coordinates; vertex normals (area-weighted, camera space:
x right, y up, z toward the camera) and texture coordinates are interpolated. The albedo is a procedural texture in
the model's UV space: a skin tone drawn across the human range (pale to very dark), low-frequency blotches, pores,
optional freckles, redder cheeks and lips, eyebrows, eyes, optional stubble. Lighting is second-order SH
(:mod:`engine.ops.sh`): a tinted ambient term plus one or two coloured directional lights from the front hemisphere.
``shading = Σ L_k H_k(n)``, ``diffuse = albedo · shading`` exactly; the image adds, for most faces, a weak white
Phong highlight toward the dominant light (skin shine, which the albedo must not absorb) and sits on a procedural
background with hair and neck. With ``FaceRenderer(cast_shadows=p)``, a share p of the faces (drawn from each seed)
also has the **cast shadows** of its directional lights in the image (a shadow map per light, soft-edged; the
``shadowed`` layer is ``albedo`` times that shadowed shading), while ``shading``, ``diffuse`` and ``sh`` stay those
of the unshadowed face, which second-order SH can represent; with the default 0 every face renders as before.
``hard_shadows=q`` relights a share q of the shadowed faces by one strong side light over a weak ambient, with sharp
shadow edges (:func:`hard_side_light`). With real photographs (``photos``, e.g. from
:func:`engine.synth.scene.load_photo_textures`), ``photo_backgrounds=p`` puts a share p of the faces in front of a
random crop of a photo instead of the smooth procedural field (the hair and neck stay), and ``albedo_detail=q``
multiplies a share q of the skin textures by the high-pass detail of a photo crop (its ratio to its own blur:
moles, wrinkles, make-up, stray hair), which the **albedo target carries** too, so that a network learns to leave
real-looking texture in the albedo and out of the normals. Both draw from their own generator (seed-derived), so a
face's every other draw is the same with or without them. The
frame is rendered at ``supersample``× and area-averaged (anti-aliased edges); the mask marks the pixels fully covered
by the face, where every layer is exact.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.sh import directional_sh, shading as sh_shading

SFM_ENV = "INTRINSIC_LAB_SFM"
SHAPE_FILE = "sfm_shape_3448.bin"
EXPRESSION_FILE = "expression_blendshapes_3448.bin"
LICENCE = ("Surrey Face Model (shape-only, 3448 vertices): free for non-commercial use only "
           "(cvssp.org/facemodel); renders and anything trained on them are for non-commercial use")
TEXTURE_SIZE = 256
FACE_HEIGHT_MM = 188.0  # chin to top of the forehead of the mean shape


class FaceModelUnavailable(FileNotFoundError):
    """The Surrey Face Model files are not where the renderer looked."""


# --- reading the eos binary files ------------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.offset = data, name, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def matrix(self) -> np.ndarray:
        rows, cols = self.take("ii")
        if rows < 0 or cols < 0 or self.offset + 4 * rows * cols > len(self.data):
            raise ValueError(f"{self.name}: bad matrix header {rows}×{cols} at byte {self.offset - 8}")
        flat = np.frombuffer(self.data, np.float32, rows * cols, self.offset)
        self.offset += 4 * rows * cols
        return flat.reshape(cols, rows).T.copy()  # Eigen's default storage is column-major

    def triangles(self) -> np.ndarray:
        (n,) = self.take("Q")
        tris = np.frombuffer(self.data, np.int32, 3 * n, self.offset).reshape(n, 3).astype(np.int64)
        self.offset += 12 * n
        return tris


def read_eos_shape_model(path: str | Path) -> dict[str, np.ndarray]:
    """The shape PCA model and texture coordinates of an eos ``.bin`` morphable model (see the module docstring)."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path.name)
    (version,) = r.take("I")
    mean, basis, eigenvalues = r.matrix(), r.matrix(), r.matrix()
    triangles = r.triangles()
    for _ in range(3):  # the colour model: empty in the shape-only SFM
        r.matrix()
    r.triangles()
    (n_uv,) = r.take("Q")
    uv = np.frombuffer(r.data, np.float64, 2 * n_uv, r.offset).reshape(n_uv, 2).copy()
    r.offset += 16 * n_uv
    n_vertices = mean.shape[0] // 3
    if basis.shape != (3 * n_vertices, eigenvalues.shape[0]) or triangles.max() >= n_vertices or n_uv != n_vertices:
        raise ValueError(f"{path.name}: inconsistent model (mean {mean.shape}, basis {basis.shape}, "
                         f"{n_uv} texture coordinates); version {version}")
    return {"mean": mean[:, 0].reshape(-1, 3), "basis": basis, "eigenvalues": eigenvalues[:, 0],
            "triangles": triangles, "uv": uv}


def read_eos_blendshapes(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Names and (E, 3V) vertex offsets of an eos blendshapes ``.bin`` file."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path.name)
    (count,) = r.take("Q")
    names, offsets = [], []
    for _ in range(count):
        (length,) = r.take("Q")
        names.append(r.data[r.offset:r.offset + length].decode("utf-8"))
        r.offset += length
        offsets.append(r.matrix()[:, 0])
    return names, np.stack(offsets)


def find_face_model(path: str | Path | None = None) -> Path:
    """The folder holding the SFM files: ``path``, ``$INTRINSIC_LAB_SFM``, or ``../shared/models/surrey-face-model``."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [Path(path)] if path else []
    if os.environ.get(SFM_ENV):
        candidates.append(Path(os.environ[SFM_ENV]))
    shared = os.environ.get("INTRINSIC_LAB_SHARED")
    if shared:
        candidates.append(Path(shared) / "models" / "surrey-face-model")
    candidates.append(repo / ".." / "shared" / "models" / "surrey-face-model")
    for folder in candidates:
        if (folder / SHAPE_FILE).is_file() and (folder / EXPRESSION_FILE).is_file():
            return folder.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise FaceModelUnavailable(f"the Surrey Face Model ({SHAPE_FILE}, {EXPRESSION_FILE}) was not found (looked in "
                               f"{looked}); pass --model DIR or set {SFM_ENV}. It is free for non-commercial use from "
                               f"cvssp.org/facemodel (also shipped with eos).")


@dataclass(frozen=True)
class FaceModel:
    mean: np.ndarray  # (V, 3) mm
    basis: np.ndarray  # (3V, K) orthonormal
    eigenvalues: np.ndarray  # (K,)
    expression_names: tuple[str, ...]
    expressions: np.ndarray  # (E, 3V)
    triangles: np.ndarray  # (T, 3)
    uv: np.ndarray  # (V, 2)
    folder: str


@functools.lru_cache(maxsize=2)
def load_face_model(path: str | Path | None = None) -> FaceModel:
    folder = find_face_model(path)
    shape = read_eos_shape_model(folder / SHAPE_FILE)
    names, offsets = read_eos_blendshapes(folder / EXPRESSION_FILE)
    return FaceModel(shape["mean"], shape["basis"], shape["eigenvalues"], tuple(names), offsets, shape["triangles"],
                     shape["uv"], str(folder))


# --- the rasteriser --------------------------------------------------------------------------------------------

def rasterise(screen: torch.Tensor, triangles: torch.Tensor, height: int, width: int, max_box: int = 48
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer rasterisation of a batch of meshes sharing one triangle list.

    ``screen`` (B, V, 3): x, y in pixels (pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5; y grows down) and
    a depth that grows toward the camera. Triangles whose corners are counter-clockwise in a y-up frame (facing the
    camera; clockwise on the y-down screen) are drawn. Returns the triangle index per pixel (B, H, W) (−1 where empty) and
    the barycentric coordinates (B, H, W, 3). Each triangle tests the pixels of its bounding box (at most
    ``max_box`` pixels a side), so the cost follows the covered area, not H·W·T.
    """
    b, _, _ = screen.shape
    n_tri = triangles.shape[0]
    corners = screen[:, triangles]  # (B, T, 3, 3)
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    ix0 = torch.ceil(x.min(-1).values - 0.5).clamp(min=0)
    iy0 = torch.ceil(y.min(-1).values - 0.5).clamp(min=0)
    ix1 = torch.floor(x.max(-1).values - 0.5).clamp(max=width - 1)
    iy1 = torch.floor(y.max(-1).values - 0.5).clamp(max=height - 1)
    bw, bh = ix1 - ix0 + 1, iy1 - iy0 + 1
    keep = (area < -1e-9) & (bw > 0) & (bh > 0)  # clockwise on a y-down screen = facing the camera
    flat_keep = keep.flatten().nonzero()[:, 0]
    tri_id = torch.full((b * height * width,), -1, dtype=torch.long, device=screen.device)
    bary = torch.zeros(b * height * width, 3, device=screen.device)
    if flat_keep.numel() == 0:
        return tri_id.view(b, height, width), bary.view(b, height, width, 3)
    side = torch.maximum(bw, bh).flatten()[flat_keep]
    parts = []
    lower = 0
    for upper in (4, 8, 16, max_box):  # bucket triangles by box size: the cost follows their real area
        chosen = ((side > lower) & (side <= upper)).nonzero()[:, 0]
        lower = upper
        if chosen.numel() == 0:
            continue
        box = int(side[chosen].max())
        idx = flat_keep[chosen]
        sel = lambda t: t.reshape(b * n_tri, *t.shape[2:])[idx]  # noqa: E731
        xs, ys, zs, ar = sel(x), sel(y), sel(z), sel(area)
        offsets = torch.arange(box, device=screen.device, dtype=screen.dtype)
        px = (sel(ix0)[:, None, None] + offsets[None, None, :]).expand(-1, box, box)  # (M, box, box)
        py = (sel(iy0)[:, None, None] + offsets[None, :, None]).expand(-1, box, box)
        inside_box = (px <= sel(ix1)[:, None, None]) & (py <= sel(iy1)[:, None, None])
        cx, cy = px + 0.5, py + 0.5
        xe = [xs[:, k, None, None] for k in range(3)]
        ye = [ys[:, k, None, None] for k in range(3)]
        a = ar[:, None, None]
        w0 = ((xe[1] - cx) * (ye[2] - cy) - (xe[2] - cx) * (ye[1] - cy)) / a
        w1 = ((xe[2] - cx) * (ye[0] - cy) - (xe[0] - cx) * (ye[2] - cy)) / a
        w2 = 1.0 - w0 - w1
        inside = inside_box & (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        depth = w0 * zs[:, 0, None, None] + w1 * zs[:, 1, None, None] + w2 * zs[:, 2, None, None]
        pixel = ((idx // n_tri)[:, None, None] * height + py.long()) * width + px.long()
        owner = (idx % n_tri)[:, None, None].expand(-1, box, box)
        parts.append((pixel[inside], depth[inside], owner[inside], torch.stack([w0, w1, w2], -1)[inside]))
    pixel, depth, owner, weights = (torch.cat(t) for t in zip(*parts))
    zbuf = torch.full((b * height * width,), -math.inf, device=screen.device, dtype=depth.dtype)
    zbuf = zbuf.scatter_reduce(0, pixel, depth, "amax")
    front = depth >= zbuf[pixel]
    tri_id = tri_id.scatter_reduce(0, pixel[front], owner[front], "amax")
    win = front & (owner == tri_id[pixel])
    bary[pixel[win]] = weights[win].clamp(min=0)
    bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-12)
    return tri_id.view(b, height, width), bary.view(b, height, width, 3)


def interpolate(attributes: torch.Tensor, triangles: torch.Tensor, tri_id: torch.Tensor, bary: torch.Tensor
                ) -> torch.Tensor:
    """Per-vertex attributes (B, V, C) → per-pixel (B, C, H, W) (zero where no triangle)."""
    b, h, w = tri_id.shape
    safe = tri_id.clamp(min=0)
    corner_vertices = triangles[safe]  # (B, H, W, 3)
    batch = torch.arange(b, device=tri_id.device).view(b, 1, 1, 1)
    values = attributes[batch, corner_vertices]  # (B, H, W, 3, C)
    out = (values * bary[..., None]).sum(-2) * (tri_id >= 0)[..., None]
    return out.permute(0, 3, 1, 2)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (B, V, 3) of counter-clockwise triangles."""
    v = vertices[:, triangles]  # (B, T, 3, 3)
    face = torch.cross(v[:, :, 1] - v[:, :, 0], v[:, :, 2] - v[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals.index_add_(1, triangles[:, k], face)
    return F.normalize(normals, dim=-1)


def rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) angles in radians → (B, 3, 3) = Rz(roll) · Rx(pitch) · Ry(yaw); yaw > 0 turns the face to image right."""
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ rx @ ry


# --- procedural appearance -------------------------------------------------------------------------------------

#: sRGB-ish skin albedos from very pale to very dark (interpolated along the list)
SKIN_TONES = np.array([[0.93, 0.78, 0.70], [0.87, 0.69, 0.58], [0.80, 0.60, 0.47], [0.70, 0.50, 0.37],
                       [0.58, 0.40, 0.28], [0.45, 0.30, 0.21], [0.33, 0.22, 0.15], [0.24, 0.16, 0.11]],
                      dtype=np.float32)
HAIR_COLOURS = np.array([[0.05, 0.04, 0.03], [0.15, 0.10, 0.06], [0.32, 0.21, 0.12], [0.55, 0.40, 0.24],
                         [0.80, 0.66, 0.42], [0.45, 0.20, 0.10], [0.55, 0.55, 0.55]], dtype=np.float32)


def _smooth_noise(gen: torch.Generator, channels: int, cells: int, size: int) -> torch.Tensor:
    """(channels, size, size) noise, roughly unit variance, smooth at the scale of size / cells (on gen's device)."""
    coarse = torch.randn(1, channels, cells, cells, generator=gen, device=gen.device)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]


def _strands(gen: torch.Generator, size: int) -> torch.Tensor:
    """(1, size, size) noise stretched vertically, like hair strands."""
    coarse = torch.randn(1, 1, 6, 48, generator=gen, device=gen.device)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]


def _ellipse(px: torch.Tensor, py: torch.Tensor, cx: float, cy: float, rx: float, ry: float, soft: float
             ) -> torch.Tensor:
    d = ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2
    return torch.sigmoid((1.0 - d) / soft)


@dataclass
class FaceParams:
    """Everything random about one face (drawn by :func:`sample_face` from its seed)."""

    seed: int
    identity: torch.Tensor  # (K,) in standard deviations
    expression: torch.Tensor  # (E,) blendshape weights
    yaw: float
    pitch: float
    roll: float
    fill: float  # face height / crop height
    shift: tuple[float, float]  # centre offset, fraction of the crop
    sh: torch.Tensor  # (27,)
    texture: torch.Tensor  # (3, T, T) albedo in UV space
    background: torch.Tensor  # (3, S, S) at the render size
    specular: tuple[float, float] = (0.0, 1.0)  # strength, Phong exponent (added to the image only)
    #: the directional lights of ``sh``: (unit direction toward the light, camera space; RGB intensity) each
    lights: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    #: cast shadows in the image: (on, penumbra width in shadow-map pixels); off unless the renderer asks for them
    shadow: tuple[bool, float] = (False, 1.0)


def sample_lighting(gen: torch.Generator, lights: list | None = None) -> torch.Tensor:
    """Realistic SH lighting: tinted ambient plus one or two coloured directional lights (27 coefficients).
    ``lights``, when given, receives each directional light as (unit direction, RGB intensity)."""
    def u(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    def tint(spread):
        c = torch.tensor([1.0, 1.0, 1.0]) + spread * (torch.rand(3, generator=gen) - 0.5)
        return c / c.mean()

    ambient = u(0.15, 0.6)
    sh = torch.zeros(27)
    sh[0::9] = ambient * tint(0.25) / math.pi * math.sqrt(4 * math.pi)  # L0 · C1 = ambient
    for k in range(1 if float(torch.rand((), generator=gen)) < 0.6 else 2):
        azimuth = math.radians(u(-85, 85))
        elevation = math.radians(u(-35, 70))
        d = torch.tensor([math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                          math.cos(azimuth) * math.cos(elevation)])
        strength = u(0.5, 1.0) * (1.0 if k == 0 else u(0.2, 0.6))
        colour = strength * tint(0.35)
        sh = sh + directional_sh(d, colour)
        if lights is not None:
            lights.append((d, colour))
    return sh


class FaceRenderer:
    """Renders batches of random faces on one device. ``render(seeds)`` → dict of (B, C, H, W) tensors.

    >>> renderer = FaceRenderer(size=64)           # doctest: +SKIP
    >>> batch = renderer.render([0, 1, 2])         # doctest: +SKIP
    >>> sorted(batch)                              # doctest: +SKIP
    ['albedo', 'image', 'mask', 'normals', 'shading', 'sh']
    """

    def __init__(self, model: FaceModel | str | Path | None = None, size: int = 128, device="cpu",
                 supersample: int = 2, cast_shadows: float = 0.0, hard_shadows: float = 0.0,
                 photos: list[torch.Tensor] | None = None, photo_backgrounds: float = 0.0, albedo_detail: float = 0.0):
        if not isinstance(model, FaceModel):
            model = load_face_model(model)
        self.model, self.size, self.supersample = model, int(size), int(supersample)
        if not 0.0 <= float(cast_shadows) <= 1.0:
            raise ValueError(f"cast_shadows is a probability, got {cast_shadows}")
        self.cast_shadows = float(cast_shadows)
        if not 0.0 <= float(hard_shadows) <= 1.0:
            raise ValueError(f"hard_shadows is a probability, got {hard_shadows}")
        self.hard_shadows = float(hard_shadows)
        for name, value in (("photo_backgrounds", photo_backgrounds), ("albedo_detail", albedo_detail)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} is a probability, got {value}")
        self.photo_backgrounds, self.albedo_detail = float(photo_backgrounds), float(albedo_detail)
        self.photos = [torch.as_tensor(p, dtype=torch.float32) for p in (photos or [])]
        if (self.photo_backgrounds > 0 or self.albedo_detail > 0) and not self.photos:
            raise ValueError("photo_backgrounds and albedo_detail need photos (a list of (3, H, W) tensors in [0, 1])")
        for p in self.photos:
            if p.ndim != 3 or p.shape[0] != 3 or min(p.shape[1:]) < 16:
                raise ValueError(f"a photo must be a (3, H, W) tensor with sides of at least 16, got {tuple(p.shape)}")
        self.device = torch.device(device)
        dev = self.device
        self.mean = torch.from_numpy(model.mean).float().to(dev)
        self.basis = torch.from_numpy(model.basis * np.sqrt(np.maximum(model.eigenvalues, 0))[None]).float().to(dev)
        self.expressions = torch.from_numpy(model.expressions).float().to(dev)
        self.triangles = torch.from_numpy(model.triangles).to(dev)
        self.uv = torch.from_numpy(model.uv).float().to(dev)
        # the centre the camera frames: midway between chin and forehead, on the face's axis
        self.centre = torch.tensor([0.0, float(model.mean[:, 1].max() + model.mean[:, 1].min()) / 2, 0.0], device=dev)
        self._position_map()

    def _position_map(self) -> None:
        """Rasterise the mean shape in UV space once: the 3D position (mm) of each texel, for painting regions."""
        t = TEXTURE_SIZE
        screen = torch.cat([self.uv * t, torch.zeros_like(self.uv[:, :1])], 1)[None]
        # UV triangles may wind either way: draw both orientations
        tri_a, bary_a = rasterise(screen, self.triangles, t, t)
        tri_b, bary_b = rasterise(screen, self.triangles[:, [0, 2, 1]], t, t)
        pos_a = interpolate(self.mean[None], self.triangles, tri_a, bary_a)
        pos_b = interpolate(self.mean[None], self.triangles[:, [0, 2, 1]], tri_b, bary_b)
        covered_a = (tri_a >= 0)[:, None]
        self.texel_pos = torch.where(covered_a, pos_a, pos_b)[0]  # (3, T, T)
        self.texel_mask = ((tri_a >= 0) | (tri_b >= 0))[0]
        # the regions that do not depend on the face's random draws, computed once (fewer kernels per face)
        x, y, _ = self.texel_pos
        dev = self.device
        self._fixed = {
            "cheeks": (_ellipse(x, y, 38, -10, 22, 18, 0.3) + _ellipse(x, y, -38, -10, 22, 18, 0.3)
                       + _ellipse(x, y, 0, 0, 12, 18, 0.3)).clamp(0, 1),
            "freckle_area": _ellipse(x, y, 0, 0, 60, 40, 0.5) * torch.tensor([0.8, 1.0, 1.1], device=dev).view(3, 1, 1),
            "beard": torch.sigmoid((-30 - y) / 4) * (1 - _ellipse(x, y, 0, -52, 22, 10, 0.2)),
            "red": torch.tensor([1.06, 0.94, 0.94], device=dev).view(3, 1, 1) - 1,
            "lip_tint": torch.tensor([0.85, 0.55, 0.58], device=dev).view(3, 1, 1),
            "sclera": torch.tensor([0.85, 0.82, 0.80], device=dev).view(3, 1, 1),
        }
        for side in (-1, 1):
            cx = side * 33.0
            eye = _ellipse(x, y, cx, 31, 14, 5.0, 0.15)
            self._fixed[side] = {
                "brow_dist": (y - (47.0 - 0.012 * (x - cx) ** 2)).abs(),
                "brow_span": torch.sigmoid((24 - (x - cx).abs()) / 2),
                "eye": eye, "iris": _ellipse(x, y, cx, 31, 5.5, 5.5, 0.15) * eye,
                "lash": 0.6 * (_ellipse(x, y, cx, 31, 16, 7, 0.15) - eye),
            }

    # --- sampling ------------------------------------------------------------------------------------------
    def sample(self, seed: int) -> FaceParams:
        gen = torch.Generator().manual_seed(int(seed) * 7919 + 17)  # scalars, on the CPU
        field = torch.Generator(device=self.device).manual_seed(int(seed) * 7919 + 18)  # noise fields, on the device

        def u(lo, hi):
            return lo + (hi - lo) * float(torch.rand((), generator=gen))

        k = self.basis.shape[1]
        identity = torch.randn(k, generator=gen).clamp(-3, 3) * u(0.7, 1.2)
        expression = torch.zeros(len(self.model.expression_names))
        for _ in range(int(torch.randint(0, 3, (), generator=gen))):
            expression[int(torch.randint(0, expression.numel(), (), generator=gen))] += u(0.1, 0.9)
        yaw = math.radians(float(torch.randn((), generator=gen)) * 18)
        yaw = max(-45.0, min(45.0, math.degrees(yaw)))
        pitch = max(-20.0, min(20.0, float(torch.randn((), generator=gen)) * 9))
        roll = max(-12.0, min(12.0, float(torch.randn((), generator=gen)) * 5))
        fill = u(0.70, 0.90)
        shift = (u(-0.04, 0.04), u(-0.04, 0.04))
        lights: list = []
        sh = sample_lighting(gen, lights)
        photo_bg = detail = None
        if self.photos and (self.photo_backgrounds > 0 or self.albedo_detail > 0):
            pgen = torch.Generator().manual_seed(int(seed) * 7919 + 19)  # photo draws, apart from every other draw
            if float(torch.rand((), generator=pgen)) < self.photo_backgrounds:
                photo_bg = self._photo_crop(pgen, self.size * self.supersample, 0.3, 1.0) * u01(pgen, 0.5, 1.1)
            if float(torch.rand((), generator=pgen)) < self.albedo_detail:
                detail = self._photo_detail(pgen)
        texture = self._texture(gen, field)
        if detail is not None:
            texture = (texture * detail).clamp(0.01, 0.98)
        background = self._background(gen, field, fill, shift, base=photo_bg)
        specular = (u(0.0, 0.25) if float(torch.rand((), generator=gen)) < 0.7 else 0.0, u(6.0, 40.0))
        # drawn last, so that every earlier draw (and every face rendered without shadows) is as before
        shadow = (float(torch.rand((), generator=gen)) < self.cast_shadows, u(0.5, 2.5))
        if shadow[0] and float(torch.rand((), generator=gen)) < self.hard_shadows:
            sh, lights, shadow = hard_side_light(gen, sh, lights)
        return FaceParams(int(seed), identity, expression, math.radians(yaw), math.radians(pitch), math.radians(roll),
                          fill, shift, sh, texture, background, specular, tuple(lights), shadow)

    def _texture(self, gen: torch.Generator, field: torch.Generator) -> torch.Tensor:
        t, dev = TEXTURE_SIZE, self.device
        x, y, z = self.texel_pos

        def u(lo, hi):
            return u01(gen, lo, hi)
        r = float(torch.rand((), generator=gen))
        tone_pos = r * (len(SKIN_TONES) - 1)
        lo = int(math.floor(tone_pos))
        hi = min(lo + 1, len(SKIN_TONES) - 1)
        base = torch.from_numpy(SKIN_TONES[lo] * (1 - (tone_pos - lo)) + SKIN_TONES[hi] * (tone_pos - lo))
        base = (base * (1 + 0.08 * (torch.rand(3, generator=gen) - 0.5))).to(dev)  # redness / yellowness
        skin = base.view(3, 1, 1) * torch.ones(3, t, t, device=dev)
        skin = skin * (1 + 0.06 * _smooth_noise(field, 1, 6, t)) * (1 + 0.03 * _smooth_noise(field, 3, 12, t))
        skin = skin * (1 + 0.025 * torch.randn(1, t, t, generator=field, device=dev))  # pores
        # redder cheeks and nose
        fixed = self._fixed
        skin = skin * (1 + fixed["red"] * (fixed["cheeks"] * u(0.2, 1.0)))
        if float(torch.rand((), generator=gen)) < 0.3:  # freckles
            dots = (torch.rand(1, t // 2, t // 2, generator=field, device=dev) > u(0.93, 0.985)).float()
            dots = F.interpolate(dots[None], size=(t, t), mode="bilinear", align_corners=False)[0]
            skin = skin * (1 - u(0.15, 0.35) * dots * fixed["freckle_area"])
        hair = torch.from_numpy(HAIR_COLOURS[int(torch.randint(0, len(HAIR_COLOURS), (), generator=gen))])
        hair = (hair.view(3, 1, 1) * (1 + 0.2 * (torch.rand(3, 1, 1, generator=gen) - 0.5))).to(dev)
        if float(torch.rand((), generator=gen)) < 0.2:  # stubble
            dots = (torch.rand(1, t, t, generator=field, device=dev) > 0.6).float() * u(0.2, 0.5)
            beard = fixed["beard"]
            skin = skin * (1 - dots * beard) + hair * dots * beard
        # lips
        lips = _ellipse(x, y, 0, -52, 24 * u(0.85, 1.15), 8 * u(0.8, 1.3), 0.25)
        lip_colour = base.view(3, 1, 1) * fixed["lip_tint"] * u(0.8, 1.1)
        skin = skin * (1 - lips) + lip_colour * lips
        # eyebrows: an arc above each eye, with hair strands
        strands = (0.6 + 0.4 * torch.rand(1, t, t, generator=field, device=dev)).clamp(0, 1)
        thick = u(2.5, 5.0)
        for side in (-1, 1):
            f = fixed[side]
            brow = torch.sigmoid((thick - f["brow_dist"]) / 1.5) * f["brow_span"]
            brow = brow * u(0.6, 1.0) * strands
            skin = skin * (1 - brow) + hair * brow
            # eyes: dark lash line, sclera and iris
            iris_colour = torch.from_numpy(HAIR_COLOURS[int(torch.randint(0, 4, (), generator=gen))]).view(3, 1, 1).to(dev)
            skin = skin * (1 - f["lash"])
            skin = skin * (1 - f["eye"]) + (fixed["sclera"] * (1 - f["iris"]) + iris_colour * f["iris"]) * f["eye"]
        return skin.clamp(0.01, 0.98)

    def _photo_crop(self, pgen: torch.Generator, out: int, lo: float, hi: float) -> torch.Tensor:
        """(3, out, out) on the device: a random square crop (side lo–hi of the photo's shorter side) of a random
        photo, flipped half of the time, resized with antialiasing."""
        photo = self.photos[int(torch.randint(0, len(self.photos), (), generator=pgen))]
        h, w = photo.shape[1:]
        side = max(8, int(round(min(h, w) * u01(pgen, lo, hi))))
        y0 = int(torch.randint(0, h - side + 1, (), generator=pgen))
        x0 = int(torch.randint(0, w - side + 1, (), generator=pgen))
        crop = photo[:, y0:y0 + side, x0:x0 + side]
        if float(torch.rand((), generator=pgen)) < 0.5:
            crop = crop.flip(-1)
        crop = F.interpolate(crop[None].to(self.device), size=(out, out), mode="bilinear", align_corners=False,
                             antialias=side > out)[0]
        return crop.clamp(0, 1)

    def _photo_detail(self, pgen: torch.Generator) -> torch.Tensor:
        """(3 or 1, T, T) multiplicative skin detail around 1: a photo crop over its own blur (σ ≈ 6 texels), grey
        (70 %) or in colour, at a strength of 0.15–0.6, clipped to 0.5–1.5."""
        t = TEXTURE_SIZE
        crop = self._photo_crop(pgen, t, 0.25, 0.6)
        if float(torch.rand((), generator=pgen)) < 0.7:
            crop = crop.mean(0, keepdim=True)
        blur = crop[None]
        for _ in range(3):  # three box filters ≈ a Gaussian
            blur = F.avg_pool2d(F.pad(blur, (5, 5, 5, 5), mode="replicate"), 11, stride=1)
        ratio = crop / blur[0].clamp(min=0.02)
        return (1 + u01(pgen, 0.15, 0.6) * (ratio - 1)).clamp(0.5, 1.5)

    def _background(self, gen: torch.Generator, field: torch.Generator, fill: float, shift: tuple[float, float],
                    base: torch.Tensor | None = None) -> torch.Tensor:
        """The procedural background (a smooth colour field, or ``base``, e.g. a photo crop), then neck and hair."""
        s, dev = self.size * self.supersample, self.device
        colour = (torch.rand(3, 1, 1, generator=gen) * u01(gen, 0.2, 0.9)).to(dev)
        # drawn even when ``base`` replaces it: the neck and hair below draw from ``field`` too and must not change
        bg = colour * (1 + 0.5 * _smooth_noise(field, 3, 3, s)) * (1 + 0.15 * _smooth_noise(field, 3, 16, s))
        if base is not None:
            bg = base.to(dev)
        tt = (torch.arange(s, dtype=torch.float32, device=dev) + 0.5) / s
        py, px = torch.meshgrid(tt, tt, indexing="ij")
        cx, cy = 0.5 + shift[0], 0.5 + shift[1]
        half = fill / 2
        if float(torch.rand((), generator=gen)) < 0.8:  # neck and shoulders in a skin/cloth colour
            neck_colour = (torch.rand(3, 1, 1, generator=gen) * 0.6 + 0.1).to(dev)
            neck = ((px - cx).abs() < half * 0.55) & (py > cy + half * 0.6)
            bg = torch.where(neck, neck_colour * (0.8 + 0.2 * _smooth_noise(field, 1, 4, s)), bg)
        if float(torch.rand((), generator=gen)) < 0.85:  # hair: a cap around the top of the head
            hair = torch.from_numpy(HAIR_COLOURS[int(torch.randint(0, len(HAIR_COLOURS), (), generator=gen))])
            hair = hair.view(3, 1, 1).to(dev) * (1 + 0.35 * _strands(field, s)).clamp(min=0.2)
            rx = half * u01(gen, 0.75, 1.05)
            ry = half * u01(gen, 0.85, 1.25)
            region = _ellipse(px, py, cx, cy - half * u01(gen, 0.1, 0.35), rx, ry, 0.05)
            if float(torch.rand((), generator=gen)) < 0.5:  # long hair
                region = torch.maximum(region, ((px - cx).abs() < rx).float() * (py > cy).float())
            bg = bg * (1 - region) + hair * region
        return bg.clamp(0, 1)

    # --- rendering ---------------------------------------------------------------------------------------
    def render(self, seeds) -> dict[str, torch.Tensor]:
        """Render faces for ``seeds`` (one face per seed) as a batch on the renderer's device."""
        return self.render_params([self.sample(s) for s in seeds])

    def render_params(self, params: list[FaceParams]) -> dict[str, torch.Tensor]:
        dev, size, ss = self.device, self.size, self.supersample
        big = size * ss
        identity = torch.stack([p.identity for p in params]).to(dev)
        expression = torch.stack([p.expression for p in params]).to(dev)
        offsets = identity @ self.basis.T + expression @ self.expressions
        vertices = self.mean[None] + offsets.view(len(params), -1, 3) - self.centre
        rot = rotation(*(torch.tensor([getattr(p, a) for p in params], device=dev) for a in ("yaw", "pitch", "roll")))
        camera = vertices @ rot.transpose(1, 2)
        normals = vertex_normals(camera, self.triangles)
        scale = torch.tensor([p.fill * big / FACE_HEIGHT_MM for p in params], device=dev).view(-1, 1)
        sx = torch.tensor([(0.5 + p.shift[0]) * big for p in params], device=dev).view(-1, 1)
        sy = torch.tensor([(0.5 + p.shift[1]) * big for p in params], device=dev).view(-1, 1)
        screen = torch.stack([sx + scale * camera[..., 0], sy - scale * camera[..., 1], camera[..., 2]], -1)
        tri_id, bary = rasterise(screen, self.triangles, big, big)
        covered = (tri_id >= 0)[:, None].float()
        n = F.normalize(interpolate(normals, self.triangles, tri_id, bary), dim=1) * covered
        uv = interpolate(self.uv[None].expand(len(params), -1, -1), self.triangles, tri_id, bary)
        texture = torch.stack([p.texture for p in params]).to(dev)
        grid = (uv.permute(0, 2, 3, 1) * 2 - 1)
        albedo = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False) * covered
        sh = torch.stack([p.sh for p in params]).to(dev)
        shade = sh_shading(n, sh) * covered
        # exposure: the 90th percentile of the face's shading lands between 0.75 and 1.15
        level = torch.stack([torch.quantile(shade[i].mean(0)[covered[i, 0] > 0], 0.9) if covered[i].sum() > 0
                             else shade.new_tensor(1.0) for i in range(len(params))])
        gen_levels = torch.tensor([0.75 + 0.4 * ((p.seed * 0.6180339887) % 1.0) for p in params], device=dev)
        gain = (gen_levels / level.clamp(min=1e-3)).view(-1, 1, 1, 1)
        shade, sh = shade * gain, sh * gain.view(-1, 1)
        background = torch.stack([p.background for p in params]).to(dev) * gain.clamp(max=1.5)
        # cast shadows (the image only): the SH shading cannot hold them, so the albedo and shading layers stay those
        # of the unshadowed face and the network must learn to leave shadows out of the albedo
        visible = self._cast_shadow_visibility(params, camera, normals, tri_id, bary, n, scale)  # (B, L, H, W)
        cast = shade
        for k in range(visible.shape[1]):
            light_sh = torch.stack([directional_sh(p.lights[k][0].to(dev), p.lights[k][1].to(dev))
                                    if k < len(p.lights) else torch.zeros(27, device=dev) for p in params])
            own = sh_shading(n, light_sh * gain.view(-1, 1)).clamp(min=0) * covered
            cast = cast - (1 - visible[:, k:k + 1]) * own
        cast = cast.clamp(min=0)
        face = albedo * cast
        # skin shine: a white Phong lobe toward the dominant (first-order SH) light, in the image only
        lum = sh.view(-1, 3, 9).mean(1)
        toward = F.normalize(torch.stack([lum[:, 2], lum[:, 3], lum[:, 1]], 1), dim=1)  # (x, y, z) of the light
        half = F.normalize(toward + torch.tensor([0.0, 0.0, 1.0], device=dev), dim=1)
        strength = torch.tensor([p.specular[0] for p in params], device=dev).view(-1, 1, 1, 1)
        exponent = torch.tensor([p.specular[1] for p in params], device=dev).view(-1, 1, 1, 1)
        n_dot_h = (n * half.view(-1, 3, 1, 1)).sum(1, keepdim=True).clamp(min=0)
        lit_side = ((n * toward.view(-1, 3, 1, 1)).sum(1, keepdim=True) > 0).float()
        level = gen_levels.view(-1, 1, 1, 1)
        shine = strength * level * n_dot_h ** exponent * lit_side * covered
        if visible.shape[1]:
            shine = shine * visible[:, :1]
        image = (face + shine) * covered + background * (1 - covered)
        pool = (lambda t: F.avg_pool2d(t, ss)) if ss > 1 else (lambda t: t)
        coverage = pool(covered)
        mask = (coverage > 0.999).float()
        out = {"image": pool(image).clamp(0, 1), "diffuse": pool(albedo * shade) * mask,
               "shadowed": pool(face) * mask,
               "albedo": pool(albedo) * mask, "shading": pool(shade) * mask,
               "normals": F.normalize(pool(n), dim=1) * mask, "mask": mask, "sh": sh}
        return out


    def _cast_shadow_visibility(self, params, camera, normals, tri_id, bary, n, scale) -> torch.Tensor:
        """(B, L, H, W) visibility of each face's directional lights (1: lit; all ones for faces without shadows).
        A shadow map per light: the mesh rasterised orthographically as seen from the light, then each pixel's
        surface point compared with the map's nearest depth, filtered over a 3×3 neighbourhood spaced by the face's
        penumbra width (soft edges), with a depth bias of two map pixels plus a slope term."""
        dev = camera.device
        b, big = len(params), tri_id.shape[-1]
        count = max((len(p.lights) for p in params if p.shadow[0]), default=0)
        visible = torch.ones(b, count, big, big, device=dev)
        if count == 0:
            return visible
        point = interpolate(camera, self.triangles, tri_id, bary)  # (B, 3, H, W) in mm
        for k in range(count):
            chosen = [i for i, p in enumerate(params) if p.shadow[0] and k < len(p.lights)]
            if not chosen:
                continue
            w = torch.stack([params[i].lights[k][0] for i in chosen]).to(dev)  # toward the light
            helper = torch.where((w[:, 1:2].abs() > 0.9), w.new_tensor([1.0, 0, 0]), w.new_tensor([0, 1.0, 0]))
            u = F.normalize(torch.cross(helper, w, dim=-1), dim=-1)
            v = torch.cross(w, u, dim=-1)
            verts = camera[chosen]
            lu, lv, lw = (verts * u[:, None]).sum(-1), (verts * v[:, None]).sum(-1), (verts * w[:, None]).sum(-1)
            lo_u, hi_u = lu.min(1, keepdim=True).values, lu.max(1, keepdim=True).values
            lo_v, hi_v = lv.min(1, keepdim=True).values, lv.max(1, keepdim=True).values
            s = torch.minimum(scale[chosen], 0.94 * big / torch.maximum(hi_u - lo_u, hi_v - lo_v))
            cu, cv = (lo_u + hi_u) / 2, (lo_v + hi_v) / 2
            screen = torch.stack([big / 2 + s * (lu - cu), big / 2 - s * (lv - cv), lw], -1)
            map_tri, map_bary = rasterise(screen, self.triangles, big, big)
            depth = interpolate(lw[..., None], self.triangles, map_tri, map_bary)  # (C, 1, H, W)
            depth = torch.where((map_tri >= 0)[:, None], depth, torch.full_like(depth, -1e9))
            p = point[chosen]
            pu = (p * u.view(-1, 3, 1, 1)).sum(1)
            pv = (p * v.view(-1, 3, 1, 1)).sum(1)
            pw = (p * w.view(-1, 3, 1, 1)).sum(1, keepdim=True)
            sv = s.view(-1, 1, 1)
            x = big / 2 + sv * (pu - cu.view(-1, 1, 1))
            y = big / 2 - sv * (pv - cv.view(-1, 1, 1))
            facing = (n[chosen] * w.view(-1, 3, 1, 1)).sum(1, keepdim=True).clamp(0, 1)
            bias = (2.0 + 4.0 * (1 - facing)) / s.view(-1, 1, 1, 1)
            spread = torch.tensor([params[i].shadow[1] for i in chosen], device=dev).view(-1, 1, 1)
            lit = torch.zeros_like(pw)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    gx = (x + dx * spread) / big * 2 - 1
                    gy = (y + dy * spread) / big * 2 - 1
                    near = F.grid_sample(depth, torch.stack([gx, gy], -1), mode="nearest", padding_mode="border",
                                         align_corners=False)
                    lit = lit + (pw >= near - bias).float()
            visible[chosen, k] = (lit / 9)[:, 0]
        return visible * (tri_id >= 0)[:, None].float() + (tri_id < 0)[:, None].float()


def hard_side_light(gen: torch.Generator, sh: torch.Tensor, lights: list) -> tuple[torch.Tensor, list, tuple]:
    """Relight a face for hard cast shadows (``FaceRenderer(hard_shadows=q)``): the key light moves to the side
    (azimuth 45–85° on its own side, elevation −10–45°, intensity 0.8–1.2 of a unit-mean colour), the ambient term
    drops to 0.08–0.25 and the penumbra narrows to 0.3–1 shadow-map pixels, as under a single window or lamp. The
    SH coefficients are rebuilt from the changed parts, so the targets stay exact."""
    ambient = sh - sum(directional_sh(d, c) for d, c in lights)  # the tinted ambient term alone
    level = float(ambient[0::9].mean()) * math.pi / math.sqrt(4 * math.pi)
    ambient = ambient * (u01(gen, 0.08, 0.25) / max(level, 1e-6))
    d0, c0 = lights[0]
    side = 1.0 if float(d0[0]) >= 0 else -1.0
    azimuth, elevation = math.radians(side * u01(gen, 45, 85)), math.radians(u01(gen, -10, 45))
    d = torch.tensor([math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                      math.cos(azimuth) * math.cos(elevation)])
    relit = [(d, c0 / c0.mean() * u01(gen, 0.8, 1.2)), *lights[1:]]
    return ambient + sum(directional_sh(dk, ck) for dk, ck in relit), relit, (True, u01(gen, 0.3, 1.0))


def load_face_photos(folder: str | Path, size: int = 256, limit: int = 200) -> list[torch.Tensor]:
    """Photographs under ``folder`` (recursively) as (3, size, size) centre crops for ``FaceRenderer(photos=...)``:
    :func:`engine.synth.scene.load_photo_textures`' linear values squeezed into an albedo range (0.02–0.92). Raises
    ValueError when the folder holds no readable image."""
    from .scene import load_photo_textures

    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: not a folder of photographs")
    photos = load_photo_textures(folder, size=size, limit=limit)
    if not photos:
        raise ValueError(f"{folder}: no readable photographs in it")
    return photos


def u01(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


# --- writing a folder ------------------------------------------------------------------------------------------

def write_faces(n: int, out: str | Path, seed: int = 0, size: int = 128, device="cpu", model=None,
                batch_size: int = 16, log=print, cast_shadows: float = 0.0, hard_shadows: float = 0.0,
                photo_dir: str | Path | None = None, photo_backgrounds: float = 0.0, albedo_detail: float = 0.0) -> Path:
    """Write ``n`` faces (seeds ``seed … seed+n−1``) as the Faces dataset layout: ``face_SEED_face.png`` (sRGB),
    ``_mask.png``, ``_normal.png`` ((n + 1) / 2, 16-bit), ``_albedo.png``, ``_shading.png`` (16-bit), and the SH
    coefficients in ``lighting.json``; ``manifest.json`` records the command. ``cast_shadows``: the share of faces
    whose image has cast shadows (the other layers never do); ``hard_shadows``: the share of those relit by one
    strong side light over a weak ambient, with sharp shadow edges (:func:`hard_side_light`); ``photo_dir``,
    ``photo_backgrounds`` and ``albedo_detail``: photo backgrounds and photo skin detail (:class:`FaceRenderer`)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_face_photos(photo_dir) if photo_dir else None
    renderer = FaceRenderer(model, size=size, device=device, cast_shadows=cast_shadows, hard_shadows=hard_shadows,
                            photos=photos, photo_backgrounds=photo_backgrounds, albedo_detail=albedo_detail)
    lighting = {}
    start = time.perf_counter()

    def png16(path, array):
        a = np.clip(array, 0, 1)
        cv2.imwrite(str(path), (a[..., ::-1] * 65535 + 0.5).astype(np.uint16))

    for first in range(seed, seed + n, batch_size):
        seeds = list(range(first, min(first + batch_size, seed + n)))
        batch = {k: v.cpu().numpy() for k, v in renderer.render(seeds).items()}
        for i, s in enumerate(seeds):
            stem = out / f"face_{s:07d}"
            hwc = {k: batch[k][i].transpose(1, 2, 0) for k in ("image", "albedo", "shading", "normals")}
            cv2.imwrite(f"{stem}_face.png", (np.clip(hwc["image"], 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
            cv2.imwrite(f"{stem}_mask.png", (batch["mask"][i, 0] * 255).astype(np.uint8))
            png16(f"{stem}_normal.png", (hwc["normals"] + 1) / 2)
            png16(f"{stem}_albedo.png", hwc["albedo"])
            png16(f"{stem}_shading.png", hwc["shading"] / 2)  # stored halved: shading may exceed 1
            lighting[f"face_{s:07d}"] = [round(float(v), 6) for v in batch["sh"][i]]
    manifest = {"kind": "sfm-faces", "n": n, "seed": seed, "size": size, "licence": LICENCE,
                "command": f"python -m engine.synth.faces --n {n} --seed {seed} --size {size} --out {out}"
                           + (f" --cast-shadows {cast_shadows:g}" if cast_shadows else "")
                           + (f" --hard-shadows {hard_shadows:g}" if hard_shadows else "")
                           + (f" --photos {photo_dir}" if photo_dir else "")
                           + (f" --photo-backgrounds {photo_backgrounds:g}" if photo_backgrounds else "")
                           + (f" --albedo-detail {albedo_detail:g}" if albedo_detail else ""),
                "cast_shadows": cast_shadows, "hard_shadows": hard_shadows,
                "photo_backgrounds": photo_backgrounds, "albedo_detail": albedo_detail,
                "shading_png_scale": 0.5, "normals": "camera space, x right, y up, z toward the camera; (n+1)/2",
                "model": renderer.model.folder}
    (out / "lighting.json").write_text(json.dumps(lighting))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log(f"wrote {n} faces to {out} in {time.perf_counter() - start:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.synth.faces",
                                     description="render synthetic faces from the Surrey Face Model")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first face")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=None, help=f"folder of the SFM files (else ${SFM_ENV} or ../shared)")
    parser.add_argument("--cast-shadows", type=float, default=0.0, metavar="P",
                        help="share of faces whose image also has its lights' cast shadows (0–1; default 0)")
    parser.add_argument("--hard-shadows", type=float, default=0.0, metavar="Q",
                        help="share of the shadowed faces lit by one strong side light over a weak ambient, with "
                             "sharp shadows (0–1; default 0)")
    parser.add_argument("--photos", default=None, metavar="DIR",
                        help="folder of photographs for --photo-backgrounds and --albedo-detail")
    parser.add_argument("--photo-backgrounds", type=float, default=0.0, metavar="P",
                        help="share of faces in front of a crop of a photo instead of a smooth background (0–1)")
    parser.add_argument("--albedo-detail", type=float, default=0.0, metavar="Q",
                        help="share of faces whose skin albedo carries the high-pass detail of a photo crop (0–1)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.cast_shadows <= 1.0:
        parser.error("--cast-shadows is a share between 0 and 1")
    if not 0.0 <= args.hard_shadows <= 1.0:
        parser.error("--hard-shadows is a share between 0 and 1")
    for name in ("photo_backgrounds", "albedo_detail"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} is a share between 0 and 1")
    if (args.photo_backgrounds or args.albedo_detail) and not args.photos:
        parser.error("--photo-backgrounds and --albedo-detail need --photos DIR")
    from ..device import resolve_device

    try:
        folder = find_face_model(args.model)  # fails clearly before anything is written
        write_faces(args.n, args.out, args.seed, args.size, resolve_device(args.device), str(folder),
                    cast_shadows=args.cast_shadows, hard_shadows=args.hard_shadows, photo_dir=args.photos,
                    photo_backgrounds=args.photo_backgrounds, albedo_detail=args.albedo_detail)
    except (FaceModelUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


class FaceFolder(torch.utils.data.Dataset):
    """A folder written by :func:`write_faces` as training samples (CHW float32 tensors and ``sh`` (27,))."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{self.folder}: no manifest.json; write faces with python -m engine.synth.faces")
        self.manifest = json.loads(manifest.read_text())
        self.lighting = json.loads((self.folder / "lighting.json").read_text())
        self.stems = sorted(self.lighting)

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        import cv2

        stem = self.folder / self.stems[index]

        def read(suffix):
            a = cv2.imread(f"{stem}_{suffix}.png", cv2.IMREAD_UNCHANGED)
            a = a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)
            return a[..., ::-1] if a.ndim == 3 else a[..., None]

        chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # noqa: E731
        mask = chw(read("mask"))
        normals = F.normalize(chw(read("normal")) * 2 - 1, dim=0) * mask
        scale = float(self.manifest.get("shading_png_scale", 1.0))
        albedo, shading = chw(read("albedo")) * mask, chw(read("shading")) / scale * mask
        return {"image": chw(read("face")), "albedo": albedo, "shading": shading,
                "diffuse": albedo * shading,  # the reconstruction target: no highlight, no cast shadow
                "normals": normals, "mask": mask,
                "sh": torch.tensor(self.lighting[self.stems[index]], dtype=torch.float32)}
