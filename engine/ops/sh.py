"""Second-order spherical-harmonic shading in SfSNet's convention (``../shared/docs/methods.md`` §4).

Nine coefficients per colour channel, basis order ``[1, z, x, y, 2z²−x²−y², xz, yz, x²−y², xy]`` with the constants
c1…c5 of the official code; each basis function is the real SH ``Y_k(n)`` already multiplied by the clamped-cosine
factor ``A_l`` (π, 2π/3, π/4), so ``shading(n) = Σ_k L_k · H_k(n)`` is the irradiance of an environment whose
radiance has SH coefficients ``L``. A directional light of intensity ``I`` from the unit direction ``d`` has
``L_k = I · Y_k(d)`` (:func:`directional_sh`). The 27 numbers are R (1–9), G (10–18), B (19–27).

Normals are camera-space unit vectors: x right, y up, z toward the camera.
"""

from __future__ import annotations

import math

import torch

C1 = math.pi / math.sqrt(4 * math.pi)
C2 = (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi))
C3 = (math.pi / 4) * 0.5 * math.sqrt(5 / (4 * math.pi))
C4 = (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi))
C5 = (math.pi / 4) * 3 * math.sqrt(5 / (48 * math.pi))
#: A_l per basis function (the clamped-cosine convolution factors), so Y_k = H_k / A_k
_A = (math.pi, 2 * math.pi / 3, 2 * math.pi / 3, 2 * math.pi / 3, math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 4,
      math.pi / 4)


def sh_basis(normals: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """H(n): the 9 shading basis functions of unit normals along ``dim`` (size 3: x, y, z) → 9 along ``dim``."""
    x, y, z = normals.unbind(dim)
    one = torch.ones_like(x)
    return torch.stack([C1 * one, C2 * z, C2 * x, C2 * y, C3 * (2 * z * z - x * x - y * y), C4 * x * z, C4 * y * z,
                        C5 * (x * x - y * y), C4 * x * y], dim)


def shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) unit normals and (N, 27) coefficients → (N, 3, H, W) RGB shading Σ_k L_k H_k(n)."""
    basis = sh_basis(normals, 1)  # (N, 9, H, W)
    coeffs = sh.reshape(sh.shape[0], 3, 9)
    return torch.einsum("nck,nkhw->nchw", coeffs, basis)


def directional_sh(direction: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
    """Radiance SH of directional lights: (..., 3) unit directions, (..., 3) RGB intensities → (..., 27)."""
    y = sh_basis(direction, -1) / direction.new_tensor(_A)  # Y_k(d)
    return (intensity[..., :, None] * y[..., None, :]).flatten(-2)


def sphere_normals(size: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normals (3, size, size) of a sphere seen from the front (x right, y up, z toward the viewer) and its mask."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(-t, t, indexing="ij")
    r2 = x * x + y * y
    mask = r2 <= 1.0
    z = torch.sqrt((1 - r2).clamp(min=0))
    n = torch.stack([x, y, z]) * mask
    return n, mask


def lit_sphere(sh: torch.Tensor, size: int = 128, albedo: float = 0.8) -> torch.Tensor:
    """(27,) or (N, 27) coefficients → (N, 3, size, size) picture of a grey sphere under that light (black outside)."""
    sh = sh.reshape(-1, 27)
    n, mask = sphere_normals(size, sh.device)
    image = shading(n[None].expand(sh.shape[0], -1, -1, -1), sh) * albedo
    return (image * mask).clamp(0, 1)
