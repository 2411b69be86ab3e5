"""Face crops with optional masks and normal maps.

A folder of crops (``X.png`` or ``X_face.png``); for each crop an optional mask ``X_mask.png`` beside it or
``masks/<crop name>``, and optional ground-truth normals ``X_normal.png`` beside it or ``normals/<crop name>``,
stored as (n + 1) / 2 in RGB = (x, y, z). Masks and normals of another size but the same shape
(aspect ratio) as their crop are resized to it. Crops are sRGB photos. Without normals a face has no metric, but it can
still be run (for the gallery); the split is the whole folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..registry import InputKind
from .base import DatasetAdapter, DatasetError, Sample, as_rgb, image_files, image_header, read_float, write_png

_ROLE_SUFFIXES = ("_mask", "_normal", "_normals")


class Faces(DatasetAdapter):
    kind = "faces"
    title = "Face crops"
    task = "face"
    input_kind = InputKind.FACE
    metrics = ("normal_mean", "normal_under20", "normal_under25", "normal_under30")
    splits = ("test", "all")
    layout = "X.png or X_face.png crops, optional X_mask.png / masks/, X_normal.png / normals/"

    def _key(self, path: Path) -> str:
        stem = path.stem
        return stem[:-5] if stem.endswith("_face") else stem

    def _crops(self, folder: Path) -> dict[str, Path]:
        return {self._key(p): p for p in image_files(folder) if not p.stem.endswith(_ROLE_SUFFIXES)}

    def _companion(self, folder: Path, crop: Path, suffix: str, sub: str) -> Path | None:
        for candidate in (folder / f"{self._key(crop)}{suffix}.png", folder / sub / crop.name):
            if candidate.is_file():
                return candidate
        return None

    def problems(self, folder: Path) -> list[str]:
        crops = self._crops(folder)
        if not crops:
            return ["no face crops found"]
        found = []
        for key, crop in crops.items():
            size = image_header(crop)
            if size is None:
                found.append(f"{crop.name}: not a readable image")
                continue
            for suffix, sub in (("_mask", "masks"), ("_normal", "normals")):
                extra = self._companion(folder, crop, suffix, sub)
                other = None if extra is None else image_header(extra)
                if extra is not None and other is None:
                    found.append(f"{extra.relative_to(folder)}: not a readable image")
                elif other is not None and other[0] * size[1] != other[1] * size[0]:
                    found.append(f"{extra.relative_to(folder)}: {other[1]}×{other[0]} does not have the shape of "
                                 f"{crop.name} ({size[1]}×{size[0]})")
        return found

    def item_ids(self, folder: Path, split: str) -> list[str]:
        return list(self._crops(folder))

    def load(self, folder: Path, item_id: str) -> Sample:
        folder = Path(folder)
        crop = self._crops(folder).get(item_id)
        if crop is None:
            raise DatasetError(f"{folder}: no face crop named {item_id!r}")
        image = as_rgb(read_float(crop))
        truth, mask = {}, None
        mask_file = self._companion(folder, crop, "_mask", "masks")
        size = image.shape[1], image.shape[0]
        if mask_file is not None:
            # The SfSNet samples ship 512×512 masks for 128×128 crops: same framing, so resize, never crop.
            mask = cv2.resize(read_float(mask_file).max(axis=2), size, interpolation=cv2.INTER_NEAREST) > 0.5
            truth["mask"] = mask
        normal_file = self._companion(folder, crop, "_normal", "normals")
        if normal_file is not None:
            normals = cv2.resize(as_rgb(read_float(normal_file)), size, interpolation=cv2.INTER_LINEAR)
            normals = normals.astype(np.float64) * 2.0 - 1.0
            truth["normals"] = normals / np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-8)
        return Sample(item_id, (image,), "srgb", truth, truth_colour_space="none", mask=mask,
                      meta={"input_file": crop.name})

    def write_example(self, folder: Path) -> Path:
        from ..examples import example_face

        image, mask = example_face(24)
        write_png(folder / "1.png", image)
        write_png(folder / "1_mask.png", mask)
        write_png(folder / "1_normal.png", np.broadcast_to([0.5, 0.5, 1.0], image.shape))  # facing the camera
        return folder
