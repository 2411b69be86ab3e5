"""Pack (here) and unpack (on the GPU machine) the compact training data of DS-Net's GPU run.

    python scripts/gpu_train/pack_dsnet.py OUT                 # from ../shared: writes OUT (< 5 MiB)
    python3 scripts/gpu_train/pack_dsnet.py --unpack PACK DIR  # PACK/cc → DIR: a colour-constancy folder again

What goes in:

* ``cc/``: the 10 INTEL-TAU images. Linear 16-bit values v are stored as round(4095·sqrt(v/65535)) in a 16-bit PNG
  (12 bits of square-root code: relative error ≤ 1.7 % on the darkest pixels, clipped pixels stay clipped), beside
  their ``*_metadata.json`` ground truths, unchanged. ``--unpack`` writes them back as linear 16-bit PNGs.
* ``photos/``: Kodak24 and as many BSD68 photographs as fit, area-downscaled to a longest side of 384 (the canvas
  the recipe uses anyway), JPEG quality 85.
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
SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", REPO.parent / "shared"))
LIMIT = 5 * 1024 * 1024
MARGIN = 150_000  # bytes kept free under the limit
SIDE = 384


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack(out: Path) -> None:
    cc_src = SHARED / "data" / "color-constancy" / "intel-tau-imx135"
    if not cc_src.is_dir():
        sys.exit(f"{cc_src} not found (set INTRINSIC_LAB_SHARED)")
    if out.exists():
        shutil.rmtree(out)
    (out / "cc").mkdir(parents=True)
    (out / "photos").mkdir()
    for png in sorted(cc_src.glob("*.png")):
        raw = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        code = np.round(np.sqrt(raw.astype(np.float64) / 65535.0) * 4095.0).astype(np.uint16)
        cv2.imwrite(str(out / "cc" / png.name), code, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        shutil.copyfile(png.with_name(png.stem + "_metadata.json"), out / "cc" / (png.stem + "_metadata.json"))
    photos = sorted((SHARED / "data" / "photos" / "kodak24").glob("*.png")) + \
        sorted((SHARED / "data" / "photos" / "cbsd68").glob("*.png"))
    used = 0
    for photo in photos:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        scale = min(1.0, SIDE / max(image.shape[:2]))
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if _size(out) + len(buf) + 2000 > LIMIT - MARGIN:
            break
        (out / "photos" / f"{photo.parent.name}_{photo.stem}.jpg").write_bytes(buf.tobytes())
        used += 1
    manifest = {"cc_encoding": "uint16 PNG of round(4095*sqrt(v/65535)); v = (code/4095)^2*65535",
                "photos": used, "photos_side": SIDE, "source": "../shared (INTEL-TAU terms; Kodak; BSD research use)"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    total = _size(out)
    print(f"{out}: {total / 2**20:.2f} MiB ({len(list((out / 'cc').glob('*.png')))} raw images, {used} photos)")
    if total > LIMIT:
        sys.exit(f"pack is {total} bytes, over the {LIMIT}-byte limit")


def unpack(pack_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for png in sorted((pack_dir / "cc").glob("*.png")):
        code = cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.float64)
        raw = np.round((code / 4095.0) ** 2 * 65535.0).clip(0, 65535).astype(np.uint16)
        cv2.imwrite(str(out / png.name), raw)
        meta = png.with_name(png.stem + "_metadata.json")
        shutil.copyfile(meta, out / meta.name)
    print(f"unpacked {len(list(out.glob('*.png')))} images into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="pack folder to write")
    parser.add_argument("--unpack", nargs=2, metavar=("PACK", "DIR"), help="decode PACK/cc into DIR")
    args = parser.parse_args()
    if args.unpack:
        unpack(Path(args.unpack[0]), Path(args.unpack[1]))
    elif args.out:
        pack(Path(args.out))
    else:
        parser.error("give OUT, or --unpack PACK DIR")


if __name__ == "__main__":
    main()
