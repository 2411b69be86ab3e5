"""How layers are shown, never how they are stored: display exposure, colour maps, plain-word captions by role,
and which layer best represents a method in a thumbnail. Pure functions (no Streamlit), so they are cacheable and
testable.

The stored artifacts are never changed: exposure and colour maps apply to the array sent to the browser only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.imaging import linear_to_srgb, srgb_to_linear
from engine.registry import Role, UnknownMethodError, get_method


@dataclass(frozen=True)
class Exposure:
    """A display exposure: ``auto`` scales the 99.5th percentile to white, ``gain`` multiplies (in linear light),
    ``gamma`` > 1 lifts the shadows (display value ** (1 / gamma)). The default shows the layer as stored."""

    auto: bool = False
    gain: float = 1.0
    gamma: float = 1.0

    @property
    def neutral(self) -> bool:
        return not self.auto and self.gain == 1.0 and self.gamma == 1.0

    def label(self) -> str:
        if self.neutral:
            return "as stored"
        parts = (["auto level"] if self.auto else []) + ([f"gain ×{self.gain:g}"] if self.gain != 1 else []) \
            + ([f"gamma {self.gamma:g}"] if self.gamma != 1 else [])
        return "display: " + ", ".join(parts)


def apply_exposure(pixels: np.ndarray, colour_space: str, exposure: Exposure) -> np.ndarray:
    """Float pixels in ``colour_space`` ("srgb", "linear" or "none") → sRGB-encoded display floats in [0, 1]."""
    values = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if exposure.neutral:
        return np.clip(linear_to_srgb(np.clip(values, 0, 1)) if colour_space == "linear" else values, 0.0, 1.0)
    linear = values if colour_space == "linear" else srgb_to_linear(np.clip(values, 0, 1)) \
        if colour_space == "srgb" else values
    scale = exposure.gain
    if exposure.auto:
        top = float(np.percentile(linear, 99.5)) if linear.size else 0.0
        scale *= 1.0 / top if top > 1e-6 else 1.0
    linear = np.clip(linear * scale, 0.0, 1.0)
    shown = linear_to_srgb(linear) if colour_space in ("linear", "srgb") else linear
    if exposure.gamma != 1.0:
        shown = np.power(np.clip(shown, 0, 1), 1.0 / exposure.gamma)
    return np.clip(shown, 0.0, 1.0)


#: OpenCV's perceptually uniform colour map for single-channel layers (viridis: dark blue → yellow).
COLOUR_MAP = cv2.COLORMAP_VIRIDIS


def colour_mapped(channel: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One channel → (RGB uint8 through the colour map, low, high): the range mapped to the map's ends is the
    1st–99th percentile, so one hot pixel cannot flatten the rest."""
    values = np.nan_to_num(np.asarray(channel, dtype=np.float32).squeeze())
    low, high = (float(np.percentile(values, 1)), float(np.percentile(values, 99))) if values.size else (0.0, 1.0)
    if high - low < 1e-6:
        high = low + 1e-6
    index = np.round(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(index, COLOUR_MAP)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), low, high


def colour_bar(low: float, high: float, width: int = 256, height: int = 14) -> np.ndarray:
    """A horizontal bar of the colour map from ``low`` (left) to ``high`` (right), as RGB uint8."""
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    return cv2.cvtColor(cv2.applyColorMap(ramp, COLOUR_MAP), cv2.COLOR_BGR2RGB)


# --- what a layer is, in plain words ------------------------------------------------------------------------------

#: role → (caption a non-expert understands, the formula or technical note for the tooltip)
ROLE_WORDS: dict[Role, tuple[str, str]] = {
    Role.REFLECTANCE: ("The colours of the surfaces themselves, with the lighting taken out",
                       "reflectance (albedo) R, with image I = R × S"),
    Role.SHADING: ("How much light reaches each point: shadows and shape, without the surface colours",
                   "shading S, with image I = R × S"),
    Role.ILLUMINATION: ("The lighting of the photo: bright where light falls, dark in shadow",
                        "Retinex illumination L, with image S = R × L"),
    Role.ENHANCED: ("The photo made brighter and clearer", "enhanced image R × f(L)"),
    Role.ENHANCED_ILLUMINATION: ("The lighting after brightening", "adjusted illumination f(L)"),
    Role.CLEAN: ("The photo with the raindrops or dirt removed", "restored image B, with input I = (1 − M) ⊙ B + R"),
    Role.WHITE_BALANCED: ("The photo as if lit by white light", "von Kries: I / e, per channel"),
    Role.ILLUMINANT: ("The colour of the light in the scene", "illuminant e = (r, g, b), unit norm"),
    Role.NORMALS: ("Which way each point of the surface faces (colour = direction)",
                   "unit normal n; shown as (n + 1) / 2: x right = red, y up = green, z toward you = blue"),
    Role.SEGMENTATION: ("What each pixel shows (one colour per kind of thing)", "argmax of the class scores"),
    Role.CONFIDENCE: ("How sure the method is: bright = sure", "per-pixel confidence in [0, 1]"),
    Role.ATTENTION: ("Where the method looked hardest", "attention / assignment map in [0, 1]"),
    Role.MASK: ("The region the method marked", "mask M in [0, 1]"),
    Role.LIGHTING: ("The light around the subject, shown on a ball", "spherical-harmonic lighting"),
    Role.RECONSTRUCTION: ("The photo rebuilt from the method's parts (a check on the method)",
                          "re-rendered image, e.g. albedo × shading"),
    Role.OTHER: ("Another output of the method", ""),
}

#: Which layer best stands for a method in a thumbnail, best first (never a near-black illumination first).
THUMBNAIL_ROLES: tuple[Role, ...] = (Role.ENHANCED, Role.CLEAN, Role.WHITE_BALANCED, Role.REFLECTANCE,
                                     Role.NORMALS, Role.SEGMENTATION, Role.SHADING, Role.RECONSTRUCTION,
                                     Role.ILLUMINATION)

#: The order of rows in the all-methods grid.
ROW_ORDER: tuple[Role, ...] = THUMBNAIL_ROLES + tuple(r for r in Role if r not in THUMBNAIL_ROLES)


def layer_role(method: str, layer: str) -> Role:
    """The declared role of a stored layer (``shading/003`` is a frame of ``shading``); OTHER if unknown."""
    try:
        return get_method(method).output(layer.split("/", 1)[0]).role
    except (UnknownMethodError, KeyError):
        return Role.OTHER


def plain_caption(method: str, layer: str) -> tuple[str, str]:
    """(caption, tooltip) of a layer for a non-expert."""
    role = layer_role(method, layer)
    text, formula = ROLE_WORDS[role]
    try:
        meaning = get_method(method).output(layer.split("/", 1)[0]).meaning
    except (UnknownMethodError, KeyError):
        meaning = ""
    tip = " · ".join(part for part in (formula, meaning) if part)
    return text, tip


def best_layer_index(method: str, layers: list[str]) -> int:
    """The index of the most telling layer of a method's result (see :data:`THUMBNAIL_ROLES`)."""
    if not layers:
        raise ValueError("no layers")
    rank = {role: i for i, role in enumerate(THUMBNAIL_ROLES)}
    return min(range(len(layers)), key=lambda i: (rank.get(layer_role(method, layers[i]), len(rank)), i))
