"""``python -m engine.speed``: wall time and peak memory of methods on fixed inputs, CPU and CUDA.

Each case runs in its own subprocess, so that the CPU peak (``ru_maxrss``, the process's resident-set high-water
mark) belongs to that case alone; the number reported is the peak minus the resident set just before the timed
runs, i.e. what the method itself added on top of its loaded input. ``tracemalloc`` cannot be used: torch
allocates outside Python's allocator. On CUDA the peak is ``torch.cuda.max_memory_allocated``.

Cases are a small registry: :func:`bench_case` registers ``setup(device) -> run``, where ``run()`` performs one
timed repetition and returns a dict of diagnostics. To add one (RetinexNet, ...)::

    bench_case("mymethod-600x400", "MyMethod on one 600×400 photo")(method_setup("mymethod", 400, 600))

Examples::

    python -m engine.speed                                   # every case, CPU and CUDA when present
    nice -n 10 python -m engine.speed --cases jiep-600x400 --device cpu --repeat 5 --threads 1
    python -m engine.speed --cases jiep-600x400 --device cpu --busy 1   # idle, then beside 1 busy process

``--busy N`` runs every case twice: first as it is, then while N other processes each keep a core busy (a
spinning loop, like any other compute process sharing the machine), and prints the ratio busy / idle of the median
wall times. The busy processes stop by themselves: when the case ends, when this process goes away, or after
``--busy-seconds`` at the latest. ``--busy-priority idle`` runs them at the priority this project gives its own
training runs and sweeps (:func:`engine.threads.background_priority`); by default they compete as equals, and then a job
that keeps both cores of a 2-core machine busy can get at most 2 of the 3 runnable threads' share, 1.33 cores: 1.5×
its idle time is the floor for perfectly parallel work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .registries import Registry

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", REPO.parent / "shared"))
_LOL_PHOTO = "data/lol/our485/low/102.png"


@dataclass(frozen=True)
class BenchCase:
    name: str
    description: str
    setup: Callable[[Any], Callable[[], dict]]  # setup(torch.device) -> run(); run() -> diagnostics
    repeat: int = 3  # timed repetitions unless --repeat says otherwise
    warmup: bool = True  # one untimed run first (one-off costs: kernel loading, allocator growth)


BENCH_CASES: Registry[BenchCase] = Registry("bench case")


class CaseUnavailable(Exception):
    """Raised by a case's setup when what it needs is missing here (e.g. the shared data folder): the case is
    reported as skipped, with the reason, not as a failure."""


def bench_case(name: str, description: str, *, repeat: int = 3, warmup: bool = True):
    """Register ``setup(device) -> run`` as a bench case; a duplicate name is an error."""
    def register(setup: Callable[[Any], Callable[[], dict]]):
        BENCH_CASES.add(name, BenchCase(name, description, setup, repeat, warmup))
        return setup
    return register


# --- inputs ---------------------------------------------------------------------------------------------------

def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic stand-in for a photo when ../shared is absent: smooth uneven lighting times a
    piecewise-constant reflectance with edges at many scales, plus sensor noise. (H, W, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= height
    xx /= width
    light = 0.08 + 0.5 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.4) ** 2) / 0.1)
    refl = np.full((height, width, 3), 0.5, np.float32)
    for _ in range(200):
        h, w = rng.uniform(0.01, 0.3, 2)
        y, x = rng.uniform(0, 1, 2)
        box = (yy >= y) & (yy < y + h) & (xx >= x) & (xx < x + w)
        refl[box] = rng.uniform(0.1, 1.0, 3)
    image = refl * light[..., None] + rng.normal(0, 0.01, (height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def bench_image(height: int, width: int) -> tuple[np.ndarray, str]:
    """The LOL low-light photo 102 resized to (height, width) when ../shared is present, else a synthetic one."""
    path = SHARED / _LOL_PHOTO
    if path.is_file():
        import cv2

        from .imaging import read_image

        image = read_image(path).pixels
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
            return np.ascontiguousarray(image, dtype=np.float32), f"LOL {path.name} resized to {width}×{height}"
        return image, f"LOL {path.name} ({width}×{height})"
    return synthetic_photo(height, width), f"synthetic {width}×{height}"


def _run_method(name: str, frames: tuple[np.ndarray, ...], device, params: dict | None = None) -> dict:
    from .registry import MethodInput, run_method

    result, ctx, _ = run_method(name, MethodInput(frames=frames), params, device=str(device))
    keep = {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))}
    return {**keep, "method_threads": ctx.threads, "timings_s": {k: round(v, 4) for k, v in ctx.timings.items()}}


# --- cases ----------------------------------------------------------------------------------------------------

def method_setup(method: str, height: int, width: int, params: dict | None = None):
    """A case's ``setup``: run registered method ``method`` with ``params`` on :func:`bench_image`."""
    def setup(device):
        image, source = bench_image(height, width)
        return lambda: {"input": source, **_run_method(method, (image,), device, params)}
    return setup


bench_case("jiep-600x400", "JieP, default parameters, one 600×400 photo (the authors' code: ~1.9 s in Octave)")(
    method_setup("jiep", 400, 600))
bench_case("jiep-1024x680", "JieP, default parameters, one 1024×680 photo (the authors' code: ~7.7 s in Octave)")(
    method_setup("jiep", 680, 1024))
bench_case("jiep-12mp", "JieP, default parameters, one 4000×3000 (12 MP) photo", repeat=1, warmup=False)(
    method_setup("jiep", 3000, 4000))
bench_case("retinexnet-600x400", "RetinexNet, project weights, one 600×400 photo, default precision (auto)")(
    method_setup("retinexnet", 400, 600))
bench_case("retinexnet-600x400-fp32", "RetinexNet, project weights, one 600×400 photo, float32")(
    method_setup("retinexnet", 400, 600, {"precision": "float32"}))
bench_case("retinexnet-1080p-fp32", "RetinexNet, one 1920×1080 photo, float32, tiled only if the job's memory budget "
           "(INTRINSIC_LAB_MAX_JOB_MEMORY) needs it", repeat=1, warmup=False)(
    method_setup("retinexnet", 1080, 1920, {"precision": "float32"}))
bench_case("retinexnet-1080p-fp32-tile768", "RetinexNet, one 1920×1080 photo, float32, the former fixed 768 px CPU "
           "tiles", repeat=1, warmup=False)(
    method_setup("retinexnet", 1080, 1920, {"precision": "float32", "tile_size": 768}))
bench_case("retinexnet-12mp", "RetinexNet, project weights, one 4000×3000 (12 MP) photo, tiled, default precision",
           repeat=1, warmup=False)(method_setup("retinexnet", 3000, 4000))
bench_case("attentive_gan-1mp", "Attentive GAN, project weights, one 1224×816 (1 MP) photo")(
    method_setup("attentive_gan", 816, 1224))
bench_case("attentive_gan-12mp", "Attentive GAN, project weights, one 4000×3000 (12 MP) photo, tiled",
           repeat=1, warmup=False)(method_setup("attentive_gan", 3000, 4000))
bench_case("retinexnet-12mp-fp32", "RetinexNet, project weights, one 4000×3000 (12 MP) photo, tiled, float32",
           repeat=1, warmup=False)(method_setup("retinexnet", 3000, 4000, {"precision": "float32"}))
bench_case("ma2018-1mp", "Ma et al. 2018, shipped weights, one 1000×1000 (1 MP) photo, default parameters")(
    method_setup("ma2018", 1000, 1000))


bench_case("intrinseg-1mp", "IntrinSeg, shipped weights, one 1224×816 (1 MP) photo")(
    method_setup("intrinseg", 816, 1224))
bench_case("cgintrinsics-1mp", "CGIntrinsics, shipped weights, one 1224×816 (1 MP) photo")(
    method_setup("cgintrinsics", 816, 1224))


def _face_12mp_setup(params: dict | None = None):
    """SfSNet on a 12-MP photo with one face: a real face photo scaled to 3000×3000 on a 4000×3000 grey canvas (as
    ``scripts/sfsnet_evaluate.py --speed``); detection, crops and paste-back included."""
    def setup(device):
        import cv2

        from .imaging import read_image

        path = SHARED / "data/faces/real-photos/face_08.png"
        if not path.is_file():
            raise CaseUnavailable(f"needs the face photo {path} (the shared data folder)")
        canvas = cv2.resize(read_image(path).pixels, (3000, 3000), interpolation=cv2.INTER_CUBIC)
        image = np.zeros((3000, 4000, 3), np.float32) + 0.4
        image[:, 500:3500] = canvas
        return lambda: {"input": f"{path.name} scaled into 4000×3000", **_run_method("sfsnet", (image,), device, params)}
    return setup


bench_case("sfsnet-12mp", "SfSNet, shipped weights, one 4000×3000 (12 MP) photo with one face, detection included")(
    _face_12mp_setup())


def _sequence_setup(frames: int):
    """Laffont & Bazin on ``frames`` MIT frames of the apple (``light01``…, linear PNGs as shipped), else one synthetic
    scene at ``frames`` exposures."""
    def setup(device):
        from .imaging import read_image

        files = sorted((SHARED / "data/mit-intrinsic/apple").glob("light*.png"))[:frames]
        if len(files) == frames:
            seq = tuple(read_image(f).pixels for f in files)
            source = f"MIT apple light01–light{frames:02d} ({seq[0].shape[1]}×{seq[0].shape[0]})"
        else:
            scene = synthetic_photo(334, 334)
            seq = tuple(scene * gain for gain in np.linspace(0.5, 1.0, frames, dtype=np.float32))
            source = f"synthetic {frames}×334×334"
        return lambda: {"input": source, **_run_method("laffont_bazin", seq, device)}
    return setup


bench_case("laffont_bazin-10frames", "Laffont & Bazin, default parameters, the 10 MIT frames of one object")(
    _sequence_setup(10))



def _raw_12mp_setup(params: dict | None = None):
    """DS-Net on a 12-MP linear raw image: the first INTEL-TAU image upscaled to 4000×3000 (else a synthetic one)."""
    def setup(device):
        import cv2

        folder = SHARED / "data/color-constancy/intel-tau-imx135"
        files = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if files:
            raw = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)[:, :, ::-1].astype(np.float32) / 65535.0
            image = np.ascontiguousarray(cv2.resize(raw, (4000, 3000), interpolation=cv2.INTER_LINEAR))
            source = f"INTEL-TAU {files[0].name} upscaled to 4000×3000"
        else:
            image, source = synthetic_photo(3000, 4000) * 0.9 + 0.02, "synthetic 4000×3000"
        return lambda: {"input": source, **_run_method("dsnet", (image,), device, params)}
    return setup


bench_case("dsnet-12mp", "DS-Net, shipped weights, one 4000×3000 (12 MP) linear raw image, default parameters "
           "(working side 384)", repeat=3)(_raw_12mp_setup())
bench_case("dsnet-12mp-stride4", "DS-Net, shipped weights, one 12-MP raw image, official stride 4", repeat=3)(
    _raw_12mp_setup({"stride": 4}))

# --- measuring (inside the per-case subprocess) ---------------------------------------------------------------

def _current_rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes


def measure(case: BenchCase, device_name: str, repeat: int, threads: int | None) -> dict:
    import torch

    from .device import describe_device, resolve_device

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    run = case.setup(device)
    if case.warmup:
        run()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    from .allocator import current_mode, release_memory

    release_memory(keep=0)  # what the warm-up freed is not counted in the baseline (with the heap kept, it would be)
    base_rss = _current_rss_bytes()
    times, cpu_times, info = [], [], {}
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        info = run()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    record = {
        "case": case.name, "device": describe_device(device), "threads": torch.get_num_threads(),
        "times_s": [round(t, 4) for t in times], "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        # CPU seconds of this process (all threads): on a shared, loaded machine wall time also counts waiting
        "cpu_median_s": round(statistics.median(cpu_times), 4),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "peak_rss_extra_mb": round((_peak_rss_bytes() - base_rss) / 2**20, 1),
        "malloc": current_mode(),
        "info": info,
    }
    if cuda:
        record["peak_cuda_extra_mb"] = round((torch.cuda.max_memory_allocated(device) - base_cuda) / 2**20, 1)
    return record


# --- busy neighbours ---------------------------------------------------------------------------------------

#: A busy neighbour: spins until its deadline or until its parent (this benchmark) is gone, whichever comes first.
_SPIN = """
import os, sys, time
from engine.threads import set_priority
set_priority(sys.argv[2])
end, parent = time.monotonic() + float(sys.argv[1]), os.getppid()
x = 0
while time.monotonic() < end and os.getppid() == parent:
    for i in range(20000):
        x += i * i
"""


@contextlib.contextmanager
def busy_processes(count: int, seconds: float = 600.0, priority: str = "normal"):
    """``count`` processes that each keep one core busy for at most ``seconds`` (stopped on leaving the block), at CPU
    priority ``priority``: ``normal`` (like any other program), or ``idle`` / ``nice``, what this project gives its
    own training runs and sweeps (:func:`engine.threads.background_priority`)."""
    from .threads import BACKGROUND_MODES

    if priority not in BACKGROUND_MODES:
        raise ValueError(f"unknown priority {priority!r}; one of {', '.join(BACKGROUND_MODES)}")
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN, str(seconds), priority], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
             for _ in range(max(0, count))]
    try:
        time.sleep(0.2 if procs else 0.0)  # let them start spinning before the case's clock starts
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def busy_ratio(idle: dict, busy: dict) -> float:
    """Median wall time beside the busy processes over the idle one."""
    return busy["median_s"] / max(idle["median_s"], 1e-9)


# --- driver ---------------------------------------------------------------------------------------------------

def _devices(requested: str) -> list[str]:
    if requested != "all":
        return [d.strip() for d in requested.split(",") if d.strip()]
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _format(record: dict) -> str:
    info = record.get("info", {})
    mem = f"peak RSS +{record['peak_rss_extra_mb']:.0f} MB"
    if "peak_cuda_extra_mb" in record:
        mem += f", peak CUDA +{record['peak_cuda_extra_mb']:.0f} MB"
    extra = ", ".join(f"{k}={info[k]}" for k in ("iterations", "cg_iterations_total", "precision", "input") if k in info)
    threads = info.get("method_threads") or record["threads"]
    malloc = f"malloc={record['malloc']} " if "malloc" in record else ""
    return (f"{record['case']:<22} {record['device']:<28} threads={threads:<2} {malloc}"
            f"median {record['median_s']:8.3f} s  (min {record['min_s']:.3f}, n={len(record['times_s'])}; "
            f"CPU {record['cpu_median_s']:.3f} s; load {record['load_average']})  {mem}  {extra}")


def main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """``own_process``: this is ``python -m engine.speed`` itself (a per-case process may then restart itself with
    tcmalloc preloaded); a caller that imports :func:`main` keeps its process as it is."""
    parser = argparse.ArgumentParser(prog="python -m engine.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="all", help=f"comma-separated, or 'all': {', '.join(BENCH_CASES)}")
    parser.add_argument("--device", default="all", help="comma-separated cpu, cuda, cuda:N, or 'all' (default)")
    parser.add_argument("--repeat", type=int, default=None, help="timed repetitions (default: per case)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write all records to this JSON file")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="also run every case beside N processes that keep cores busy; print the ratio to idle")
    parser.add_argument("--busy-seconds", type=float, default=600.0, metavar="S",
                        help="the busy processes stop by themselves after this long at the latest (default 600)")
    parser.add_argument("--busy-priority", default="normal", choices=("normal", "nice", "idle"),  # BACKGROUND_MODES
                        help="CPU priority of the busy processes: normal (default, like any other program), or idle "
                             "/ nice, what this project's own training runs and sweeps take")
    parser.add_argument("--malloc", default=None, choices=("auto", "tcmalloc", "system"),
                        help="C heap of the measured processes (default: INTRINSIC_LAB_MALLOC, else auto: tcmalloc "
                             "where installed, else glibc's default, system); see engine/allocator.py")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one case here
    args = parser.parse_args(argv)
    from .allocator import MODE_ENV, preload_tcmalloc
    from .threads import apply_thread_policy

    if args.worker and own_process:
        preload_tcmalloc()  # as `python -m engine` does (may start this process again, with tcmalloc)
    apply_thread_policy(args.threads)  # before torch loads: passive OpenMP waits, this process's share of CPUs

    if args.list:
        for case in BENCH_CASES.values():
            print(f"{case.name:<22} {case.description}")
        return 0
    if args.worker:
        case = BENCH_CASES[args.worker]
        try:
            record = measure(case, args.device, args.repeat or case.repeat, args.threads)
        except CaseUnavailable as exc:
            print(f"BENCH_SKIP {exc}")
            return 0
        print("BENCH_RESULT " + json.dumps(record))
        return 0

    names = list(BENCH_CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in BENCH_CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(BENCH_CASES)}")
    if args.busy < 0:
        parser.error("--busy must be 0 or more")
    records, failures = [], 0
    case_env = {**os.environ, **({MODE_ENV: args.malloc} if args.malloc else {})}  # the per-case processes' allocator
    for name in names:
        for device in _devices(args.device):
            cmd = [sys.executable, "-m", "engine.speed", "--worker", name, "--device", device]
            if args.repeat:
                cmd += ["--repeat", str(args.repeat)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            idle = None
            for busy in ([0, args.busy] if args.busy else [0]):
                with busy_processes(busy, args.busy_seconds, args.busy_priority):
                    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=case_env)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
                skipped = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_SKIP ")]
                if proc.returncode == 0 and skipped and not lines:
                    print(f"{name:<22} {device:<28} skipped: {skipped[0][len('BENCH_SKIP '):]}", flush=True)
                    break
                niced = f", {args.busy_priority} priority" if busy and args.busy_priority != "normal" else ""
                label = f" [beside {busy} busy{niced}]" if args.busy else ""
                if proc.returncode != 0 or not lines:
                    failures += 1
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                    print(f"{name:<22} {device:<28} FAILED{label}: {tail[0]}", flush=True)
                    break
                record = {**json.loads(lines[-1][len("BENCH_RESULT "):]), "busy_processes": busy,
                          "busy_priority": args.busy_priority if busy else None}
                if busy and idle is not None:
                    record["busy_ratio"] = round(busy_ratio(idle, record), 3)
                    label += f"  ratio to idle {record['busy_ratio']:.2f}×"
                idle = idle or record
                records.append(record)
                print(_format(record) + label, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(own_process=True))
