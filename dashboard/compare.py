"""Side-by-side comparison of two layers, computed server-side in numpy (no third-party Streamlit component).

Every function takes and returns 8-bit RGB display arrays ``(H, W, 3) uint8`` (see ``engine.imaging.to_display``)
and is pure, so the pages may cache them with ``st.cache_data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MODES = ("wipe", "blend", "difference")
_LINE = np.array([255, 214, 0], np.uint8)  # a yellow divider stays visible on dark and light layers


def match_size(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` resized to ``a``'s height and width (outputs of some methods are smaller than their input)."""
    if a.shape[:2] == b.shape[:2]:
        return b
    return cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)


def wipe(a: np.ndarray, b: np.ndarray, position: float) -> np.ndarray:
    """``a`` left of a vertical line at ``position`` (0 = left edge, 1 = right edge), ``b`` right of it."""
    b = match_size(a, b)
    width = a.shape[1]
    split = int(round(np.clip(position, 0.0, 1.0) * width))
    out = np.concatenate([a[:, :split], b[:, split:]], axis=1)
    half = width // 400  # one pixel wide on small images, which the browser enlarges
    if 0 < split < width:
        out[:, max(0, split - half - 1):min(width, split + half)] = _LINE
    return out


def blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight)·a + weight·b``: 0 shows only ``a``, 1 only ``b``."""
    b = match_size(a, b)
    w = float(np.clip(weight, 0.0, 1.0))
    return np.round((1.0 - w) * a.astype(np.float32) + w * b.astype(np.float32)).astype(np.uint8)


def difference(a: np.ndarray, b: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Absolute difference, multiplied by ``gain`` so that small differences become visible."""
    b = match_size(a, b)
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)) * max(gain, 0.0)
    return np.clip(np.round(diff), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CropBox:
    top: int
    left: int
    height: int
    width: int


def crop_box(shape: tuple[int, ...], centre_x: float, centre_y: float, zoom: float) -> CropBox:
    """The region shown at ``zoom`` (1 = whole image) around a centre given as fractions of the width/height.

    The box keeps the image's aspect ratio and is shifted, not shrunk, when the centre is near an edge.
    """
    height, width = int(shape[0]), int(shape[1])
    zoom = max(float(zoom), 1.0)
    box_h = max(1, int(round(height / zoom)))
    box_w = max(1, int(round(width / zoom)))
    top = int(round(np.clip(centre_y, 0, 1) * height - box_h / 2))
    left = int(round(np.clip(centre_x, 0, 1) * width - box_w / 2))
    top = min(max(top, 0), height - box_h)
    left = min(max(left, 0), width - box_w)
    return CropBox(top, left, box_h, box_w)


def zoom(image: np.ndarray, centre_x: float, centre_y: float, factor: float) -> np.ndarray:
    """Crop around the centre and enlarge back to the original size with nearest-neighbour sampling, so that
    individual pixels stay visible instead of being smoothed away."""
    box = crop_box(image.shape, centre_x, centre_y, factor)
    region = image[box.top:box.top + box.height, box.left:box.left + box.width]
    if region.shape[:2] == image.shape[:2]:
        return image
    return cv2.resize(region, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def compose(a: np.ndarray, b: np.ndarray, mode: str, amount: float, *, centre_x: float = 0.5,
            centre_y: float = 0.5, zoom_factor: float = 1.0) -> np.ndarray:
    """Zoom both layers to the same region, then combine them by ``mode`` (one of :data:`MODES`).

    ``amount`` is the wipe position or blend weight; for ``difference`` it is the gain (1 to 10 is useful).
    """
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}; expected one of {MODES}")
    b = match_size(a, b)
    a = zoom(a, centre_x, centre_y, zoom_factor)
    b = zoom(b, centre_x, centre_y, zoom_factor)
    if mode == "wipe":
        return wipe(a, b, amount)
    if mode == "blend":
        return blend(a, b, amount)
    return difference(a, b, amount)
