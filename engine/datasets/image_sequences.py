"""Image sequences (time-lapse or multi-light) of a static scene: a folder of frames, or a folder of such folders.

Frames are the image files of a folder in natural name order; the reserved names ``reflectance``, ``shading``,
``mask``, ``original``, ``diffuse`` and ``specular`` are not frames but ground truth, so an MIT object folder (its
``light01``…``light10``) is a sequence with reference reflectance. Frames are sRGB unless a ``dataset.json`` in the
top folder says ``{"colour_space": "linear"}`` (as it should for MIT's linear PNGs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..registry import InputKind
from .base import (DatasetAdapter, DatasetError, Sample, as_rgb, image_files, image_header, read_float,
                   read_text_file, write_png)

RESERVED = ("reflectance", "shading", "mask", "original", "diffuse", "specular")


class ImageSequences(DatasetAdapter):
    kind = "image-sequence"
    title = "Image sequences"
    task = "intrinsic"
    input_kind = InputKind.IMAGE_SEQUENCE
    metrics = ("albedo_mse", "albedo_lmse", "albedo_dssim")
    splits = ("test", "all")
    layout = "a folder of ≥ 2 same-size frames, or sub-folders each holding one sequence"

    def _frames(self, folder: Path) -> list[Path]:
        return [p for p in image_files(folder) if p.stem.lower() not in RESERVED]

    def _sequences(self, folder: Path) -> dict[str, Path]:
        if len(self._frames(folder)) >= 2:
            return {folder.name: folder}
        return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and self._frames(p)}

    def _colour_space(self, folder: Path) -> str:
        config = folder / "dataset.json"
        if config.is_file():
            try:
                value = json.loads(read_text_file(config)).get("colour_space", "srgb")
            except (ValueError, AttributeError):
                raise DatasetError(f"{config.name}: not a JSON object with a colour_space") from None
            if value not in ("srgb", "linear"):
                raise DatasetError(f"{config}: colour_space must be 'srgb' or 'linear', got {value!r}")
            return value
        return "srgb"

    def problems(self, folder: Path) -> list[str]:
        sequences = self._sequences(folder)
        if not sequences:
            return ["no frames found (need at least 2 image files in the folder or in its sub-folders)"]
        found = []
        try:
            self._colour_space(folder)
        except (DatasetError, ValueError) as exc:
            found.append(str(exc))
        for name, seq in sequences.items():
            frames = self._frames(seq)
            if len(frames) < 2:
                found.append(f"{name}: only {len(frames)} frame; a sequence needs at least 2")
            sizes = {p.name: image_header(p) for p in frames}
            unreadable = [n for n, s in sizes.items() if s is None]
            found += [f"{name}/{n}: not a readable image" for n in unreadable]
            distinct = {s for s in sizes.values() if s is not None}
            if len(distinct) > 1:
                listed = ", ".join(f"{w}×{h}" for h, w in sorted(distinct))
                found.append(f"{name}: frames differ in size ({listed})")
            if (seq / "reflectance.png").is_file() != (seq / "mask.png").is_file():
                found.append(f"{name}: reference reflectance needs both reflectance.png and mask.png")
        return found

    def item_ids(self, folder: Path, split: str) -> list[str]:
        return list(self._sequences(folder))

    def load(self, folder: Path, item_id: str) -> Sample:
        seq = self._sequences(Path(folder)).get(item_id)
        if seq is None:
            raise DatasetError(f"{folder}: no sequence named {item_id!r}")
        space = self._colour_space(Path(folder))
        frames = tuple(as_rgb(read_float(p)) for p in self._frames(seq))
        truth, mask = {}, None
        if (seq / "reflectance.png").is_file():
            mask = read_float(seq / "mask.png").max(axis=2) > 0
            truth = {"reflectance": as_rgb(read_float(seq / "reflectance.png")), "mask": mask}
        return Sample(item_id, frames, space, truth, truth_colour_space=space, mask=mask,
                      meta={"frames": len(frames)})

    def write_example(self, folder: Path) -> Path:
        from ..examples import example_sequence, scene_linear

        for t, frame in enumerate(example_sequence(24), start=1):
            write_png(folder / "scene" / f"frame{t}.png", frame)
        write_png(folder / "scene" / "reflectance.png", scene_linear(24)[1])
        write_png(folder / "scene" / "mask.png", np.ones((24, 24, 1)))
        return folder
