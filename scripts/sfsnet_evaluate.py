"""Evaluate SfSNet weights: normals on held-out synthetic faces, real photos by eye, and the 12 MP speed.

    python scripts/sfsnet_evaluate.py [--weights NAME_OR_FILE] [--n 256] [--photos OUT_DIR] [--speed]

* Held-out faces: rendered by engine.synth.faces with seeds from 30,000,000 (never used by training, which draws
  seeds from seed·10⁸ ≥ 0 upwards for at most a few million faces, nor by validation, 10,000,000+): other
  identities, expressions, poses and lights. Prints the mean angular error of the normals over all face pixels and
  the % of pixels under 20°/25°/30° (engine.metrics.angular.normal_errors), plus the per-face mean, and the albedo
  L1. ``--cast-shadows P`` renders that share of them with their lights' cast shadows (the truth unchanged) and adds
  the **shadow leak**: the same faces also go through the network without their shadows, and the median log change
  of the albedo the shadow causes inside it (minus the same on the lit face) is compared with the image's own
  darkening there: the share of the shadow that goes into the albedo (0 %: none). ``--hard-shadows Q`` relights
  that share of the shadowed faces by one strong side light over a weak ambient (``FaceRenderer(hard_shadows=Q)``).
  ``--texture-photos DIR --photo-backgrounds P --albedo-detail Q`` put that share of the held-out faces in front of
  crops of those photographs and give that share the photos' high-pass detail in the skin albedo (the truth carries
  it: ``FaceRenderer(photos=...)``): how far real-looking texture leads the normals astray. Use photographs the
  weights never trained on (the shipped weights trained with ../shared/data/photos; the LOL photos are unused).
* ``--photos DIR``: runs the full method (detection, crops, paste-back, relighting) on every photo of
  ../shared/data/faces/real-photos and the SfSNet sample crops, and writes one contact sheet per input to DIR.
* **Light directionality** (both): |first-order SH| / |order-0 SH| of a light, averaged over the colours
  (:func:`directionality`): 0 for a uniform ambient light, √3 ≈ 1.73 for one directional light alone, in between
  for a mix: the larger, the more one side of a face is lit than the other.
  For the held-out faces it is printed for the truth and for the estimate (an estimate that regresses toward an
  ambient light shows as a lower mean), for the real photos per photo and on average.
* ``--speed``: times the method on a 12-megapixel photo (4000×3000: a real photo scaled up, one face) on the CPU,
  detection included, cold (first call) and warm (median of 3), wall-clock and process CPU time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEST_SEED = 30_000_000


def directionality(sh: torch.Tensor) -> torch.Tensor:
    """(N, 27) SH lights (9 coefficients per colour) → (N,) |L1| / |L0|, averaged over the three colours."""
    sh = sh.reshape(-1, 3, 9).double()
    return (sh[..., 1:4].norm(dim=-1) / sh[..., 0].abs().clamp(min=1e-9)).mean(-1)


def held_out(weights: str | None, n: int, device: str, cast_shadows: float = 0.0,
             hard_shadows: float = 0.0, texture_photos: str | None = None, photo_backgrounds: float = 0.0,
             albedo_detail: float = 0.0) -> dict[str, float]:
    from engine.methods.sfsnet import _load, predict
    from engine.metrics.angular import angle_deg, normal_errors
    from engine.synth.faces import FaceRenderer, load_face_photos

    dev = torch.device(device)
    model, info = _load(weights, dev)
    photos = load_face_photos(texture_photos) if texture_photos else None
    renderer = FaceRenderer(size=128, device=dev, cast_shadows=cast_shadows, hard_shadows=hard_shadows,
                            photos=photos, photo_backgrounds=photo_backgrounds, albedo_detail=albedo_detail)
    truths, preds, masks, per_face = [], [], [], []
    albedo_err = {"all": [], "shadow": []}
    leaks, depths = [], []
    light_truth, light_pred = [], []
    for start in range(TEST_SEED, TEST_SEED + n, 16):
        params = [renderer.sample(seed) for seed in range(start, min(start + 16, TEST_SEED + n))]
        batch = renderer.render_params(params)
        with torch.no_grad():
            out = predict(model, batch["image"])
        # albedo: mean absolute error per channel over the face, and over the pixels a cast shadow darkens by more
        # than 0.05 (summed over RGB) — where a shadow baked into the albedo shows
        err = (out["albedo"] - batch["albedo"]).abs().mean(1)
        light_truth.append(directionality(batch["sh"].cpu()))
        light_pred.append(directionality(out["sh"].cpu()))
        face = batch["mask"][:, 0] > 0.5
        shadow = face & ((batch["diffuse"] - batch["shadowed"]).sum(1) > 0.05)
        albedo_err["all"].append(err[face])
        albedo_err["shadow"].append(err[shadow])
        # shadow leak: the same faces rendered without their cast shadows go through the network too; how much darker
        # (log, grey) its albedo comes out inside the shadows because of them, against the same change on the lit
        # pixels (a global scale change cancels). 0: no shadow in the albedo; the shadow's own depth: all of it.
        lit = face & ~shadow
        if cast_shadows:  # the same faces and lights, without the cast shadows
            twins = [dataclasses.replace(p, shadow=(False, p.shadow[1])) for p in params]
            with torch.no_grad():
                clean = predict(model, renderer.render_params(twins)["image"])
            ratio = torch.log(out["albedo"].mean(1).clamp(min=1e-3)) - torch.log(clean["albedo"].mean(1).clamp(min=1e-3))
        for i in range(len(params) if cast_shadows else 0):
            if int(shadow[i].sum()) >= 20 and int(lit[i].sum()) >= 20:
                leaks.append(float(ratio[i][shadow[i]].median() - ratio[i][lit[i]].median()))
                darkening = torch.log(batch["shadowed"][i].mean(0).clamp(min=1e-4)) - torch.log(
                    batch["diffuse"][i].mean(0).clamp(min=1e-4))
                depths.append(float(darkening[shadow[i]].median()))
        t = batch["normals"].permute(0, 2, 3, 1).cpu().numpy()
        p = out["normals"].permute(0, 2, 3, 1).cpu().numpy()
        m = batch["mask"][:, 0].cpu().numpy() > 0.5
        truths.append(t), preds.append(p), masks.append(m)
        per_face += [float(angle_deg(t[i], p[i])[m[i]].mean()) for i in range(len(t))]
    # all faces' pixels as one (M, 1) "image" for the metric
    stats = normal_errors(np.concatenate(truths).reshape(-1, 1, 3), np.concatenate(preds).reshape(-1, 1, 3),
                          np.concatenate(masks).reshape(-1, 1))
    stats["per_face_mean"] = float(np.mean(per_face))
    stats["per_face_worst"] = float(np.max(per_face))
    stats["albedo_l1"] = float(torch.cat(albedo_err["all"]).mean())
    shadow_px = torch.cat(albedo_err["shadow"])
    stats["albedo_l1_in_cast_shadows"] = float(shadow_px.mean()) if shadow_px.numel() else float("nan")
    stats["cast_shadow_pixels"] = int(shadow_px.numel())
    stats["shadow_leak"] = float(np.mean(leaks)) if leaks else float("nan")
    stats["shadow_leak_faces"] = len(leaks)
    stats["shadow_depth"] = float(np.mean(depths)) if depths else float("nan")
    stats["light_directionality_truth"] = float(torch.cat(light_truth).mean())
    stats["light_directionality_estimate"] = float(torch.cat(light_pred).mean())
    print(f"weights {info['path']} (sha256 {info['sha256'][:12]}…)")
    print(f"held-out synthetic faces: n={n} seeds {TEST_SEED}…{TEST_SEED + n - 1}"
          + (f", {cast_shadows:.0%} of them with cast shadows in the image" if cast_shadows else "")
          + (f", {hard_shadows:.0%} of those relit hard (one side light, weak ambient)" if hard_shadows else "")
          + (f", {photo_backgrounds:.0%} in front of photo crops" if photo_backgrounds else "")
          + (f", {albedo_detail:.0%} with photo detail in the skin albedo" if albedo_detail else "")
          + (f" ({len(photos)} photographs from {texture_photos})" if photos else ""))
    print("albedo: L1 {albedo_l1:.4f} over the face".format(**stats)
          + (", {albedo_l1_in_cast_shadows:.4f} in cast shadows ({cast_shadow_pixels} pixels)".format(**stats)
             if stats["cast_shadow_pixels"] else ""))
    if leaks:
        print("shadow leak {shadow_leak:+.3f} against a shadow depth of {shadow_depth:+.3f} ({share:.0%} of the shadow "
              "goes into the albedo; mean over {shadow_leak_faces} faces of the median log change of the albedo that "
              "the shadow causes, inside it minus on the lit face, and of the image's own log darkening there)"
              .format(share=stats["shadow_leak"] / stats["shadow_depth"], **stats))
    print("light directionality |L1|/|L0|: truth {light_directionality_truth:.3f}, estimate "
          "{light_directionality_estimate:.3f}".format(**stats))
    print("normals: mean {mean:.2f}°, under 20° {under20:.1f} %, under 25° {under25:.1f} %, under 30° {under30:.1f} %; "
          "per-face mean {per_face_mean:.2f}°, worst face {per_face_worst:.2f}°".format(**stats))
    return stats


def photos(weights: str | None, out_dir: Path, shared: Path) -> None:
    import cv2

    from engine.errors import NoFaceError
    from engine.imaging import read_image
    from engine.registry import MethodInput, run_method

    out_dir.mkdir(parents=True, exist_ok=True)
    real = sorted((shared / "data/faces/real-photos").glob("*.png"))
    files = real + sorted((shared / "data/faces/sfsnet-samples/Images").glob("*.png"))
    lights: list[float] = []  # light directionality of the real photos' first faces
    for f in files:
        image = read_image(f).pixels
        try:
            result, ctx, _ = run_method("sfsnet", MethodInput(frames=(image,)), {"relight": "left"}, device="cpu",
                                        weights=weights)
        except NoFaceError as exc:
            print(f"{f.name}: {exc}")
            continue
        if f in real:
            lights.append(float(directionality(torch.tensor(result.values["sh"]))[0]))
        panel = result.layers["faces"][0]
        cv2.imwrite(str(out_dir / f"{f.stem}.png"), (np.clip(panel, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
        print(f"{f.name}: {len(result.values['face_boxes'])} face(s), boxes {result.values['face_boxes']}, "
              f"{ctx.timings['total']:.2f} s" + (f", light directionality {lights[-1]:.3f}" if f in real else ""))
    if lights:
        print(f"real photos: mean light directionality |L1|/|L0| {np.mean(lights):.3f} over {len(lights)} photos "
              f"(first face of each)")


def speed(weights: str | None, shared: Path) -> None:
    import cv2

    from engine.imaging import read_image
    from engine.registry import MethodInput, run_method

    photo = read_image(shared / "data/faces/real-photos/face_08.png").pixels
    canvas = cv2.resize(photo, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    image = np.zeros((3000, 4000, 3), np.float32) + 0.4
    image[:, 500:3500] = canvas
    print(f"12 MP input: {image.shape[1]}×{image.shape[0]} ({image.shape[0] * image.shape[1] / 1e6:.1f} MP)")
    runs = []
    for i in range(4):
        wall, cpu = time.perf_counter(), time.process_time()
        result, ctx, _ = run_method("sfsnet", MethodInput(frames=(image,)), {}, device="cpu", weights=weights)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, dict(ctx.timings)))
        label = "cold" if i == 0 else f"warm {i}"
        print(f"{label}: wall {runs[-1][0]:.2f} s, process CPU {runs[-1][1]:.2f} s, faces "
              f"{len(result.values['face_boxes'])}, stages " + ", ".join(f"{k} {v:.3f}" for k, v in ctx.timings.items()))
    print(f"warm median: wall {np.median([r[0] for r in runs[1:]]):.2f} s, "
          f"CPU {np.median([r[1] for r in runs[1:]]):.2f} s (torch threads {torch.get_num_threads()})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default=None)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--cast-shadows", type=float, default=0.0,
                        help="share of the held-out faces rendered with cast shadows (albedo error in them)")
    parser.add_argument("--hard-shadows", type=float, default=0.0,
                        help="share of the shadowed faces relit by one strong side light over a weak ambient")
    parser.add_argument("--texture-photos", default=None, metavar="DIR",
                        help="photographs for --photo-backgrounds and --albedo-detail of the held-out faces")
    parser.add_argument("--photo-backgrounds", type=float, default=0.0,
                        help="share of the held-out faces in front of a crop of a photograph")
    parser.add_argument("--albedo-detail", type=float, default=0.0,
                        help="share of the held-out faces with a photograph's high-pass detail in the skin albedo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--photos", default=None, help="folder for the contact sheets of the real photos")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[1] / ".." / "shared"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if (args.photo_backgrounds or args.albedo_detail) and not args.texture_photos:
        parser.error("--photo-backgrounds and --albedo-detail need --texture-photos DIR")
    torch.set_num_threads(args.threads)
    if args.n:
        held_out(args.weights, args.n, args.device, args.cast_shadows, args.hard_shadows, args.texture_photos,
                 args.photo_backgrounds, args.albedo_detail)
    if args.photos:
        photos(args.weights, Path(args.photos), Path(args.shared))
    if args.speed:
        speed(args.weights, Path(args.shared))
    return 0


if __name__ == "__main__":
    sys.exit(main())
