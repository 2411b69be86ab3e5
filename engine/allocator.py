"""The C heap of compute processes: freed tensor memory is reused instead of being unmapped and zeroed again.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every block above its mmap threshold (128 KiB
at start, adapting up to 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when it is freed. A network's
activations are tens to hundreds of megabytes each, so every layer of every run maps new pages, and the kernel zeroes
each page on its first touch. On the 2-core build machine that was 40 % of RetinexNet's time at 600×400.

Modes (``INTRINSIC_LAB_MALLOC``; applied when ``python -m engine …`` starts, and in the per-case processes of
``python -m engine.speed``; the dashboard process never computes and keeps glibc's default):

``auto`` (the default)
    ``tcmalloc`` where Debian's ``libtcmalloc-minimal4`` is installed (``make setup`` installs it when run as root;
    the Docker images and CI do), else ``system``.
``tcmalloc``
    The process re-executes itself once with gperftools' tcmalloc preloaded (``LD_PRELOAD``; BSD-3-Clause, a system
    package, not shipped by this project). tcmalloc keeps freed pages in size classes for the next tensor. The
    re-executed process takes the preload out of its environment again, so the programs it starts (ffmpeg, Ray's
    daemons, other Python processes) get their own default; ``python -m engine`` children preload it themselves.
``system``
    glibc's default, unchanged.

(Telling glibc itself to keep big blocks was as fast, but its heap cannot hand a freed block to a slightly larger
request, so peaks grow with fragmentation; it is not offered. To see it: ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=2147483647 python scripts/method_memory.py --malloc system --methods retinexnet``.)

A long-lived process (the job worker) calls :func:`release_memory` between jobs: while the allocator holds at most
``INTRINSIC_LAB_MALLOC_KEEP`` free bytes (default 1 GiB) they stay for the next job, above that they go back to the
kernel (``malloc_trim`` or tcmalloc's ``ReleaseFreeMemory``). On a C library other than glibc (musl, macOS) nothing
changes and the mode reads ``system``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

from .limits import parse_size

MODE_ENV = "INTRINSIC_LAB_MALLOC"
KEEP_ENV = "INTRINSIC_LAB_MALLOC_KEEP"
_REEXEC_ENV = "INTRINSIC_LAB_MALLOC_REEXEC"  # set for the re-executed process only: a failed preload cannot loop
MODES = ("auto", "tcmalloc", "system")

#: Where Debian (and Ubuntu) put gperftools' tcmalloc; the first that exists is used.
TCMALLOC_PATHS = tuple(f"/usr/lib/{arch}-linux-gnu/libtcmalloc_minimal.so.4"
                       for arch in ("x86_64", "aarch64", "arm", "i386", "powerpc64le", "s390x", "riscv64")) + (
    "/usr/lib64/libtcmalloc_minimal.so.4", "/usr/lib/libtcmalloc_minimal.so.4")

DEFAULT_KEEP = 1 << 30


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def tcmalloc_path() -> str | None:
    """The installed tcmalloc library, if any."""
    return next((p for p in TCMALLOC_PATHS if Path(p).is_file()), None)


@functools.cache
def tcmalloc_loaded() -> bool:
    """Whether this process's malloc is tcmalloc (preloaded; it cannot change while the process runs)."""
    try:
        return hasattr(ctypes.CDLL(None), "MallocExtension_ReleaseFreeMemory")
    except OSError:
        return False


def requested_mode() -> str:
    """The mode the environment asks for (``INTRINSIC_LAB_MALLOC``, default ``auto``: tcmalloc where installed,
    else glibc's default)."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}={mode!r}: use one of {', '.join(MODES)}")
    return mode


def keep_bytes() -> int:
    """Free memory a long-lived process keeps between jobs (``INTRINSIC_LAB_MALLOC_KEEP``, e.g. ``512M``; 0 releases
    it after every job)."""
    text = os.environ.get(KEEP_ENV, "").strip()
    if not text:
        return DEFAULT_KEEP
    try:
        return parse_size(text)
    except ValueError:
        raise ValueError(f"{KEEP_ENV}={text!r}: give a size such as 512M or 2G") from None


def preload_tcmalloc(argv: list[str] | None = None) -> None:
    """If the mode is ``auto`` or ``tcmalloc``, tcmalloc is installed and not loaded yet, re-execute this process
    (the same command line, ``sys.orig_argv``) with tcmalloc preloaded. Call it first thing in the ``__main__`` of a
    program that computes, before any threads or heavy imports. Returns when no re-execution is needed (or it is
    impossible); in the re-executed process it takes the preload out of the environment again. Raises ValueError
    for a bad ``INTRINSIC_LAB_MALLOC``, or ``tcmalloc`` asked for where it is not installed."""
    mode = requested_mode()
    library = tcmalloc_path()
    if os.environ.pop(_REEXEC_ENV, None) is not None:  # the re-executed process: children get their own default
        rest = [p for p in os.environ.get("LD_PRELOAD", "").split() if p != library]
        if rest:
            os.environ["LD_PRELOAD"] = " ".join(rest)
        else:
            os.environ.pop("LD_PRELOAD", None)
        return
    if mode == "system" or tcmalloc_loaded():
        return
    if library is None:
        if mode == "tcmalloc":
            raise ValueError(f"{MODE_ENV}=tcmalloc but tcmalloc is not installed (Debian: apt-get install "
                             "libtcmalloc-minimal4)")
        return
    env = {**os.environ, "LD_PRELOAD": " ".join(p for p in (library, os.environ.get("LD_PRELOAD", "")) if p),
           _REEXEC_ENV: "1"}
    args = argv if argv is not None else list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *args[1:]], env)
    except OSError:
        return  # carry on without it


def current_mode() -> str:
    """``tcmalloc`` or ``system``: the allocator of this process."""
    return "tcmalloc" if tcmalloc_loaded() else "system"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def free_bytes() -> int | None:
    """Free memory the allocator holds for reuse (glibc: ``mallinfo2().fordblks``; tcmalloc: its page heap's free
    bytes); None where it cannot be read."""
    if tcmalloc_loaded():
        value = ctypes.c_size_t()
        ok = ctypes.CDLL(None).MallocExtension_GetNumericProperty(b"tcmalloc.pageheap_free_bytes",
                                                                   ctypes.byref(value))
        return int(value.value) if ok else None
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().fordblks)


def release_memory(keep: int | None = None) -> bool:
    """Give free memory back to the kernel if the allocator holds more than ``keep`` free bytes (default
    :func:`keep_bytes`): tcmalloc's ``ReleaseFreeMemory``, glibc's ``malloc_trim``. Returns whether it released."""
    limit = keep_bytes() if keep is None else keep
    free = free_bytes()
    if free is not None and free <= limit:
        return False
    if current_mode() == "tcmalloc":
        ctypes.CDLL(None).MallocExtension_ReleaseFreeMemory()
        return True
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
