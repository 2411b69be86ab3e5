"""Fixtures for the dashboard tests: a migrated store in the per-test data folder, and small real images."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.badfiles import png_bytes


@pytest.fixture
def photo_png() -> bytes:
    """A 48×64 colour image with texture and a smooth light gradient: enough structure for Retinex methods."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    light = 0.35 + 0.6 * (x / 63.0)
    checks = np.where(((x // 8) + (y // 8)) % 2 == 0, 0.9, 0.45)
    rgb = np.stack([checks * light, (0.3 + 0.5 * y / 47.0) * light, 0.6 * light], axis=2)
    return png_bytes(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)[:, :, ::-1])
