"""Pack the training data of the ma2018 GPU run: ``python scripts/gpu_train/pack_ma2018.py OUT [--scale 0.5]``.

From ``../shared`` (or ``$INTRINSIC_LAB_SHARED``) it writes, under the size limit of the run's transfer:

* ``OUT/mit/<object>/light01..10.jpg``: the ten MIT objects under their ten single lights, downscaled (area) so
  the long side is ``--max-side`` (320: the size the ma2018 runner decomposes at by default), one common exposure per object (its brightest value → 1), sRGB-encoded 8-bit JPEG (quality 95), with
  ``OUT/mit/dataset.json`` saying ``{"colour_space": "srgb"}``; beside them, for validation and the semi-supervised
  variant only, ``diffuse.png``, ``reflectance.png`` and ``shading.png`` (16-bit linear PNG, same scale) and
  ``mask.png`` (8-bit);
* ``OUT/kitchen/everett_kitchen2/dir_N.jpg``: the multi-illumination kitchen's 25 lightings (mip 6, as given).

The MIT data is UC Regents' (research use), the kitchen Murmann et al.'s (MIT licence); neither goes into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
OBJECTS = ("apple", "box", "cup1", "dinosaur", "frog1", "panther", "paper1", "phone", "squirrel", "teabag2")


def shared_dir() -> Path:
    for candidate in (os.environ.get("INTRINSIC_LAB_SHARED"), REPO.parent / "shared", Path("/work/shared")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    sys.exit("shared data folder not found (set INTRINSIC_LAB_SHARED)")


def read(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        sys.exit(f"cannot read {path}")
    return array.astype(np.float32) / (65535.0 if array.dtype == np.uint16 else 255.0)


def resize(array: np.ndarray, scale: float, nearest: bool = False) -> np.ndarray:
    size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args(argv)
    shared = shared_dir()
    out = Path(args.out)
    mit_out = out / "mit"
    mit_out.mkdir(parents=True, exist_ok=True)
    (mit_out / "dataset.json").write_text(json.dumps({"colour_space": "srgb"}))
    for name in OBJECTS:
        src, dst = shared / "data" / "mit-intrinsic" / name, mit_out / name
        dst.mkdir(exist_ok=True)
        first = read(src / "light01.png")
        scale = min(1.0, args.max_side / max(first.shape[:2]))
        lights = [resize(read(src / f"light{k:02d}.png"), scale) for k in range(1, 11)]
        peak = max(float(l.max()) for l in lights)
        for k, light in enumerate(lights, 1):
            encoded = np.round(srgb(light / peak) * 255).astype(np.uint8)
            cv2.imwrite(str(dst / f"light{k:02d}.jpg"), encoded, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        for layer in ("diffuse", "reflectance", "shading"):
            array = resize(read(src / f"{layer}.png"), scale)
            cv2.imwrite(str(dst / f"{layer}.png"), np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16))
        mask = resize(read(src / "mask.png"), scale, nearest=True)
        cv2.imwrite(str(dst / "mask.png"), np.where(mask > 0.5, 255, 0).astype(np.uint8))
    kitchen_src = shared / "data" / "multi-illumination" / "everett_kitchen2" / "everett_kitchen2"
    kitchen = out / "kitchen" / "everett_kitchen2"
    kitchen.mkdir(parents=True, exist_ok=True)
    for path in sorted(kitchen_src.glob("dir_*_mip6.jpg")):
        shutil.copyfile(path, kitchen / path.name.replace("_mip6", ""))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {total / 2 ** 20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
