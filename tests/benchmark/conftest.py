"""A migrated store per test and a tiny MIT-layout dataset with known ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture
def bench_store(data_dir):
    from db.artifacts import ArtifactStore
    from db.session import make_engine, make_sessions, migrate

    migrate()
    engine = make_engine()
    yield make_sessions(engine), ArtifactStore()
    engine.dispose()


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    assert cv2.imwrite(str(path), array[:, :, ::-1] if array.ndim == 3 else array)


@pytest.fixture
def tiny_mit(tmp_path):
    """Two 32×32 objects (Barron train names): shaded discs of two colours, linear 16-bit, diffuse = R·S."""
    root = tmp_path / "mit"
    y, x = np.mgrid[0:32, 0:32].astype(np.float64)
    mask = (x - 15.5) ** 2 + (y - 15.5) ** 2 < 14 ** 2
    for name, colour in (("apple", (0.8, 0.3, 0.2)), ("box", (0.3, 0.5, 0.7))):
        reflectance = np.ones((32, 32, 3)) * colour
        reflectance[:, 16:] *= 0.5  # an albedo edge down the middle
        shading = 0.2 + 0.7 * (x / 31.0)
        diffuse = reflectance * shading[..., None] * mask[..., None]
        obj = root / name
        _write(obj / "reflectance.png", np.round(reflectance * 65535).astype(np.uint16))
        _write(obj / "shading.png", np.round(shading * 65535).astype(np.uint16))
        _write(obj / "mask.png", (mask * 65535).astype(np.uint16))
        _write(obj / "diffuse.png", np.round(diffuse * 65535).astype(np.uint16))
    return root
