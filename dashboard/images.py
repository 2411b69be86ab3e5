"""Stored PNG artifacts → 8-bit RGB arrays for the browser (pure functions of the bytes, so cacheable)."""

from __future__ import annotations

import cv2
import numpy as np

from engine.imaging import decode_image, to_display
from engine.registry import OutputKind

from .display import Exposure, apply_exposure, colour_mapped

#: Longest side of a thumbnail in the gallery grid.
THUMBNAIL_SIDE = 256


def label_palette(count: int = 256) -> np.ndarray:
    """Distinct colours for class indices: hues spread by the golden angle so neighbours differ strongly."""
    index = np.arange(count)
    hue = ((index * 137.508) % 360 / 2).astype(np.uint8)  # OpenCV's 8-bit hue runs 0..179
    sat = np.where(index == 0, 0, 200).astype(np.uint8)  # class 0 (usually "none") stays grey
    val = np.where(index == 0, 60, 230).astype(np.uint8)
    hsv = np.stack([hue, sat, val], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def layer_display(data: bytes, kind: str = OutputKind.IMAGE.value, name: str = "layer",
                  colour_space: str = "srgb", exposure: Exposure = Exposure()) -> np.ndarray:
    """Decode a stored layer (or an uploaded input) and return ``(H, W, 3) uint8`` for display."""
    return layer_display_with_range(data, kind, name, colour_space, exposure)[0]


def layer_display_with_range(data: bytes, kind: str = OutputKind.IMAGE.value, name: str = "layer",
                             colour_space: str = "srgb", exposure: Exposure = Exposure()
                             ) -> tuple[np.ndarray, tuple[float, float] | None]:
    """``(RGB uint8, value range of the colour map or None)``.

    Label maps are stored as class indices (dark when shown as grey), so they are coloured with a palette.
    Single-channel layers go through a perceptual colour map over their 1st–99th percentile (the range is
    returned for the colour bar). Other layers get the display exposure and are sRGB-encoded for the screen;
    the stored file keeps its values.
    """
    if kind == OutputKind.LABELS.value:
        labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise ValueError(f"{name}: the stored label map cannot be decoded")
        if labels.ndim == 3:
            labels = labels[:, :, 0]
        return label_palette()[labels.astype(np.uint8)], None
    pixels = decode_image(data, name, allow_animation=True).pixels
    if kind == OutputKind.GREY.value:
        rgb, low, high = colour_mapped(pixels[..., 0])
        return rgb, (low, high)
    if kind == OutputKind.NORMALS.value:
        return to_display(pixels), None  # (n + 1) / 2 is the picture; exposure would change the directions
    return to_display(apply_exposure(pixels, colour_space, exposure)), None


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def heat_overlay(image: np.ndarray, heat: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """A single-channel map (e.g. an attention map, displayed as (H, W, 3) uint8 grey) as a JET heat map blended
    over ``image`` ((H, W, 3) uint8), resized to the image: where a map is 0 the image shows through."""
    grey = heat[:, :, 0] if heat.ndim == 3 else heat
    if grey.shape[:2] != image.shape[:2]:
        grey = cv2.resize(grey, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(grey.astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1].astype(np.float32)
    alpha = strength * grey.astype(np.float32)[:, :, None] / 255.0
    return np.clip(image.astype(np.float32) * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
