"""Model-card pictures for the single-image intrinsic networks: ordinary photographs → albedo and shading (and
IntrinSeg's segmentation, Ma et al.'s gradient-assignment mask as a heat map), one row per photo, written as a JPEG
contact sheet.

    python scripts/intrinsic_card_figures.py OUT.jpg --method intrinseg [--weights SET_OR_PATH] PHOTO...

Albedo and shading are shown sRGB-encoded with their 99th percentile at white (they are defined up to scale);
the segmentation uses the dashboard's palette, with the legend of the classes present written under the sheet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _srgb(x: np.ndarray) -> np.ndarray:
    from engine.imaging import linear_to_srgb

    x = linear_to_srgb(np.clip(x / max(float(np.percentile(x, 99)), 1e-6), 0, 1))
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def _heat(x: np.ndarray) -> np.ndarray:
    """A [0, 1] map (H, W, 1) as an inferno heat map, RGB float."""
    grey = np.round(np.clip(x[..., 0], 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[:, :, ::-1].astype(np.float32) / 255


def main(argv=None) -> int:
    from engine.imaging import read_image
    from engine.registry import MethodInput, run_method

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--method", default="intrinseg")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--height", type=int, default=200)
    args = parser.parse_args(argv)
    rows, present = [], set()
    for path in args.photos:
        image = read_image(path).pixels[:, :, :3]
        result, _, _ = run_method(args.method, MethodInput(frames=(image,)), {}, device="cpu", weights=args.weights)
        layers = result.layers
        albedo = layers.get("albedo", layers.get("reflectance"))
        tiles = [image, _srgb(albedo), _srgb(layers["shading"])]
        if "assignment" in layers:  # Ma et al.: probability that an image gradient is an albedo change
            tiles.append(_heat(layers["assignment"]))
        if "segmentation" in layers:
            from engine.methods.intrinseg import palette

            labels = layers["segmentation"]
            present.update(np.unique(labels).tolist())
            tiles.append(palette()[labels].astype(np.float32) / 255)
        scale = args.height / image.shape[0]
        size = (round(image.shape[1] * scale), args.height)
        rows.append(np.concatenate([cv2.resize(t.astype(np.float32), size, interpolation=cv2.INTER_AREA)
                                    for t in tiles], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1) for r in rows])
    sheet = (np.clip(sheet, 0, 1) * 255).round().astype(np.uint8)
    if present:
        from engine.methods.intrinseg import class_names, palette

        names, colours = class_names(), palette()
        entries = sorted(int(i) for i in present)
        per_row = max(1, sheet.shape[1] // 150)
        strip = np.full((28 * (-(-len(entries) // per_row)), sheet.shape[1], 3), 255, np.uint8)
        for n, index in enumerate(entries):
            x, y = 6 + 150 * (n % per_row), 28 * (n // per_row)
            cv2.rectangle(strip, (x, y + 6), (x + 16, y + 22), tuple(int(c) for c in colours[index]), -1)
            cv2.putText(strip, names[index], (x + 20, y + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        sheet = np.concatenate([sheet, strip])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({sheet.shape[1]}×{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
