"""Pack the backgrounds Attentive GAN's GPU run renders raindrops over (drops are rendered there, on the fly).

    python scripts/gpu_train/pack_attentive_gan.py OUT

Writes OUT/kodak24/, OUT/cbsd68/ (../shared/data/photos) and OUT/lol_high/ (../shared/data/lol/our485/high) as
JPEG q90, short side at most 384 pixels (file stems kept, so the held-out split, by stem, is the same as here).
Stays under 14 MiB.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", REPO.parent / "shared"))
SOURCES = {"kodak24": SHARED / "data/photos/kodak24", "cbsd68": SHARED / "data/photos/cbsd68",
           "lol_high": SHARED / "data/lol/our485/high"}
SHORT_SIDE = 384
LIMIT = 14 * 2 ** 20


def main(out: str) -> int:
    out_dir = Path(out)
    total = 0
    for name, folder in SOURCES.items():
        target = out_dir / name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            scale = SHORT_SIDE / min(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                                   interpolation=cv2.INTER_AREA)
            file = target / f"{path.stem}.jpg"
            cv2.imwrite(str(file), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            total += file.stat().st_size
    print(f"packed {sum(1 for _ in out_dir.rglob('*.jpg'))} backgrounds, {total / 2 ** 20:.2f} MiB, into {out_dir}")
    if total > LIMIT:
        print("over the 14 MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1]))
