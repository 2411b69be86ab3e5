"""Measure each method's memory cost per input pixel, the number ``MethodSpec.bytes_per_pixel`` declares.

For every method, a forked child runs it on a synthetic input at two sizes; the cost per pixel is the growth of the
child's peak resident set (``ru_maxrss`` from ``wait4``) between the small and the large size, divided by the growth
in input pixels (frames × height × width), so the process's fixed cost (Python, torch, weights) cancels out.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/method_memory.py [--methods jiep,weiss] [--side 1024] [--malloc tcmalloc|system]

Prints one line per method: measured bytes/pixel and the declared value; then, at the large size, whether the job
check (:func:`engine.limits.job_memory`) lets the job run and whether the growth measured there stays within the job
memory budget (methods that tile, RetinexNet and Attentive GAN, size their tiles from that budget, so their declared
estimate counts only the full-size buffers). A 12-megapixel photo (``--size 4000x3000``) should run and fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _input(spec, side: int | tuple[int, int]):
    from engine.registry import InputKind, MethodInput

    rng = np.random.default_rng(0)
    h, w = side if isinstance(side, tuple) else (side, side * 3 // 2)
    base = np.clip(rng.random((h, w, 3), dtype=np.float32) * 0.6 + 0.2, 0, 1)
    low, _ = spec.input_kind.frame_range
    frames = tuple(np.clip(base * (0.5 + 0.25 * k), 0, 1).astype(np.float32) for k in range(max(low, 1)))
    if spec.input_kind == InputKind.IMAGE_SEQUENCE:
        frames = tuple(np.clip(base * (0.4 + 0.1 * k), 0, 1).astype(np.float32) for k in range(4))
    return MethodInput(frames=frames), len(frames) * h * w


def _peak_in_child(name: str, side: int | tuple[int, int], params: dict | None = None) -> tuple[int, int, float]:
    """(peak RSS bytes, input pixels, seconds) of running ``name`` at ``side`` in a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        status = 1
        try:
            from engine.registry import get_method, run_method

            spec = get_method(name)
            inputs, pixels = _input(spec, side)
            start = time.perf_counter()
            run_method(name, inputs, dict(params or {}), device="cpu")
            os.write(write, f"{pixels} {time.perf_counter() - start}".encode())
            status = 0
        except BaseException as exc:  # noqa: BLE001 - report and leave
            os.write(write, f"-1 0 {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(status)
    os.close(write)
    text = os.read(read, 4096).decode()
    os.close(read)
    _, status, usage = os.wait4(pid, 0)
    parts = text.split(" ", 2)
    if int(parts[0]) < 0:
        raise RuntimeError(parts[2] if len(parts) > 2 else text)
    return usage.ru_maxrss * 1024, int(parts[0]), float(parts[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="", help="comma-separated (default: every registered method)")
    parser.add_argument("--side", type=int, default=768, help="height of the large input (width = 1.5 × height)")
    parser.add_argument("--size", default=None, metavar="WxH", help="the large input's size instead of --side")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a method parameter for both sizes (e.g. ma2018.max_side=2048)")
    parser.add_argument("--malloc", default=None, choices=("auto", "tcmalloc", "system"),
                        help="C heap of the measured children (default: INTRINSIC_LAB_MALLOC, else auto, as the "
                             "worker and the CLI run; engine/allocator.py)")
    args = parser.parse_args()
    from engine.allocator import MODE_ENV, current_mode, preload_tcmalloc

    if args.malloc:
        os.environ[MODE_ENV] = args.malloc
    preload_tcmalloc()  # may start this script again, with tcmalloc preloaded
    print(f"C heap: {current_mode()} (the forked children inherit it)")
    import torch

    torch.set_num_threads(1)
    from engine.registry import all_methods, get_method

    from engine.limits import human_bytes, job_memory, limits

    large_size: int | tuple[int, int] = args.side
    if args.size:
        w, _, h = args.size.lower().partition("x")
        large_size = (int(h), int(w))
    names = [n for n in args.methods.split(",") if n] or [s.name for s in all_methods()]
    given: dict[str, dict[str, str]] = {}
    for text in args.param:
        key, sep, value = text.partition("=")
        method, dot, pname = key.partition(".")
        if not (sep and dot):
            parser.error(f"--param expects METHOD.NAME=VALUE, got {text!r}")
        given.setdefault(method.strip(), {})[pname.strip()] = value.strip()
    for name in names:
        spec = get_method(name)
        params = spec.resolve_params(given.get(name, {}))
        try:
            small = _peak_in_child(name, 64, params)
            large = _peak_in_child(name, large_size, params)
        except RuntimeError as exc:
            print(f"{name:28s} skipped: {exc}")
            continue
        per_pixel = (large[0] - small[0]) / max(1, large[1] - small[1])
        print(f"{name:28s} {per_pixel:7.1f} B/px measured (peak {large[0] / 2**20:.0f} MiB at {large[1] / 1e6:.2f} MP, "
              f"{large[2]:.1f} s); declared {spec.bytes_per_pixel}")
        h, w = large_size if isinstance(large_size, tuple) else (large_size, large_size * 3 // 2)
        frames = large[1] // (h * w)
        expected = job_memory(spec, frames, w, h, params)
        grown = large[0] - small[0]
        budget = limits().max_job_memory
        verdict = "lets it run" if expected <= budget else "REFUSES it"
        print(f"{'':28s} at {w}×{h}: the job check estimates {human_bytes(expected)} and {verdict} (budget "
              f"{human_bytes(budget)}); measured growth {human_bytes(grown)}, "
              f"{'within' if grown <= budget else 'OVER'} the budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
