"""Model-card picture for Attentive GAN: held-out photos with rendered drops, one row each: rainy | output of each
weight file given | clean | the last attention map of the last weight file.

    python scripts/attentive_gan_figure.py OUT.jpg --weights A.safetensors [B.safetensors ...] \\
        [--drops heavy] [--photos kodim03 208001 ...] [--height 200]

The photos are the recipe's held-out backgrounds (CRC-32 of the file stem ≡ 0 mod 10) of ../shared/data/photos and
../shared/data/lol/our485/high, at short side 384, with drops rendered exactly as the evaluation renders them
(seed 1,000,000 + the photo's index among the held-out ones), so each row's PSNR is the one the evaluation prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def _tile(image: np.ndarray, text: str, size: tuple[int, int]) -> np.ndarray:
    """``image`` (float RGB in [0, 1]) resized to ``size`` as uint8 RGB, with ``text`` on a black band at the top."""
    small = cv2.resize(np.clip(image, 0, 1), size, interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(np.round(small * 255).astype(np.uint8))
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    import torch

    from engine.methods.attentive_gan import build_from_state
    from engine.metrics import fidelity
    from engine.metrics.fidelity import Protocol
    from engine.synth.raindrops import DROP_PRESETS
    from engine.train.attentive_gan_recipe import _pad4, held_out_pairs
    from engine.weights import load_state_dict

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--weights", nargs="+", required=True)
    parser.add_argument("--names", nargs="*", help="a column title per weight file (default: the file stems)")
    parser.add_argument("--drops", default="heavy", choices=sorted(DROP_PRESETS))
    parser.add_argument("--photos", nargs="*", default=["kodim03", "208001", "523"],
                        help="stems of held-out photos (default: three of them)")
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--short-side", type=int, default=384)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.names or [Path(w).stem for w in args.weights]
    generators = [build_from_state(load_state_dict(w))[0].eval() for w in args.weights]
    # the evaluation's own pairs (same backgrounds in the same order, same seeds), so each PSNR is the one it prints
    pairs = {path.stem: sample for path, sample in held_out_pairs(
        [SHARED / "data/photos", SHARED / "data/lol/our485/high"], args.short_side, args.drops)}
    rows = []
    for stem in args.photos:
        if stem not in pairs:
            parser.error(f"{stem} is not a held-out photo; choose from {', '.join(pairs)}")
        sample = pairs[stem]
        rainy, clean = sample["rainy"], sample["clean"]
        x = torch.from_numpy(np.ascontiguousarray(rainy.transpose(2, 0, 1)))[None]
        tiles = [(rainy, f"rainy {fidelity.psnr(clean, rainy, Protocol()):.1f} dB")]
        attention = None
        with torch.no_grad():
            for name, generator in zip(names, generators):
                padded, h, w = _pad4(x)
                outs = generator(padded)
                out = outs[3][0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy()
                attention = outs[0][-1][0, 0, :h, :w].clamp(0, 1).numpy()
                tiles.append((out, f"{name} {fidelity.psnr(clean, out, Protocol()):.1f} dB"))
        tiles.append((clean, "clean"))
        heat = cv2.applyColorMap(np.round(attention * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]
        tiles.append((heat.astype(np.float32) / 255, f"attention ({names[-1]})"))
        size = (int(round(rainy.shape[1] * args.height / rainy.shape[0])), args.height)
        rows.append(np.concatenate([_tile(image, text, size) for image, text in tiles], 1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
