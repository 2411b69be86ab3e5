"""A contact sheet of synthetic samples with every layer, for the README (``python -m engine.synth --figure PNG``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..imaging import linear_to_srgb
from .dataset import render_sample

_PALETTE = np.array([[0, 0, 0], [128, 128, 128], [200, 180, 150], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                     [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
                     [250, 190, 212], [0, 128, 128], [170, 110, 40], [128, 0, 0]], dtype=np.float32) / 255


def _srgb(x: np.ndarray) -> np.ndarray:
    return linear_to_srgb(np.clip(x, 0, 1))


def sample_tiles(sample: dict[str, torch.Tensor]) -> list[tuple[str, np.ndarray]]:
    hwc = lambda t: t.permute(1, 2, 0).cpu().numpy()  # noqa: E731
    shading_scale = float(sample["shading"].amax()) or 1.0
    depth = hwc(sample["depth"])
    tiles = [(f"image, light {k + 1}", hwc(sample["image"][k])) for k in range(sample["image"].shape[0])]
    tiles.append(("albedo", _srgb(hwc(sample["albedo"]))))
    tiles += [(f"shading {k + 1}", _srgb(hwc(sample["shading"][k]) / shading_scale))
              for k in range(sample["shading"].shape[0])]
    tiles.append(("specular 1", _srgb(hwc(sample["specular"][0]) * 4)))
    tiles.append(("sun visibility 1", np.repeat(hwc(sample["sun_visibility"][0]), 3, 2)))
    tiles.append(("normals", (hwc(sample["normals"]) + 1) / 2))
    tiles.append(("depth", np.repeat(1 - (depth - depth.min()) / max(np.ptp(depth), 1e-6), 3, 2)))
    tiles.append(("labels (16 classes)", _PALETTE[sample["labels"].cpu().numpy()]))
    tiles.append(("object mask", np.repeat(hwc(sample["mask"]), 3, 2)))
    return tiles


def contact_sheet(seeds: list[int], size: int = 160, lightings: int = 2, device="cpu") -> np.ndarray:
    rows = []
    header = None
    for seed in seeds:
        tiles = sample_tiles(render_sample(seed, size, lightings, device))
        if header is None:
            text = np.full((22, size * len(tiles), 3), 255, np.uint8)
            for i, (title, _) in enumerate(tiles):
                cv2.putText(text, title, (i * size + 4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                            cv2.LINE_AA)
            header = text.astype(np.float32) / 255
        rows.append(np.concatenate([np.clip(t, 0, 1).astype(np.float32) for _, t in tiles], 1))
    return np.concatenate([header] + rows, 0)


def write_contact_sheet(path: str | Path, seeds: list[int], size: int = 160, lightings: int = 2,
                        device="cpu") -> Path:
    sheet = contact_sheet(seeds, size, lightings, device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (sheet[:, :, ::-1] * 255).round().astype(np.uint8))
    return path
