"""A tiny MIT-layout dataset with known ground truth, and a store holding a scored benchmark run of it.

Shared by the benchmark tests and the leaderboard page tests (import ``benchmark.tiny_data``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.datasets.mit import BARRON_TRAIN

BASELINES = ("baseline_image_albedo", "baseline_color_retinex")


def _write(path: Path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    assert cv2.imwrite(str(path), array[:, :, ::-1] if array.ndim == 3 else array)


def write_tiny_mit(root: Path, count: int = 2, side: int = 32) -> Path:
    """``count`` (default two) ``side``×``side`` objects (Barron train names): shaded discs of different colours,
    linear 16-bit, diffuse = R·S."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    c = (side - 1) / 2
    mask = (x - c) ** 2 + (y - c) ** 2 < (side * 7 / 16) ** 2
    palette = [(0.8, 0.3, 0.2), (0.3, 0.5, 0.7), (0.6, 0.6, 0.2), (0.2, 0.7, 0.4), (0.7, 0.2, 0.6)]
    for index, name in enumerate(BARRON_TRAIN[:count]):
        colour = tuple(v * (1 - 0.1 * (index // len(palette))) for v in palette[index % len(palette)])  # unique
        reflectance = np.ones((side, side, 3)) * colour
        reflectance[:, side // 2:] = 0.6 * np.array(colour[::-1])  # an albedo edge down the middle (hue, lightness)
        shading = 0.2 + 0.7 * (x / (side - 1.0))
        diffuse = reflectance * shading[..., None] * mask[..., None]
        obj = root / name
        _write(obj / "reflectance.png", np.round(reflectance * 65535).astype(np.uint16))
        _write(obj / "shading.png", np.round(shading * 65535).astype(np.uint16))
        _write(obj / "mask.png", (mask * 65535).astype(np.uint16))
        _write(obj / "diffuse.png", np.round(diffuse * 65535).astype(np.uint16))
    return root


def scored_store(root: Path, sessions, artifacts, name: str = "mit-mini"):
    """Register the tiny dataset under ``name`` and run both intrinsic baselines on it (in-process worker)."""
    from db import benchmark_store as bstore
    from db.session import session_scope
    from engine.benchmark import BenchConfig, run

    write_tiny_mit(root)
    with session_scope(sessions) as session:
        bstore.register_dataset(session, name, "mit-intrinsic", str(root))
    report = run(BenchConfig(BASELINES, name, "train"), sessions=sessions, artifacts=artifacts, device="cpu",
                 poll_s=0.01)
    assert report.complete and report.failed == 0, report.errors
    return report
