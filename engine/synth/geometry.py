"""Signed distance functions for the synthetic scenes, evaluated on flat batches of points ``(N, 3)``.

Every shape is an exact or conservative (Lipschitz ≤ 1 after the step factor the tracer applies) distance bound,
so sphere tracing never steps through a surface. Deformed shapes add a smooth displacement made of a few random
plane waves ("Fourier noise"): cheap to evaluate on thousands of points and with a known gradient bound.
"""

from __future__ import annotations

import torch

_EPS = 1e-9


def fourier_noise(points: torch.Tensor, waves: torch.Tensor, phases: torch.Tensor, amplitudes: torch.Tensor
                  ) -> torch.Tensor:
    """Sum of plane waves Σ a_m sin(k_m·p + φ_m). points (N, D), waves (M, D), phases (M,), amplitudes (M,) → (N,)."""
    return torch.sin(points @ waves.T + phases) @ amplitudes


def length(v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((v * v).sum(-1) + _EPS)


def sd_sphere(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return length(q) - size[0]


def sd_ellipsoid(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    # The k0·(k0 − 1)/k1 bound is conservative near the surface, which is all the tracer needs.
    k0 = length(q / size)
    k1 = length(q / (size * size))
    return k0 * (k0 - 1.0) / k1


def sd_box(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    d = q.abs() - size
    outside = length(d.clamp(min=0.0))
    inside = d.max(-1).values.clamp(max=0.0)
    return outside + inside


def sd_round_box(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    radius = 0.25 * size.min()
    return sd_box(q, size - radius) - radius


def sd_cylinder(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    radial = length(q[:, [0, 2]]) - size[0]
    axial = q[:, 1].abs() - size[1]
    d = torch.stack([radial, axial], -1)
    return length(d.clamp(min=0.0)) + d.max(-1).values.clamp(max=0.0)


def sd_capsule(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    half = (size[1] - size[0]).clamp(min=0.0)
    y = q[:, 1].clamp(-half, half)
    return length(q - torch.stack([torch.zeros_like(y), y, torch.zeros_like(y)], -1)) - size[0]


def sd_cone(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Capped cone along local y: bottom radius size[0], top radius size[2], half height size[1]."""
    r1, h, r2 = size[0], size[1], size[2]
    qx, qy = length(q[:, [0, 2]]), q[:, 1]
    cap_r = torch.where(qy < 0, r1, r2)
    ca = torch.stack([qx - torch.minimum(qx, cap_r), qy.abs() - h], -1)
    k1 = torch.stack([r2, h])
    k2 = torch.stack([r2 - r1, 2.0 * h])
    q2 = torch.stack([qx, qy], -1)
    f = (((k1 - q2) * k2).sum(-1) / (k2 * k2).sum()).clamp(0.0, 1.0)
    cb = q2 - k1 + k2 * f[:, None]
    sign = torch.where((cb[:, 0] < 0) & (ca[:, 1] < 0), -1.0, 1.0)
    return sign * torch.sqrt(torch.minimum((ca * ca).sum(-1), (cb * cb).sum(-1)) + _EPS)


def sd_torus(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    ring = length(q[:, [0, 2]]) - size[0]
    return length(torch.stack([ring, q[:, 1]], -1)) - size[1]


def sd_octahedron(q: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return (q.abs().sum(-1) - size[0]) * 0.57735027


def twist(q: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Rotate each point about local y by rate·y (a twist). Not distance-preserving: callers scale the step."""
    angle = rate * q[:, 1]
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * q[:, 0] - s * q[:, 2], q[:, 1], s * q[:, 0] + c * q[:, 2]], -1)


def smooth_window(r: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """1 inside ``inner``, 0 beyond ``outer``, smoothstep between (used to flatten the height field far away)."""
    x = ((outer - r) / (outer - inner)).clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
