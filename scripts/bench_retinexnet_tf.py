"""RetinexNet on the CPU against the authors' graph in TensorFlow: same weights, same photo, same thread count.

The TensorFlow side rebuilds the authors' graph from the facts of their code (DecomNet: max-channel + RGB input,
a linear 9×9 convolution, five 3×3 ReLU convolutions, a 3×3 sigmoid output; RelightNet: three stride-2
convolutions, nearest resizes with TF1 ``resize_nearest_neighbor`` semantics, the 192-channel concatenation and its
1×1 fusion, a 3×3 output; 'SAME' padding everywhere) with this project's weights, and runs it as one
``tf.function`` graph. It first checks that both give the same enhanced image (max difference printed), then times
both at each size (median of ``--repeat`` after one warm-up run). TensorFlow is not a dependency of the project:
install it in a separate environment and pass its interpreter.

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    .venv/bin/python scripts/bench_retinexnet_tf.py --tf-python /tmp/tfvenv/bin/python --threads 2 \\
        --sizes 600x400,1920x1080

The project's side is timed as a user meets it: ``run_method`` with the default parameters (float32 here; whole, or
tiled when the job's memory budget, ``INTRINSIC_LAB_MAX_JOB_MEMORY``, needs it) and, for comparison, whole; both
without the reflectance denoising (``denoise=false``), which the authors' graph does not have either.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# --- TensorFlow side (runs under --tf-python; imports neither torch nor the project) ---------------------------

def _tf_main(folder: Path, threads: int, repeat: int) -> int:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    weights = dict(np.load(folder / "weights.npz"))

    def conv(x, name, stride=1, act=None):
        y = tf.nn.conv2d(x, weights[f"{name}.weight"], stride, "SAME") + weights[f"{name}.bias"]
        return act(y) if act else y

    def resize(x, like):
        return tf.compat.v1.image.resize_nearest_neighbor(x, tf.shape(like)[1:3])

    @tf.function(reduce_retracing=True)
    def graph(image):
        x = tf.concat([tf.reduce_max(image, axis=3, keepdims=True), image], axis=3)
        x = conv(x, "decom.shallow")
        for i in range(5):
            x = conv(x, f"decom.activated.{i}", act=tf.nn.relu)
        x = tf.sigmoid(conv(x, "decom.recon"))
        r, i_ = x[..., :3], x[..., 3:4]
        c0 = conv(tf.concat([r, i_], axis=3), "relight.conv0")
        c1 = conv(c0, "relight.down.0", 2, tf.nn.relu)
        c2 = conv(c1, "relight.down.1", 2, tf.nn.relu)
        c3 = conv(c2, "relight.down.2", 2, tf.nn.relu)
        d1 = conv(resize(c3, c2), "relight.up.0", act=tf.nn.relu) + c2
        d2 = conv(resize(d1, c1), "relight.up.1", act=tf.nn.relu) + c1
        d3 = conv(resize(d2, c0), "relight.up.2", act=tf.nn.relu) + c0
        fused = conv(tf.concat([resize(d1, d3), resize(d2, d3), d3], axis=3), "relight.fusion")
        delta = conv(fused, "relight.output")
        return r * delta

    results = {}
    for path in sorted(folder.glob("input_*.npy")):
        image = tf.constant(np.load(path)[None])
        out = graph(image).numpy()[0]  # warm-up (tracing, kernels)
        np.save(folder / path.name.replace("input_", "tf_"), out)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            graph(image).numpy()
            times.append(time.perf_counter() - start)
        results[path.stem.replace("input_", "")] = times
    print("TF_RESULT " + json.dumps({"version": tf.__version__, "times": results}))
    return 0


# --- the project's side --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", default=None, help="a Python interpreter with TensorFlow installed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="600x400,1920x1080")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tf-folder", default=None, help=argparse.SUPPRESS)  # internal: the TensorFlow side
    args = parser.parse_args(argv)
    if args.tf_folder:
        return _tf_main(Path(args.tf_folder), args.threads, args.repeat)
    if not args.tf_python:
        parser.error("--tf-python is required (an interpreter with TensorFlow)")

    sys.path.insert(0, str(REPO))
    from engine.threads import apply_thread_policy

    apply_thread_policy(args.threads)
    import torch

    from engine.methods.retinexnet import load_model, tile_plan
    from engine.registry import MethodInput, run_method
    from engine.speed import bench_image

    model, info = load_model(None, torch.device("cpu"))
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    weights = {k: (np.transpose(v, (2, 3, 1, 0)) if v.ndim == 4 else v) for k, v in state.items()}  # OIHW → HWIO
    folder = Path(tempfile.mkdtemp(prefix="retinexnet-tf-"))
    np.savez(folder / "weights.npz", **weights)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    images = {}
    for width, height in sizes:
        image, source = bench_image(height, width)
        images[f"{width}x{height}"] = (np.ascontiguousarray(image, dtype=np.float32), source)
        np.save(folder / f"input_{width}x{height}.npy", images[f"{width}x{height}"][0])
    proc = subprocess.run([args.tf_python, __file__, "--tf-folder", str(folder), "--threads", str(args.threads),
                           "--repeat", str(args.repeat)], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TF_RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    tf_result = json.loads(lines[-1][len("TF_RESULT "):])
    print(f"TensorFlow {tf_result['version']}, torch {torch.__version__}, {args.threads} threads each, float32; "
          f"medians of {args.repeat} after a warm-up run")
    for key, (image, source) in images.items():
        height, width = image.shape[:2]
        runs = {}
        for label, params in (("project default", {"precision": "float32", "denoise": False}),
                              ("project whole", {"precision": "float32", "denoise": False,
                                                 "tile_size": max(height, width)})):
            run_method("retinexnet", MethodInput(frames=(image,)), params, device="cpu")  # warm-up
            times, result = [], None
            for _ in range(args.repeat):
                start = time.perf_counter()
                result, _, _ = run_method("retinexnet", MethodInput(frames=(image,)), params, device="cpu")
                times.append(time.perf_counter() - start)
            runs[label] = (statistics.median(times), result.info.get("tile_size"), result.layers["enhanced"])
        tf_out = np.clip(np.load(folder / f"tf_{key}.npy"), 0.0, 1.0)  # the project clips its enhanced layer
        tf_time = statistics.median(tf_result["times"][key])
        plan = tile_plan(height, width)
        for label, (seconds, tiles, enhanced) in runs.items():
            diff = float(np.abs(np.asarray(enhanced) - tf_out).max())
            print(f"{key:>10}  {label:<16} {seconds:7.2f} s  ({tiles}; {seconds / tf_time:.2f}× TensorFlow)  "
                  f"max |enhanced − TF| {diff:.1e}")
        print(f"{key:>10}  {'TensorFlow graph':<16} {tf_time:7.2f} s  ({source}; the default plan here: "
              f"{plan.rows}×{plan.cols} tiles, work {plan.work:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
