"""Print the hostile-input table of issue 20: every input through the CLI and the dashboard's upload path, each in
its own process, with exit status, the message a user sees, wall time and peak memory.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/hostile_table.py [--fuzz 1000] [--csv table.csv] [--all-rows]

Each case runs in a child forked from this process after the engine is imported, so the time is the work itself and
not Python's start-up; the peak is the child's resident-set high-water mark (``ru_maxrss`` from ``wait4``), which
counts the pages the child touches or inherits as anonymous memory (about 0.2 GB here), not all of the parent's
resident set (printed as the baseline, ~0.36 GB with torch loaded): a fresh ``python -m engine run`` process adds
roughly the difference. A child that runs past
``--timeout`` seconds is killed and reported as a hang. ``cli`` is ``python -m engine run METHOD FILE --out DIR``
(in-process ``engine.cli.main``); ``dashboard`` is what the Decompose page does with an upload
(``prepare_input`` + ``method_problems`` for the method). Verdict ``ok``: no traceback, exit 0 (a result) or 2 (one
user-facing line), no hang, peak under 2 GB.

Budgets are the defaults (``engine/limits.py``). ``--fuzz N`` adds N mutated PNG/JPEG/TIFF/WebP files
(``tests/helpers/badfiles.fuzz_cases``, the same as ``tests/hostile/test_fuzz.py``), summarised unless ``--all-rows``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import badfiles as bf  # noqa: E402

GB = 1 << 30


@dataclass
class Case:
    label: str
    method: str
    files: list[Path]
    params: list[str] = field(default_factory=list)
    kind: str = "image"  # the dashboard's input kind for the upload
    as_nobody: bool = False  # drop root before running (an unreadable file is readable by root)
    dashboard: bool = True  # FIFOs and devices cannot be uploaded through a browser


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bilevel_bomb(width: int = 20_000, height: int = 3_000) -> bytes:
    """A real 1-bit PNG of 60 MP that compresses to ~60 kB (every row zero)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(bf.encoded(np.zeros((16, 16, 3), np.uint8), "JPEG"))
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("frame.png", b"\x00" * (200 << 20))
    return out.getvalue()


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _animated(fmt: str, frames: int, side: int) -> bytes:
    images = [Image.fromarray(np.full((side, side, 3), (7 * k) % 256, np.uint8)) for k in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format=fmt, save_all=True, append_images=images[1:])
    return out.getvalue()


def build_cases(folder: Path) -> list[Case]:
    g = np.round(bf.gradient(400, 600) * 255).astype(np.uint8)
    good = _write(folder, "good-600x400.png", bf.png_bytes(g[:, :, ::-1]))
    nan = bf.gradient(24, 32)[:, :, 0].copy()
    nan[3, 4] = np.nan
    inf = bf.gradient(24, 32)[:, :, 0].copy()
    inf[0, 0] = np.inf
    unreadable = _write(folder, "unreadable.png", bf.png_bytes(g[:40, :40]))
    unreadable.chmod(0)
    fifo = folder / "fifo.png"
    os.mkfifo(fifo)
    sparse = folder / "sparse-300MB.png"
    with open(sparse, "wb") as handle:
        handle.truncate(300 << 20)
    link = folder / "zero-link.png"
    link.symlink_to("/dev/zero")
    many = folder / "frames-500"
    many.mkdir()
    small = bf.png_bytes(np.zeros((8, 8, 3), np.uint8))
    for i in range(500):
        (many / f"{i:03d}.png").write_bytes(small)
    solid = bf.solid_png(7999)
    video = _write(folder, "garbage.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    return [
        # --- the inputs of issue 20 ---
        Case("solid 7999×7999 PNG (203 kB)", "jiep", [_write(folder, "solid-7999.png", solid)]),
        Case("zip of five 7999×7999 PNGs", "laffont_bazin",
             [_write(folder, "five-solid.zip", _zip({f"{i}.png": solid for i in range(5)}))], kind="image_sequence"),
        Case("animated GIF, 20,000 frames of 16×16", "laffont_bazin",
             [_write(folder, "gif-20000.gif", bf.many_frame_gif(20_000))], kind="image_sequence"),
        Case("byte-flipped TIFF", "jiep", [_write(folder, "flipped.tif", bf.byte_flipped(bf.rgb_tiff()))]),
        Case("unreadable file (mode 000, as nobody)", "jiep", [unreadable], as_nobody=True, dashboard=False),
        Case("a FIFO", "jiep", [fifo], dashboard=False),
        Case("/dev/zero", "jiep", [Path("/dev/zero")], dashboard=False),
        Case("float TIFF with one NaN pixel", "jiep", [_write(folder, "nan.tif", bf.float_tiff(nan))]),
        Case("-p alpha=nan", "jiep", [good], ["-p", "alpha=nan"], dashboard=False),
        Case("file name with Markdown (link, image)", "jiep",
             [_write(folder, "[x](https:⁄⁄evil.example) ![i](https:⁄⁄t.example⁄p).png",
                     bf.png_bytes(g[:64, :64]))]),
        # --- more of our own ---
        Case("good 600×400 PNG (reference)", "jiep", [good]),
        Case("empty file", "jiep", [_write(folder, "empty.png", b"")]),
        Case("truncated PNG", "jiep", [_write(folder, "truncated.png", bf.png_bytes(g)[:5000])]),
        Case("text file named .png", "jiep", [_write(folder, "notes.png", b"shopping list: eggs\n" * 20)]),
        Case("PNG header declaring 50000×50000", "jiep", [_write(folder, "bomb-header.png", bf.huge_png_header())]),
        Case("PNG header 8000×8000, tiny IDAT", "jiep",
             [_write(folder, "liar-8000.png", bf.huge_png_header(8000, 8000))]),
        Case("1-bit PNG bomb 20000×3000 (60 MP, 60 kB)", "jiep",
             [_write(folder, "bilevel-bomb.png", _bilevel_bomb())]),
        Case("JPEG header declaring 65000×65000", "jiep",
             [_write(folder, "jpeg-huge.jpg", _jpeg_declaring(65000, 65000))]),
        Case("JPEG header declaring 7000×7000, 16×16 data", "jiep",
             [_write(folder, "jpeg-liar.jpg", _jpeg_declaring(7000, 7000))]),
        Case("16-bit PNG", "jiep", [_write(folder, "deep.png", [c for c in bf.cases() if c[0] == "deep.png"][0][1])]),
        Case("CMYK JPEG", "jiep", [_write(folder, "cmyk.jpg", [c for c in bf.cases() if c[0] == "cmyk.jpg"][0][1])]),
        Case("1×1 PNG", "jiep", [_write(folder, "tiny.png", [c for c in bf.cases() if c[0] == "tiny.png"][0][1])]),
        Case("float TIFF with +Inf", "jiep", [_write(folder, "inf.tif", bf.float_tiff(inf))]),
        Case("animated WebP, 500 frames of 32×32", "laffont_bazin",
             [_write(folder, "anim-500.webp", _animated("WEBP", 500, 32))], kind="image_sequence"),
        Case("multi-page TIFF (600 pages) as a still", "jiep",
             [_write(folder, "pages-600.tif", _animated("TIFF", 600, 8))]),
        Case("zip bomb (200 MB of zeros)", "laffont_bazin", [_write(folder, "bomb.zip", _zip_bomb())],
             kind="image_sequence"),
        Case("zip with ../ member", "laffont_bazin",
             [_write(folder, "slip.zip", _zip({"../evil.png": small, "a.png": small}))], kind="image_sequence"),
        Case("zip with 3000 members", "laffont_bazin",
             [_write(folder, "wide.zip", _zip({f"{i}.png": small for i in range(3000)}))], kind="image_sequence"),
        Case("folder of 500 frames", "laffont_bazin", [many], dashboard=False),
        Case("sparse 300 MB file", "jiep", [sparse], dashboard=False),
        Case("symlink to /dev/zero", "jiep", [link], dashboard=False),
        Case("two frames of different sizes", "laffont_bazin",
             [_write(folder, "a-64.png", bf.png_bytes(g[:64, :64])),
              _write(folder, "b-32.png", bf.png_bytes(g[:32, :32]))],
             kind="image_sequence"),
        Case("garbage .mp4", "laffont_bazin", [video], kind="image_sequence"),
        Case("-p K=1e400", "jiep", [good], ["-p", "K=1e400"], dashboard=False),
        Case("-p alpha=-inf", "jiep", [good], ["-p", "alpha=-inf"], dashboard=False),
        Case("-p r=abc", "jiep", [good], ["-p", "r=abc"], dashboard=False),
        Case("-p unknown=1", "jiep", [good], ["-p", "unknown=1"], dashboard=False),
    ]


# --- running one case in a child ------------------------------------------------------------------------------------

def _child_cli(case: Case, out: Path) -> int:
    from engine.cli import main

    return main(["run", case.method, *map(str, case.files), "--out", str(out), "--device", "cpu", *case.params])


def _child_dashboard(case: Case) -> int:
    from dashboard.uploads import UploadedFile, method_problems, prepare_input
    from engine.registry import InputKind, get_method

    uploads = [UploadedFile(p.name, p.read_bytes()) for p in case.files]
    prepared = prepare_input(uploads, InputKind(case.kind))
    for message in prepared.errors:
        print(f"error: {message}", file=sys.stderr)
    if prepared.errors:
        return 2
    problem = method_problems(prepared, [(get_method(case.method), {})]).get(case.method)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"ready: {prepared.size_label}; preview {prepared.frames[0].shape[1]}×{prepared.frames[0].shape[0]}")
    return 0


def run_child(case: Case, path: str, work: Path, timeout: float) -> dict:
    out_dir = Path(tempfile.mkdtemp(dir=work))
    out_dir.chmod(0o777)
    log = work / f"log-{os.getpid()}-{time.monotonic_ns()}.txt"
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if case.as_nobody:
                os.setgid(65534)
                os.setuid(65534)
            code = _child_cli(case, out_dir / "out") if path == "cli" else _child_dashboard(case)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - what a user would see: print it, as Python would
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    hung = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            hung = True
            break
        time.sleep(0.01)
    took = time.perf_counter() - start
    text = log.read_text(errors="replace") if log.exists() else ""
    log.unlink(missing_ok=True)
    code = os.waitstatus_to_exitcode(status)
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip() and not ln.startswith("[")]
    message = next((ln for ln in lines if ln.startswith("error:")), lines[-1] if lines else "")
    peak = usage.ru_maxrss * 1024
    traceback_seen = "Traceback" in text
    ok = not hung and not traceback_seen and code in (0, 2) and peak < 2 * GB
    return {"input": case.label, "path": path, "method": case.method, "exit": "hang" if hung else code,
            "message": message, "seconds": took, "peak_bytes": peak, "traceback": traceback_seen,
            "verdict": "ok" if ok else "FAIL"}


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _row(r: dict, width: int = 150) -> str:
    message = r["message"].replace("|", "\\|")
    message = message if len(message) <= width else message[: width - 1] + "…"
    return (f"| {r['input']} | {r['path']} | {r['exit']} | {message} | {r['seconds']:.2f} | "
            f"{r['peak_bytes'] / 1e6:.0f} | {r['verdict']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=0, help="also run this many fuzz mutants (1000 = all)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--csv", default=None, help="write every row to this CSV file")
    parser.add_argument("--all-rows", action="store_true", help="print every fuzz row, not a summary")
    parser.add_argument("--only", default="", help="run only cases whose label contains this text")
    args = parser.parse_args()

    from engine.registry import all_methods  # noqa: F401  (loaded once here, before forking)
    import dashboard.uploads  # noqa: F401
    import engine.cli  # noqa: F401

    all_methods()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        work = Path(tmp)
        work.chmod(0o777)
        inputs = work / "inputs"
        inputs.mkdir()
        cases = [c for c in build_cases(inputs) if args.only in c.label]
        baseline = _rss()
        print(f"parent's resident set at fork: {baseline / 1e6:.0f} MB (a child's peak counts what it inherits as anonymous"
          f" memory plus what it touches; parameters are not part of an upload, so those rows are CLI only)\n")
        print("| input | path | exit | message | s | peak MB | verdict |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        for case in cases:
            for path in ("cli", "dashboard"):
                if path == "dashboard" and not case.dashboard:
                    continue
                row = run_child(case, path, work, args.timeout)
                rows.append(row)
                print(_row(row), flush=True)
        fuzz_rows = []
        if args.fuzz:
            fuzz_dir = work / "fuzz"
            fuzz_dir.mkdir()
            for name, data in bf.fuzz_cases(args.fuzz):
                case = Case(name, "baseline_image_albedo", [_write(fuzz_dir, name, data)])
                for path in ("cli", "dashboard"):
                    row = run_child(case, path, work, args.timeout)
                    fuzz_rows.append(row)
                    if args.all_rows:
                        print(_row(row), flush=True)
            for path in ("cli", "dashboard"):
                part = [r for r in fuzz_rows if r["path"] == path]
                codes = {}
                for r in part:
                    codes[r["exit"]] = codes.get(r["exit"], 0) + 1
                slowest = max(part, key=lambda r: r["seconds"])
                biggest = max(part, key=lambda r: r["peak_bytes"])
                print(f"| fuzz: {len(part)} mutants of PNG/JPEG/TIFF/WebP | {path} | "
                      + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str))
                      + f" | tracebacks: {sum(r['traceback'] for r in part)}; slowest {slowest['input']}; "
                        f"largest {biggest['input']} | max {slowest['seconds']:.2f} | "
                        f"max {biggest['peak_bytes'] / 1e6:.0f} | "
                      + ("ok" if all(r["verdict"] == "ok" for r in part) else
                         f"FAIL ({sum(r['verdict'] != 'ok' for r in part)})") + " |", flush=True)
        everything = rows + fuzz_rows
        if args.csv:
            with open(args.csv, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(everything[0]))
                writer.writeheader()
                writer.writerows(everything)
        failed = [r for r in everything if r["verdict"] != "ok"]
        print(f"\n{len(everything)} runs, {len(failed)} not ok; peak RSS high-water "
              f"{max(r['peak_bytes'] for r in everything) / 1e6:.0f} MB; "
              f"longest {max(r['seconds'] for r in everything):.2f} s "
              f"(baseline {baseline / 1e6:.0f} MB)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
