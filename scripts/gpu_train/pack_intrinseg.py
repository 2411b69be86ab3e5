"""Write the compact training pack for the IntrinSeg + CGIntrinsics GPU run (scripts/gpu_train/intrinseg.sh).

    python scripts/gpu_train/pack_intrinseg.py OUT [--shared ../shared]

OUT/mit/<object>/: the 10 MIT objects at full size, each layer divided by its own maximum: ``diffuse.png``,
``reflectance.png``, ``shading.png`` (grey) as 16-bit linear PNGs (exactly the benchmark's data up to scale),
``mask.png``, and ``light01…10.jpg`` as 8-bit sRGB JPEG q90 (``engine.train.intrinsic_data.read_linear`` decodes
8-bit files as sRGB). The scale of each
layer is irrelevant to the scale-invariant losses and metrics. OUT/photos/: the Kodak and BSDS photographs as
256×256 centre crops (JPEG q90), the photo textures of the rendered scenes. Everything stays under 18 MiB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.train.intrinsic_data import LIGHTS, MIT_OBJECTS, load_mit_object  # noqa: E402

LIMIT = 18 * 1024 * 1024


def _srgb8(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear / max(float(linear.max()), 1e-8), 0, 1)
    x = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    out = np.round(x * 255).astype(np.uint8)
    return out[:, :, ::-1] if out.shape[2] == 3 else out[:, :, 0]


def _linear16(linear: np.ndarray) -> np.ndarray:
    out = np.round(np.clip(linear / max(float(linear.max()), 1e-8), 0, 1) * 65535).astype(np.uint16)
    return out[:, :, ::-1] if out.shape[2] == 3 else out[:, :, 0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--shared", default=str(ROOT / ".." / "shared"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    shared = Path(args.shared)
    for name in MIT_OBJECTS:
        obj = load_mit_object(shared / "data" / "mit-intrinsic", name)
        folder = out / "mit" / name
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "diffuse.png"), _linear16(obj["image"]))
        cv2.imwrite(str(folder / "reflectance.png"), _linear16(obj["reflectance"]))
        cv2.imwrite(str(folder / "shading.png"), _linear16(obj["shading"]))
        cv2.imwrite(str(folder / "mask.png"), (obj["mask"][:, :, 0] > 0).astype(np.uint8) * 255)
        for stem, light in zip(LIGHTS, obj["lights"]):
            cv2.imwrite(str(folder / f"{stem}.jpg"), _srgb8(light), [cv2.IMWRITE_JPEG_QUALITY, 90])
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for path in sorted((shared / "data" / "photos").rglob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = image.shape[:2]
        side = min(h, w)
        crop = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        crop = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photos / f"{path.parent.name}_{path.stem}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"pack {out}: {total / 2**20:.2f} MiB")
    if total > LIMIT:
        print(f"pack exceeds {LIMIT / 2**20:.0f} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
