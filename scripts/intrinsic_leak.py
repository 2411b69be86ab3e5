"""How much albedo texture leaks into the shading: a number for what the model cards judge by eye on photographs.

    python scripts/intrinsic_leak.py [--methods cgintrinsics,intrinseg,ma2018,baseline_color_retinex] [--n 32]
        [--size 256] [--textures ../shared/data/lol/our485/high] [--weights METHOD=FILE ...] [--out leak.json]

Held-out scenes: ``engine.synth`` photographic scenes (``style="photographic"``) with seeds from 40,000,000 (the
shipped intrinsic weights trained on seeds below a few thousand), textured with photographs the weights never saw
(default: the LOL photos; the renders CGIntrinsics and IntrinSeg trained on drew their textures from
``../shared/data/photos``, and Ma et al. saw no renders). Each method runs on the
camera image (sRGB, as a user's photo) through :func:`engine.registry.run_method`, the path of ``python -m engine
run``.

**Texture leak.** On the pixels that are not sky, with ``a`` the log luminance of the true albedo, ``s`` that of the
true shading and ``p`` that of the predicted shading (its ``Role.SHADING`` output, linear): the fine detail of each,
``hp(x) = x − blur(x)`` (a Gaussian of ``--sigma`` pixels, normalised over the valid pixels), and the leak is the
least-squares slope of ``hp(p − s)`` on ``hp(a)``:

    leak = Σ hp(p − s)·hp(a) / Σ hp(a)²

0: the shading's error carries none of the albedo's texture; 1: all of it (a method that returns the image as its
shading scores about 1; one that returns a constant shading scores about 0, since ``hp(−s)`` does not follow the
albedo). The shading's own scale and smooth errors do not count (the blur removes them). Printed per method pooled
over all scenes, with the median and the spread over scenes. This measures texture on rendered scenes, not on
photographs; it is a proxy for the cards' pictures, not a replacement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEST_SEED = 40_000_000
LUMA = np.array([0.2126, 0.7152, 0.0722])


def log_luminance(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W[, 1]) linear → (H, W) log luminance."""
    x = np.asarray(x, np.float64)
    if x.ndim == 3 and x.shape[2] == 3:
        x = x @ LUMA
    elif x.ndim == 3:
        x = x[..., 0]
    return np.log(np.maximum(x, 1e-4))


def high_pass(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """x minus its Gaussian blur, the blur normalised over the valid pixels (no mixing with the sky)."""
    import cv2

    m = valid.astype(np.float64)
    blur = cv2.GaussianBlur(x * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-6)
    return (x - blur) * m


def leak_terms(albedo: np.ndarray, shading: np.ndarray, predicted: np.ndarray, valid: np.ndarray,
               sigma: float) -> tuple[float, float]:
    """(Σ hp(p − s)·hp(a), Σ hp(a)²) of one scene, so that scenes pool by summing."""
    a = high_pass(log_luminance(albedo), valid, sigma)
    e = high_pass(log_luminance(predicted) - log_luminance(shading), valid, sigma)
    return float((e * a)[valid].sum()), float((a * a)[valid].sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="cgintrinsics,intrinseg,ma2018,baseline_color_retinex")
    parser.add_argument("--weights", action="append", default=[], metavar="METHOD=FILE",
                        help="weights for one method (default: its shipped default)")
    parser.add_argument("--n", type=int, default=32, help="held-out scenes")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=4.0, help="Gaussian of the high-pass, in pixels")
    parser.add_argument("--textures", default=str(REPO / ".." / "shared" / "data" / "lol" / "our485" / "high"),
                        help="photographs for the scenes' textures (use ones the weights never trained on)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    from engine.registry import MethodInput, Role, get_method, run_method
    from engine.synth.dataset import render_sample
    from engine.synth.scene import load_photo_textures

    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    weights = {}
    for item in args.weights:
        name, _, path = item.partition("=")
        if not path or name not in methods:
            parser.error(f"--weights {item!r}: expected METHOD=FILE for one of {', '.join(methods)}")
        weights[name] = path
    shading_output = {}
    for name in methods:
        spec = get_method(name)
        outputs = [o.name for o in spec.outputs if o.role == Role.SHADING]
        if not outputs:
            parser.error(f"{name} has no shading output")
        shading_output[name] = outputs[0]
    if not Path(args.textures).is_dir():
        parser.error(f"--textures {args.textures}: not a folder of photographs")
    photos = load_photo_textures(args.textures)

    terms = {m: [] for m in methods}
    started = time.time()
    for i in range(args.n):
        sample = render_sample(TEST_SEED + i, args.size, 1, "cpu", photos, style="photographic")
        image = sample["image"][0].permute(1, 2, 0).numpy().astype(np.float32)
        albedo = sample["albedo"].permute(1, 2, 0).numpy()
        shading = sample["shading"][0].permute(1, 2, 0).numpy()
        valid = sample["labels"].numpy() != 0
        for name in methods:
            result, _, _ = run_method(name, MethodInput(frames=(image,)), {}, device="cpu",
                                      weights=weights.get(name))
            predicted = np.asarray(result.layers[shading_output[name]], np.float64)
            terms[name].append(leak_terms(albedo, shading, predicted, valid, args.sigma))
        print(f"scene {i + 1}/{args.n} ({time.time() - started:.0f} s)", flush=True)

    report = {"protocol": {"scenes": args.n, "seeds_from": TEST_SEED, "size": args.size, "style": "photographic",
                           "textures": str(Path(args.textures).resolve()), "sigma_px": args.sigma,
                           "leak": "Σ hp(p−s)·hp(a) / Σ hp(a)² over non-sky pixels, pooled over scenes"},
              "weights": weights, "methods": {}}
    print(f"\ntexture leak into the shading on {args.n} held-out photographic scenes ({args.size} px, textures "
          f"from {args.textures}); 0 = none, 1 = all")
    print("| method | leak (pooled) | median over scenes | 25–75 % of scenes |\n|---|---|---|---|")
    for name in methods:
        num = np.array([t[0] for t in terms[name]])
        den = np.array([t[1] for t in terms[name]])
        per_scene = num / np.maximum(den, 1e-12)
        pooled = float(num.sum() / max(den.sum(), 1e-12))
        q25, q50, q75 = (float(v) for v in np.percentile(per_scene, [25, 50, 75]))
        report["methods"][name] = {"leak": pooled, "median": q50, "q25": q25, "q75": q75,
                                   "per_scene": per_scene.tolist()}
        print(f"| {name} | {pooled:.3f} | {q50:.3f} | {q25:.3f}–{q75:.3f} |")
    return save(report, args.out)


def save(report: dict, out: Path | None) -> int:
    """Write the report as JSON (when asked), so a model card can point at the figures it quotes."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
