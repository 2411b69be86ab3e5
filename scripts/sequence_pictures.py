"""README pictures for the sequence methods: a real multi-light scene split into reflectance and per-frame shading.

    .venv/bin/python scripts/sequence_pictures.py                      # the multi-illumination kitchen in ../shared
    .venv/bin/python scripts/sequence_pictures.py --frames DIR --out assets/sequences --scale 3

Runs Laffont & Bazin (default parameters, sRGB frames) and the max-over-frames baseline on every frame of the folder
and writes two small PNGs: ``kitchen_decomposition.png`` (rows: three input frames | their shading; last row: the
reflectance, the max over frames and the confidence) and ``kitchen_reflectance.png`` (the reflectance alone).
Linear layers are shown sRGB-encoded; each shading is scaled by one number for the whole strip.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.imaging import linear_to_srgb  # noqa: E402
from engine.registry import MethodInput, run_method  # noqa: E402

KITCHEN = REPO.parent / "shared" / "data" / "multi-illumination" / "everett_kitchen2" / "everett_kitchen2"


def natural(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_frames(folder: Path) -> list[np.ndarray]:
    paths = sorted((p for p in folder.glob("dir_*.jpg")), key=natural) or \
        sorted((p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")), key=natural)
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0 for p in paths]


def show(linear: np.ndarray, scale: int) -> np.ndarray:
    image = (np.clip(linear_to_srgb(np.clip(linear, 0.0, 1.0)), 0, 1) * 255 + 0.5).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default=str(KITCHEN), help="folder of frames (sRGB)")
    parser.add_argument("--out", default=str(REPO / "assets" / "sequences"))
    parser.add_argument("--scale", type=int, default=2, help="upscaling of the (small) frames for display")
    parser.add_argument("--show", default="3,12,20", help="indices of the frames shown")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    frames = load_frames(Path(args.frames))
    if len(frames) < 2:
        print(f"error: no frames in {args.frames}", file=sys.stderr)
        return 2
    inputs = MethodInput(frames=tuple(frames))
    start = time.perf_counter()
    result, _, _ = run_method("laffont_bazin", inputs, {"input_encoding": "srgb"}, device="cpu")
    seconds = time.perf_counter() - start
    baseline, _, _ = run_method("baseline_max_frames", inputs, {"input_encoding": "srgb"}, device="cpu")
    reflectance, shading = result.layers["reflectance"], result.layers["shading"]
    shown = [int(i) for i in args.show.split(",") if int(i) < len(frames)]
    level = float(np.percentile(shading[shown], 99.0))
    gap = np.full((frames[0].shape[0] * args.scale, 4, 3), 255, np.uint8)

    def row(images):
        cells = []
        for image in images:
            cells += [image, gap]
        return np.concatenate(cells[:-1], axis=1)

    from engine.imaging import srgb_to_linear
    top = row([show(srgb_to_linear(frames[i]), args.scale) for i in shown])
    middle = row([show(shading[i] / level, args.scale) for i in shown])
    bottom = row([show(reflectance, args.scale), show(baseline.layers["reflectance"], args.scale),
                  show(result.layers["confidence"], args.scale)])
    hgap = np.full((4, top.shape[1], 3), 255, np.uint8)
    sheet = np.concatenate([top, hgap, middle, hgap, bottom], axis=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "kitchen_decomposition.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(out / "kitchen_reflectance.png"), cv2.cvtColor(show(reflectance, args.scale), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    h, w = frames[0].shape[:2]
    print(f"{len(frames)} frames {w}×{h}: laffont_bazin {seconds:.1f} s; frames shown {shown}; wrote "
          f"{out / 'kitchen_decomposition.png'} (rows: frames | their shading | reflectance, max over frames, "
          f"confidence) and {out / 'kitchen_reflectance.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
