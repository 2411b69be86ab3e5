"""MIT Intrinsic Images (Grosse et al. 2009; the Barron & Malik release): one folder per object.

Per object: ``diffuse.png`` (the input the benchmark decomposes: ``original`` minus the specular layer; we fall back
to ``original.png`` and record that), ``reflectance.png``, ``shading.png``, ``mask.png`` and ``light01``…``light10``.
All are 16-bit, *linear* PNGs, read with OpenCV ``IMREAD_UNCHANGED`` (Pillow truncates 16-bit RGB).
Ground truth as the benchmark uses it: the mask is ``mask > 0``; reflectance is RGB (metrics average it to grey);
shading is single-channel. Splits: Barron & Malik's 10 training and 10 test objects, and ``all``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import InputKind
from .base import DatasetAdapter, DatasetError, Sample, image_header, read_float, write_png

BARRON_TRAIN = ("apple", "box", "cup1", "dinosaur", "frog1", "panther", "paper1", "phone", "squirrel", "teabag2")
BARRON_TEST = ("cup2", "deer", "frog2", "paper2", "pear", "potato", "raccoon", "sun", "teabag1", "turtle")
TRUTH_FILES = ("reflectance.png", "shading.png", "mask.png")
INPUT_FILES = ("diffuse.png", "original.png")  # first one present is the input


class MITIntrinsic(DatasetAdapter):
    kind = "mit-intrinsic"
    title = "MIT Intrinsic Images"
    task = "intrinsic"
    input_kind = InputKind.IMAGE
    metrics = ("grosse_lmse", "albedo_mse", "albedo_lmse", "albedo_dssim", "shading_mse", "shading_lmse",
               "shading_dssim")
    splits = ("test", "train", "all")
    layout = "<object>/{diffuse or original, reflectance, shading, mask}.png, 16-bit linear"

    def _objects(self, folder: Path) -> list[Path]:
        # A folder counts as an object if it holds any of the benchmark's files; others (results/, .git) are ignored.
        return sorted(p for p in folder.iterdir()
                      if p.is_dir() and any((p / f).exists() for f in TRUTH_FILES + INPUT_FILES))

    def problems(self, folder: Path) -> list[str]:
        objects = self._objects(folder)
        if not objects:
            return ["no object folders found (expected e.g. apple/reflectance.png)"]
        found = []
        for obj in objects:
            missing = [f for f in TRUTH_FILES if not (obj / f).is_file()]
            if not any((obj / f).is_file() for f in INPUT_FILES):
                missing.append("diffuse.png or original.png")
            if missing:
                found.append(f"{obj.name}: missing {', '.join(missing)}")
                continue
            sizes = {}
            for name in TRUTH_FILES + INPUT_FILES:
                if (obj / name).is_file():
                    size = image_header(obj / name)
                    if size is None:
                        found.append(f"{obj.name}/{name}: not a readable PNG")
                    else:
                        sizes[name] = size
            if len(set(sizes.values())) > 1:
                listed = ", ".join(f"{n} {w}×{h}" for n, (h, w) in sizes.items())
                found.append(f"{obj.name}: layers differ in size ({listed})")
        return found

    def item_ids(self, folder: Path, split: str) -> list[str]:
        present = [p.name for p in self._objects(folder)]
        if split == "all":
            return present
        wanted = BARRON_TRAIN if split == "train" else BARRON_TEST
        return [name for name in present if name in wanted]

    def load(self, folder: Path, item_id: str) -> Sample:
        obj = Path(folder) / item_id
        if not obj.is_dir():
            raise DatasetError(f"{obj}: no such object folder")
        input_file = next(f for f in INPUT_FILES if (obj / f).is_file())
        image = read_float(obj / input_file)
        if image.shape[2] != 3:
            raise DatasetError(f"{obj / input_file}: expected an RGB image, got {image.shape[2]} channel(s)")
        reflectance = read_float(obj / "reflectance.png")
        if reflectance.shape[2] == 1:
            reflectance = np.repeat(reflectance, 3, axis=2)
        shading = read_float(obj / "shading.png")
        if shading.shape[2] > 1:
            shading = shading.mean(axis=2, keepdims=True)
        mask = read_float(obj / "mask.png").max(axis=2) > 0
        return Sample(
            item_id=item_id, frames=(image,), colour_space="linear",
            truth={"reflectance": reflectance, "shading": shading, "mask": mask}, truth_colour_space="linear",
            mask=mask, meta={"input_file": input_file},
        )

    def write_example(self, folder: Path) -> Path:
        from ..examples import scene_linear

        image, reflectance, shading = scene_linear(24)
        mask = np.zeros((24, 24, 1), np.float32)
        mask[3:-3, 3:-3] = 1.0
        for name in ("apple", "pear"):  # one training and one test object
            for layer, values in (("diffuse", image * mask), ("reflectance", reflectance), ("shading", shading),
                                  ("mask", mask)):
                write_png(folder / name / f"{layer}.png", values, bits=16)
        return folder
