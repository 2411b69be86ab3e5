"""Tiny synthetic inputs, one per :class:`~engine.registry.InputKind`, for the registry contract tests.

The contract tests (``tests/contract/``) run every registered method on ``method_example(spec)``: by default the input
built here for the method's input kind, at ``max(32, spec.min_side)`` pixels a side. A method that needs something
else (a face detector's minimum size, a particular frame count) sets ``MethodSpec.example_input`` to a
zero-argument factory returning a :class:`~engine.registry.MethodInput`, and never has to write the checks itself.

Every image is float32 (H, W, 3) in [0, 1]: sRGB-encoded, except ``RAW_IMAGE`` (linear, with a colour cast).
Everything is deterministic (no random state), so the contract runs the same everywhere.
"""

from __future__ import annotations

import numpy as np

from .imaging import linear_to_srgb
from .registry import InputKind, MethodInput

EXAMPLE_SIDE = 32


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    return y / max(side - 1, 1), x / max(side - 1, 1)


def scene_linear(side: int = EXAMPLE_SIDE, light: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, reflectance, shading), linear: two albedo regions and a square under a smooth light whose direction
    turns with ``light`` (so frames of a sequence differ in shading only)."""
    y, x = _grid(side)
    reflectance = np.empty((side, side, 3), np.float32)
    reflectance[:] = (0.7, 0.35, 0.2)
    reflectance[:, side // 2:] = (0.25, 0.45, 0.65)
    square = (np.abs(y - 0.5) < 0.2) & (np.abs(x - 0.3) < 0.15)
    reflectance[square] = (0.8, 0.8, 0.75)
    angle = 0.6 + light
    shading = (0.25 + 0.7 * np.clip(np.cos(angle) * x + np.sin(angle) * y, 0.0, 1.0)).astype(np.float32)[..., None]
    return reflectance * shading, reflectance, shading


def example_image(side: int = EXAMPLE_SIDE) -> np.ndarray:
    """An ordinary sRGB photo-like image."""
    return linear_to_srgb(scene_linear(side)[0]).astype(np.float32)


def example_raw(side: int = EXAMPLE_SIDE) -> np.ndarray:
    """A linear raw image under a warm illuminant (normalised so its brightest channel peaks below 1)."""
    image = scene_linear(side)[0] * np.array([1.0, 0.8, 0.55], np.float32)
    return (image / (image.max() * 1.05)).astype(np.float32)


def example_pair(side: int = EXAMPLE_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(low-light, normal-light) sRGB images of one scene."""
    image = scene_linear(side)[0]
    return linear_to_srgb(0.08 * image).astype(np.float32), linear_to_srgb(image).astype(np.float32)


def example_sequence(side: int = EXAMPLE_SIDE, frames: int = 3) -> tuple[np.ndarray, ...]:
    """``frames`` sRGB images of a static scene under a moving light."""
    return tuple(linear_to_srgb(scene_linear(side, light=0.5 * t)[0]).astype(np.float32) for t in range(frames))


def example_face(side: int = EXAMPLE_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(sRGB image, (H, W, 1) mask): a face-like crop — a shaded skin-coloured ellipsoid with eyes, brows and a
    mouth on a grey background, lit from the upper left."""
    y, x = _grid(side)
    u, v = (x - 0.5) / 0.36, (y - 0.52) / 0.45
    inside = u ** 2 + v ** 2 < 1.0
    nz = np.sqrt(np.clip(1.0 - u ** 2 - v ** 2, 0.0, 1.0))
    light = np.array([-0.4, -0.4, 0.82], np.float32)
    shade = np.clip(light[0] * u + light[1] * v + light[2] * nz, 0.0, 1.0)
    albedo = np.empty((side, side, 3), np.float32)
    albedo[:] = (0.78, 0.55, 0.45)
    for cx in (0.38, 0.62):
        albedo[((x - cx) / 0.07) ** 2 + ((y - 0.42) / 0.035) ** 2 < 1.0] = (0.1, 0.08, 0.07)  # eyes
        albedo[(np.abs(x - cx) < 0.08) & (np.abs(y - 0.35) < 0.012)] = (0.25, 0.15, 0.1)  # brows
    albedo[((x - 0.5) / 0.12) ** 2 + ((y - 0.72) / 0.03) ** 2 < 1.0] = (0.6, 0.25, 0.25)  # mouth
    linear = np.where(inside[..., None], albedo * (0.15 + 0.85 * shade[..., None]), 0.2)
    return linear_to_srgb(linear).astype(np.float32), inside[..., None].astype(np.float32)


def example_input(kind: InputKind, side: int = EXAMPLE_SIDE) -> MethodInput:
    """A tiny valid input of ``kind`` with sides of ``side`` pixels."""
    kind = InputKind(kind)
    if kind == InputKind.IMAGE:
        return MethodInput(frames=(example_image(side),))
    if kind == InputKind.RAW_IMAGE:
        return MethodInput(frames=(example_raw(side),))
    if kind == InputKind.IMAGE_PAIR:
        return MethodInput(frames=example_pair(side))
    if kind == InputKind.IMAGE_SEQUENCE:
        return MethodInput(frames=example_sequence(side))
    if kind == InputKind.FACE:
        image, mask = example_face(side)
        return MethodInput(frames=(image,), mask=mask)
    raise ValueError(f"no example input for {kind}")


def method_example(spec) -> MethodInput:
    """A tiny valid input for a method: its spec's ``example_input()`` if it declares one, else
    :func:`example_input` for its input kind at ``max(EXAMPLE_SIDE, spec.min_side)`` pixels a side."""
    if spec.example_input is not None:
        return spec.example_input()
    return example_input(spec.input_kind, max(EXAMPLE_SIDE, spec.min_side))
