"""Cross-validation of the single-image intrinsic networks (IntrinSeg, CGIntrinsics, Ma et al.) on the 10 MIT objects.

5 folds of two held-out objects (``engine.train.intrinsic_data.FOLDS``); each fold's network never saw its two
objects. Scores are the benchmark's Grosse LMSE (``engine.metrics`` ``grosse_lmse``: ½ albedo LMSE + ½ shading
LMSE, 20×20 windows every 10 px, inside the mask) of the methods' runners on the benchmark's input convention
(linear ÷ max, sRGB-encoded; ``mit_benchmark_input``).

    # on the training machine, after the fold runs (scripts/gpu_train/intrinseg.sh):
    python scripts/intrinsic_cv.py predict --runs RUNS --mit PACK/mit --out OUTDIR
    # here: re-score the returned fold predictions on the full-precision data, beside Color Retinex and JieP:
    python scripts/intrinsic_cv.py score --pred OUTDIR/folds --mit ../shared/data/mit-intrinsic --json cv.json

``predict`` expects ``RUNS/<net>_f<k>/export/<net>-*.safetensors`` for k = 0…4 and writes
``OUT/folds/<net>/<object>_albedo.png`` / ``_shading.png`` (8-bit sRGB of the layer ÷ its max, grey for
shading) and ``OUT/fold_scores.json``. ``score`` runs the baselines through ``engine.registry.run_method`` with their
default parameters, exactly as the benchmark does, and reads each network's predictions (or, with
``--weights NET=PATTERN`` where PATTERN holds ``{fold}``, runs the fold weights here, with the runners' defaults:
the networks average each answer with the mirrored photo's, ``tta=flip``; ``--param tta=none`` scores one pass).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.imaging import linear_to_srgb  # noqa: E402
from engine.train.intrinsic_data import (FOLDS, MIT_OBJECTS, as_benchmark_stores, grosse_scores,  # noqa: E402
                                         load_mit_object, mit_benchmark_input, read_linear)

NETS = ("intrinseg", "cgintrinsics", "ma2018")


def _fold_of(name: str) -> int:
    return next(k for k, pair in enumerate(FOLDS) if name in pair)


SCORED = {"intrinseg": ("albedo", "shading"), "ma2018": ("albedo", "shading"),
          "cgintrinsics": ("reflectance", "shading"),
          "baseline_color_retinex": ("reflectance", "shading"), "jiep": ("reflectance", "illumination")}


def benchmark_view(method: str, layers: dict) -> tuple[np.ndarray, np.ndarray]:
    """The method's reflectance and shading as the benchmark scores them (16-bit PNG clipped to [0, 1], declared
    colour space → linear)."""
    from engine.registry import OutputKind, get_method

    spec = get_method(method)
    out = []
    for name in SCORED[method]:
        o = spec.output(name)
        out.append(as_benchmark_stores(layers[name], o.colour_space, o.kind == OutputKind.GREY))
    return out[0], out[1]


def _run_net(net: str, weights: str, obj: dict, device: str = "auto", params: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """The network on the object's benchmark input, with the object mask, as the benchmark hands them to a method
    (``engine.benchmark.convention``: the mask travels as the input's alpha; Ma et al. scales its layers inside it),
    with the runner's defaults unless ``params`` says otherwise (e.g. ``{"tta": "none"}``)."""
    from engine.registry import MethodInput, run_method

    inputs = MethodInput(frames=(mit_benchmark_input(obj),), mask=obj["mask"])
    result, _, _ = run_method(net, inputs, dict(params or {}), device=device, weights=weights)
    return benchmark_view(net, result.layers)


def _renormalise(net: str, albedo: np.ndarray, shading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saved predictions (÷ max) → the runner's own display scaling (99th percentile at 1), then the benchmark view."""
    import importlib

    module = importlib.import_module(f"engine.methods.{net}")
    names = SCORED[net]
    return benchmark_view(net, {names[0]: module._normalise(albedo)[0],
                                names[1]: module._normalise(shading)[0]})


def _save(folder: Path, name: str, albedo: np.ndarray, shading: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    a = linear_to_srgb(np.clip(albedo / max(float(albedo.max()), 1e-8), 0, 1))
    cv2.imwrite(str(folder / f"{name}_albedo.png"), np.round(a * 255).astype(np.uint8)[:, :, ::-1])
    s = shading.mean(axis=2) if shading.ndim == 3 else shading
    s = linear_to_srgb(np.clip(s / max(float(s.max()), 1e-8), 0, 1))
    cv2.imwrite(str(folder / f"{name}_shading.png"), np.round(s * 255).astype(np.uint8))


def predict(args) -> int:
    runs, out = Path(args.runs), Path(args.out)
    report: dict = {"protocol": "5-fold CV over the 10 MIT objects, benchmark Grosse LMSE (½ albedo + ½ shading "
                                "LMSE), benchmark input convention, runner defaults; data: " + str(args.mit),
                    "folds": [list(p) for p in FOLDS], "nets": {}}
    for net in args.nets.split(","):
        per_object = {}
        for k in range(len(FOLDS)):
            files = sorted((runs / f"{net}_f{k}" / "export").glob(f"{net}-*.safetensors"))
            if not files:
                print(f"{net} fold {k}: no export under {runs / f'{net}_f{k}'}", file=sys.stderr)
                continue
            for name in FOLDS[k]:
                obj = load_mit_object(args.mit, name, lights=False)
                albedo, shading = _run_net(net, str(files[0]), obj, args.device)
                per_object[name] = grosse_scores(albedo, shading, obj)
                if not args.no_images:
                    _save(out / "folds" / net, name, albedo, shading)
        if per_object:
            report["nets"][net] = {"objects": per_object, "mean": {
                key: float(np.mean([s[key] for s in per_object.values()])) for key in next(iter(per_object.values()))},
                "n": len(per_object)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fold_scores.json").write_text(json.dumps(report, indent=2))
    for net, entry in report["nets"].items():
        print(f"{net}: 5-fold Grosse LMSE {entry['mean']['grosse_lmse']:.4f} over {entry['n']} objects")
    return 0


def score(args) -> int:
    from engine.registry import MethodInput, run_method

    rows: dict[str, dict[str, dict[str, float]]] = {}
    timing: dict[str, float] = {}
    weights = dict(item.split("=", 1) for item in (args.weights or []))
    net_params = dict(item.split("=", 1) for item in (args.param or []))
    objects = args.objects.split(",") if args.objects else list(MIT_OBJECTS)
    for name in objects:
        obj = load_mit_object(args.mit, name, lights=False)
        image = mit_benchmark_input(obj)
        for method in args.baselines.split(","):
            if not method:
                continue
            start = time.perf_counter()
            result, _, _ = run_method(method, MethodInput(frames=(image,), mask=obj["mask"]), {}, device="cpu")
            timing[method] = timing.get(method, 0.0) + time.perf_counter() - start
            rows.setdefault(method, {})[name] = grosse_scores(*benchmark_view(method, result.layers), obj)
        for net in NETS:
            if net in weights:
                pattern = weights[net]
                albedo, shading = _run_net(net, pattern.format(fold=_fold_of(name)), obj, "cpu", net_params)
                label = f"{net} (CV)" if "{fold}" in pattern else f"{net} ({Path(pattern).name})"
                rows.setdefault(label, {})[name] = grosse_scores(albedo, shading, obj)
            elif args.pred and (Path(args.pred) / net / f"{name}_albedo.png").is_file():
                albedo = read_linear(Path(args.pred) / net / f"{name}_albedo.png")
                shading = read_linear(Path(args.pred) / net / f"{name}_shading.png")
                if net == "cgintrinsics":
                    shading = shading[..., :1]
                rows.setdefault(f"{net} (CV)", {})[name] = grosse_scores(*_renormalise(net, albedo, shading), obj)
    table = {}
    print(f"{'method':28s} {'grosse':>8s} {'albedo':>8s} {'shading':>8s}  n")
    for method, per in rows.items():
        mean = {k: float(np.mean([s[k] for s in per.values()])) for k in ("grosse_lmse", "albedo_lmse",
                                                                          "shading_lmse")}
        table[method] = {"mean": mean, "objects": per, "n": len(per)}
        print(f"{method:28s} {mean['grosse_lmse']:8.4f} {mean['albedo_lmse']:8.4f} {mean['shading_lmse']:8.4f}  "
              f"{len(per)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"objects": objects, "folds": [list(p) for p in FOLDS],
                                               "table": table, "baseline_seconds": timing}, indent=2))
    return 0


def halve(args) -> int:
    """Write a float16 copy of each weight file and measure what it changes: the Grosse LMSE of both precisions
    on the given MIT objects (the runner on the CPU or the device given)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    report = {}
    files = []
    for item in args.files:  # every float16 file first, so a slow scoring pass never leaves one missing
        net, path = item.split("=", 1)
        path = Path(path)
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
        target = Path(args.out_dir) / f"{path.stem}-fp16.safetensors" if args.out_dir else \
            path.with_name(f"{path.stem}-fp16.safetensors")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(half, str(target), metadata={**metadata, "dtype": "float16"})
        files.append((net, path, target))
    for net, path, target in files:
        scores = {}
        for label, file in (("float32", path), ("float16", target)):
            per = {}
            for name in (args.objects.split(",") if args.objects else MIT_OBJECTS):
                obj = load_mit_object(args.mit, name, lights=False)
                albedo, shading = _run_net(net, str(file), obj, args.device)
                per[name] = grosse_scores(albedo, shading, obj)["grosse_lmse"]
            scores[label] = {"mean": float(np.mean(list(per.values()))), "objects": per,
                             "bytes": file.stat().st_size}
        report[net] = {"file": path.name, "fp16_file": target.name, **scores,
                       "max_abs_difference": max(abs(scores["float32"]["objects"][k] - scores["float16"]["objects"][k])
                                                 for k in scores["float32"]["objects"])}
        print(f"{net}: float32 {scores['float32']['mean']:.5f}, float16 {scores['float16']['mean']:.5f} "
              f"(largest per-object change {report[net]['max_abs_difference']:.2e})")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--runs", required=True)
    p.add_argument("--mit", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--device", default="auto")
    p.add_argument("--no-images", action="store_true")
    s = sub.add_parser("score")
    s.add_argument("--mit", required=True)
    s.add_argument("--pred", default=None, help="folder with <net>/<object>_albedo.png from predict")
    s.add_argument("--weights", nargs="*", help="NET=PATH_PATTERN with {fold}, to run fold weights here")
    s.add_argument("--baselines", default="baseline_color_retinex,jiep")
    s.add_argument("--objects", default="")
    s.add_argument("--param", nargs="*", help="NAME=VALUE for every network run with --weights (not the baselines), "
                                             "e.g. tta=none for one pass instead of the default mirror averaging")
    s.add_argument("--json", default=None)
    h = sub.add_parser("halve")
    h.add_argument("files", nargs="+", help="NET=PATH.safetensors")
    h.add_argument("--mit", required=True)
    h.add_argument("--objects", default="")
    h.add_argument("--out-dir", default=None)
    h.add_argument("--device", default="auto")
    h.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    return {"predict": predict, "score": score, "halve": halve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
