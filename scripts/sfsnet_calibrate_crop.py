"""Measure how dlib's face box sits on the rendered training faces, to frame detector crops like the training data.

    python scripts/sfsnet_calibrate_crop.py [--n 64]

Renders faces (engine.synth.faces, seeds from 20,000,000) at 256×256, runs the detector on each, and prints, for the
faces it finds: the crop side / box width that gives the mean training framing (face height = 80 % of the crop) and
the vertical offset of the crop centre from the box centre in box heights. engine.methods.sfsnet.CROP_SCALE and
CROP_SHIFT hold the medians.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.methods.sfsnet import detect_faces  # noqa: E402
from engine.synth.faces import FaceRenderer  # noqa: E402

MEAN_FILL = 0.80


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args()
    size = 256
    renderer = FaceRenderer(size=size)
    scales, shifts, missed = [], [], 0
    for start in range(20_000_000, 20_000_000 + args.n, 16):
        seeds = list(range(start, min(start + 16, 20_000_000 + args.n)))
        params = [renderer.sample(s) for s in seeds]
        images = renderer.render_params(params)["image"].permute(0, 2, 3, 1).numpy()
        for p, image in zip(params, images):
            boxes = detect_faces(image, max_side=size, upsample=0)
            if not boxes:
                missed += 1
                continue
            b = boxes[0]
            ideal_side = size * p.fill / MEAN_FILL
            centre_y = (0.5 + p.shift[1]) * size
            scales.append(ideal_side / b.width)
            shifts.append((centre_y - (b.y0 + b.y1) / 2) / b.height)
    print(f"detected {len(scales)} of {args.n} rendered faces ({missed} missed)")
    if scales:
        print(f"CROP_SCALE median {np.median(scales):.3f} (IQR {np.percentile(scales, 25):.3f}–"
              f"{np.percentile(scales, 75):.3f})")
        print(f"CROP_SHIFT median {np.median(shifts):.3f} (IQR {np.percentile(shifts, 25):.3f}–"
              f"{np.percentile(shifts, 75):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
