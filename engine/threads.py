"""The thread policy of every compute process (worker, CLI, bench, train): its share of the CPUs, waiting passively.

A process may use the CPUs of its affinity mask (``sched_getaffinity``: taskset, container cpusets), capped by its
cgroup's CPU quota (``cpu.max``, or ``cpu.cfs_quota_us`` on cgroup v1: ``docker --cpus``). Workers started
together share them: ``scripts/serve.sh`` exports ``INTRINSIC_LAB_WORKERS=N``, and each gets ``available // N``
threads (at least one). ``INTRINSIC_LAB_THREADS`` sets the count outright.

OpenMP threads that spin while waiting are what makes a busy machine slow (a spinning thread holds a core another
process needs, and the next parallel region waits on a thread that is not scheduled): ``OMP_WAIT_POLICY=PASSIVE``
makes them sleep. OpenMP reads it once, when torch loads its runtime, so :func:`apply_thread_policy` runs before
torch is imported (``python -m engine`` calls it first) and only fills variables the user did not set.

This module imports neither torch nor numpy.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

WORKERS_ENV = "INTRINSIC_LAB_WORKERS"
THREADS_ENV = "INTRINSIC_LAB_THREADS"
BACKGROUND_ENV = "INTRINSIC_LAB_BACKGROUND"
BACKGROUND_MODES = ("idle", "nice", "normal")
_CGROUP = Path("/sys/fs/cgroup")


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cgroup_quota(root: Path = _CGROUP) -> float | None:
    """CPUs allowed by the cgroup's quota (e.g. 1.5), or None when unlimited or unknown."""
    try:
        fields = (root / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return int(fields[0]) / int(fields[1] if len(fields) > 1 else 100_000)
        return None
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus(cgroup_root: Path = _CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's quota (rounded up, at least 1)."""
    cpus = _affinity_cpus()
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return max(1, cpus)


def _positive_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, "") or 0)
    except ValueError:
        return None
    return value if value > 0 else None


def thread_share(workers: int | None = None, cgroup_root: Path = _CGROUP) -> int:
    """Intra-op threads for one compute process: ``INTRINSIC_LAB_THREADS``, else its share of the CPUs among the
    ``workers`` started together (default ``INTRINSIC_LAB_WORKERS``, else 1)."""
    explicit = _positive_int(THREADS_ENV)
    if explicit:
        return explicit
    workers = workers or _positive_int(WORKERS_ENV) or 1
    return max(1, available_cpus(cgroup_root) // workers)


def apply_thread_policy(threads: int | None = None) -> int:
    """Size this process's thread pools and make idle threads sleep. Call before importing torch where possible
    (then the OpenMP runtime starts with these settings); afterwards it still sets torch's intra-op threads.
    Variables the user set are kept. Returns the thread count."""
    n = threads or thread_share()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(n))
    n = int(os.environ["OMP_NUM_THREADS"]) if threads is None and os.environ["OMP_NUM_THREADS"].isdigit() else n
    # A module that another thread is still importing is in sys.modules without its functions yet (a
    # multi-threaded server): its runtime then starts with the variables set above.
    set_torch = getattr(sys.modules.get("torch"), "set_num_threads", None)
    if set_torch is not None:
        set_torch(n)
    set_cv2 = getattr(sys.modules.get("cv2"), "setNumThreads", None)
    if set_cv2 is not None:
        set_cv2(n)
    return n


_applied_once: int | None = None
_once_lock = threading.Lock()


def apply_thread_policy_once(threads: int | None = None) -> int:
    """:func:`apply_thread_policy` the first time a process calls it; later calls return that count and do nothing.
    For a script that reruns inside one long-lived process (the Streamlit dashboard's ``app.py`` runs on every
    click, in several threads at once)."""
    global _applied_once
    with _once_lock:
        if _applied_once is None:
            _applied_once = apply_thread_policy(threads)
        return _applied_once


def threads_for_work(pixels: int, pixels_per_thread: int, share: int) -> int:
    """Intra-op threads for ``pixels`` of work at one thread per ``pixels_per_thread``: at least 1, at most
    ``share`` (the process's own count)."""
    return max(1, min(share, pixels // max(1, pixels_per_thread)))


def set_priority(mode: str, pid: int = 0) -> str:
    """Give process ``pid`` (0: this one) and all its threads CPU priority ``mode``: ``idle`` (Linux ``SCHED_IDLE``:
    it runs only on cycles that no normal process wants, and a normal thread that wakes up takes the core from it at
    once), ``nice`` (nice value 10: about a tenth of a normal process's share) or ``normal`` (left as it is). Needs
    no privilege; it is inherited by the threads and processes started afterwards. Where ``SCHED_IDLE`` is not
    available it falls back to ``nice``. Returns the mode applied.

    Kernel autogroups limit this: against processes of *another* session (started from another terminal, or a
    service), a policy counts only if the whole session is lowered, which a session leader does here
    (:func:`_lower_own_autogroup`). Start a training run with ``setsid`` to give it its own, lowered group."""
    if mode not in BACKGROUND_MODES:
        raise ValueError(f"unknown CPU priority {mode!r}; one of {', '.join(BACKGROUND_MODES)}")
    if mode != "normal":
        _lower_own_autogroup(pid, 19 if mode == "idle" else 10)
    if mode == "idle" and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        task_dir = Path(f"/proc/{pid or os.getpid()}/task")
        tids = [int(t) for t in os.listdir(task_dir)] if task_dir.is_dir() else [pid]
        try:
            for tid in tids:  # the policy is per thread: threads already started (torch's, OpenCV's) too
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            mode = "nice"
    if mode == "nice" and hasattr(os, "setpriority"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, pid)
            if current < 10:
                os.setpriority(os.PRIO_PROCESS, pid, 10)  # raising a nice value needs no privilege
            return "nice"
        except OSError:
            pass
    return "normal"


def _lower_own_autogroup(pid: int, nice: int) -> bool:
    """With the kernel's autogroups (``/proc/sys/kernel/sched_autogroup_enabled``), each session competes as one
    group first, and a thread's policy or nice value only counts inside its session. A process that leads its own
    session (a daemon, or a browser started detached) lowers its whole group too; the user's shell session is left
    alone. Returns whether it did."""
    pid = pid or os.getpid()
    try:
        if os.getsid(pid) != pid:
            return False
        path = Path(f"/proc/{pid}/autogroup")
        current = int(path.read_text().split("nice")[-1])
        if current < nice:
            path.write_text(str(nice))
        return True
    except (OSError, ValueError):
        return False


def background_priority() -> str:
    """Make this process background work (a training run, a benchmark sweep) so that on a shared machine the jobs
    people wait for in the dashboard get the cores first, while this work still uses every cycle they leave:
    ``INTRINSIC_LAB_BACKGROUND`` = ``idle`` (the default), ``nice`` or ``normal`` (see :func:`set_priority`).
    Returns the mode applied. Any other value is refused (:class:`engine.errors.ParameterError`, naming it) before
    the work starts, rather than quietly taken for ``idle``."""
    from .errors import ParameterError

    text = os.environ.get(BACKGROUND_ENV, "")
    mode = text.strip().lower() or "idle"
    if mode not in BACKGROUND_MODES:
        raise ParameterError(f"{BACKGROUND_ENV}={text!r} is not one of {', '.join(BACKGROUND_MODES)}")
    return set_priority(mode)
