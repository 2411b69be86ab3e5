"""The job worker: the one place where the engine and the store meet.

A worker claims a queued job (atomically, see :func:`db.store.claim_next_job`), keeps its lease alive from a
background thread, decodes the input's files from the artifact store, runs the method through
:func:`engine.registry.run_method`, stores every encoded layer as an artifact plus an ``outputs`` row, and
completes the job. Run one worker per GPU (``--device cuda:N``); any number may share one database. A worker needs
only the database URL and the artifact storage (``INTRINSIC_LAB_ARTIFACTS``, a folder or an S3 bucket: see
:func:`db.artifacts.open_artifacts`); it keeps nothing on its own disk but its weights cache and temporary files.

Failures are classified (:func:`classify_failure`) and only infrastructure is retried:

- ``user``: a user-facing error (:class:`~engine.errors.IntrinsicLabError`: bad input, bad parameter, over a budget,
  missing weights, a diverged computation) fails the job at once with its one-line message;
- ``infrastructure``: the database or the artifact storage failing, or running out of memory (the worker recovers
  and the job goes back to the queue, up to its ``max_attempts``);
- ``internal``: any other exception is a bug, deterministic for this input: the job fails at once with a plain
  message; the exception and its stack go to the worker's log (and ``info["internal"]``, which no page shows),
  never to the user.

A worker that dies mid-job loses its lease, and another worker takes the job over once the lease expires; a job
whose run stopped two workers is quarantined (failed, not retried automatically; see :func:`db.store.claim_next_job`).
SIGTERM/SIGINT: the current job is released back to the queue at its next progress report (or finished, if
the method reports none); a second signal stops at once.

Latency: an idle worker looks at the queue every ``poll_seconds`` (0.1 s: one indexed SELECT, about half a
millisecond, so well under 1 % of a core), so a submitted job starts within a tenth of a second. While the queue is
empty it warms one method per look (:meth:`Worker.warm_next`: a tiny synthetic run that imports the method's lazy modules, loads its network into
:mod:`engine.models`' cache and lets the math libraries set up), so the first real job pays neither. Each job's
``timings`` record ``queue_wait`` (queued → claimed), ``load_input``, the method's own (``load`` for a learned
method's network, ``total``) and ``store_outputs``.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from db import store
from db.artifacts import ArtifactStore, open_artifacts
from db.models import Input
from db.session import default_sessions, session_scope

from .allocator import keep_bytes, release_memory
from .device import describe_device, resolve_device
from .errors import IntrinsicLabError
from .inputs import input_from_files
from .outputs import encode_result, json_safe, vector_values
from .registry import InputKind, MethodInput, all_methods, get_method, run_method

log = logging.getLogger("intrinsic_lab.worker")


class _JobLost(BaseException):
    """The job was cancelled or taken over by another worker: stop working on it, write nothing."""


class _StopRequested(BaseException):
    """The worker is shutting down: give the job back to the queue."""


#: How often an idle worker refreshes its heartbeat; the dashboard counts a worker alive for a few of these.
HEARTBEAT_SECONDS = 5.0
#: ``INTRINSIC_LAB_WARM``: which methods an idle worker warms (comma-separated names, ``all`` -- the default: every
#: image method of ``engine/methods/`` it serves -- or ``none``).
WARM_ENV = "INTRINSIC_LAB_WARM"
#: Side of the synthetic image a method is warmed on.
WARM_SIDE = 64


@dataclass
class WorkerConfig:
    worker_id: str | None = None  # default: host:pid:device
    device: str | None = None  # "auto", "cpu", "cuda", "cuda:N"; None reads INTRINSIC_LAB_DEVICE
    lease_seconds: float = 60.0
    poll_seconds: float = 0.1
    progress_interval: float = 0.5  # at most one progress write per this many seconds
    methods: tuple[str, ...] | None = None  # restrict to these methods (default: all that run on the device)
    warm: str | None = None  # methods to warm while idle: "all", "none" or "a,b"; None reads INTRINSIC_LAB_WARM


def load_method_input(record: Input, artifacts: ArtifactStore, spec=None) -> MethodInput:
    """Decode a stored input's files into frames (sequences: every frame of every file, in order).

    With ``spec``, the budgets and the method's memory are checked from the files' headers before decoding.
    """
    keys = list(record.frames)
    names = [record.original_name if len(keys) == 1 else f"{record.original_name} (file {i + 1})"
             for i in range(len(keys))]
    return input_from_files([(name, artifacts.get(key)) for name, key in zip(names, keys)],
                            InputKind(record.kind), label=record.original_name, spec=spec)


def _jsonable(value: Any) -> Any:
    """Diagnostics from methods may hold numpy scalars and arrays; the store keeps strict JSON (NaN → null)."""
    return json_safe(value)


USER, INFRASTRUCTURE, INTERNAL = "user", "infrastructure", "internal"


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def classify_failure(exc: BaseException, method: str = "the method") -> tuple[str, str]:
    """``(kind, message for the user)`` of an exception raised while running a job.

    ``kind`` is ``user`` (fail at once, the message is the error's own), ``infrastructure`` (retry) or ``internal``
    (a bug: fail at once). Messages never name an exception type or show a stack.
    """
    if isinstance(exc, IntrinsicLabError):
        return USER, str(exc)
    if _out_of_memory(exc):
        return INFRASTRUCTURE, f"the worker ran out of memory running {method}"
    if isinstance(exc, (OperationalError, DBAPIError)) or (
            isinstance(exc, SQLAlchemyError) and "connection" in str(exc).lower()):
        return INFRASTRUCTURE, "the database was unavailable while the job ran"
    if isinstance(exc, OSError):
        return INFRASTRUCTURE, "the server's storage failed while the job ran"
    return INTERNAL, (f"{method} failed on this input because of an internal error (a bug, not something the "
                      f"input or the settings can fix); the details are in the worker's log")


class _LeaseKeeper:
    """Renews the job's lease from a thread, so a long method never looks like a dead worker."""

    def __init__(self, worker: "Worker", job_id: int):
        self.worker, self.job_id = worker, job_id
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "_LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        cfg = self.worker.config
        interval = max(0.05, cfg.lease_seconds / 3)
        while not self._done.wait(interval):
            try:
                with session_scope(self.worker.sessions) as session:
                    ours = store.renew_lease(session, self.job_id, self.worker.worker_id, cfg.lease_seconds)
            except Exception as exc:  # a database hiccup: keep trying until the lease really runs out
                log.warning("job %s: could not renew the lease (%s)", self.job_id, exc)
                continue
            if not ours:
                log.warning("job %s: no longer ours (cancelled, or taken over after a lost lease)", self.job_id)
                self.lost.set()
                return


@dataclass
class _JobRun:
    job_id: int
    lease: _LeaseKeeper
    last_progress: float = field(default=0.0)


class Worker:
    def __init__(self, config: WorkerConfig | None = None, *, sessions=None, artifacts: ArtifactStore | None = None):
        self.config = config or WorkerConfig()
        self.sessions = sessions or default_sessions()
        self.artifacts = artifacts or open_artifacts()
        self.device = resolve_device(self.config.device)  # once: a worker serves one device
        self.device_label = describe_device(self.device)
        self.worker_id = self.config.worker_id or f"{socket.gethostname()}:{os.getpid()}:{self.device}"
        runnable = [s.name for s in all_methods() if self.device.type in s.devices]
        if self.config.methods is not None:
            runnable = [m for m in runnable if m in self.config.methods]
        self.methods = tuple(runnable)
        self._to_warm = list(self._warm_list())
        self._keep_memory = keep_bytes()  # read once: a bad INTRINSIC_LAB_MALLOC_KEEP stops the worker at its start
        self._stop = threading.Event()
        self._current: _JobRun | None = None
        self._last_beat = -math.inf

    def check_schema(self) -> None:
        """Refuse to start on a database without tables (an unmigrated one would fail every poll)."""
        engine = self.sessions.kw["bind"]
        if not inspect(engine).has_table("jobs"):
            raise IntrinsicLabError(
                f"the database {engine.url.render_as_string(hide_password=True)} has no tables yet; "
                f"run `python -m db migrate` first"
            )

    # --- control ---------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish or release the current job, then return from :meth:`run`."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT once: stop gracefully; twice: give the job back now. Main thread only."""

        def handle(signum, _frame):
            if self._stop.is_set():
                raise _StopRequested()
            log.info("%s received: stopping after releasing or finishing the current job",
                     signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # --- the loop --------------------------------------------------------------------------------------

    def run(self, *, once: bool = False, until_empty: bool = False) -> int:
        """Process jobs until stopped. ``once``: at most one job. ``until_empty``: return when none is left.

        Returns the number of jobs this worker took.
        """
        log.info("worker %s on %s serving %d method(s): %s", self.worker_id, self.device_label,
                 len(self.methods), ", ".join(self.methods) or "none")
        taken = 0
        try:
            while not self._stop.is_set():
                try:
                    self._beat()
                    claimed = self.run_next()
                except OperationalError as exc:
                    # The database is unreachable or locked for longer than the busy timeout: wait and retry.
                    if once or until_empty:
                        raise
                    delay = max(self.config.poll_seconds, 1.0)
                    log.warning("database unavailable (%s); retrying in %.1f s", exc.orig, delay)
                    self._stop.wait(delay)
                    continue
                if claimed:
                    taken += 1
                    if once:
                        break
                    continue
                if once or until_empty:
                    break
                if self.warm_next():
                    continue  # look at the queue again at once: a job may have come in meanwhile
                self._stop.wait(self.config.poll_seconds)
        except _StopRequested:
            log.info("stopped")
        finally:
            try:
                with session_scope(self.sessions) as session:
                    store.record_worker_stopped(session, self.worker_id)
            except OperationalError:
                pass  # the database is gone; the heartbeat simply goes stale
        return taken

    def _beat(self) -> None:
        """Record that this worker is alive, at most every ``HEARTBEAT_SECONDS``."""
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_SECONDS:
            return
        with session_scope(self.sessions) as session:
            store.record_heartbeat(session, self.worker_id, self.device_label, self.methods)
        self._last_beat = now

    def _warm_list(self) -> tuple[str, ...]:
        text = (self.config.warm if self.config.warm is not None else os.environ.get(WARM_ENV, "all")).strip()
        if text.lower() in ("", "none", "0", "off"):
            return ()
        if text.lower() == "all":  # the project's image methods (engine/methods/), not ones a test or plugin adds
            return tuple(m for m in self.methods if get_method(m).input_kind == InputKind.IMAGE
                         and get_method(m).min_side <= WARM_SIDE
                         and getattr(get_method(m).runner, "__module__", "").startswith("engine.methods."))
        return tuple(m for m in (name.strip() for name in text.split(",")) if m in self.methods)

    def warm_next(self) -> bool:
        """Warm the next method not warmed yet (a tiny synthetic run, result discarded); False when none is left.

        A method that fails to warm is logged and skipped: its first real job reports the error to the user.
        """
        if not self._to_warm:
            return False
        method = self._to_warm.pop(0)
        start = time.perf_counter()
        try:
            import numpy as np

            ramp = np.linspace(0.1, 0.9, WARM_SIDE, dtype=np.float32)
            image = np.stack([np.add.outer(ramp, ramp) / 2, np.outer(ramp, ramp), ramp[None, :].repeat(WARM_SIDE, 0)],
                             axis=-1)
            run_method(method, MethodInput(frames=(image,)), {}, device=str(self.device))
            log.info("warmed %s in %.2f s", method, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 -- warming is an optimisation; the real job reports real errors
            log.info("could not warm %s (%s)", method, exc)
        return True

    def run_next(self, job_ids=None) -> bool:
        """Claim and process one job (one of ``job_ids`` if given). False when there was nothing to claim."""
        if not self.methods:
            return False
        with session_scope(self.sessions) as session:
            job = store.claim_next_job(session, self.worker_id, self.config.lease_seconds, methods=self.methods,
                                       job_ids=job_ids)
            if job is None:
                return False
            job_id, method, params, weights = job.id, job.method, dict(job.params), job.weights
            attempt, record = job.attempts, job.input
            queued = (job.started_at - job.created_at).total_seconds() if job.started_at and job.created_at else None
            session.expunge(record)
        log.info("job %s: %s on input %s (attempt %d)", job_id, method, record.id, attempt)
        with _LeaseKeeper(self, job_id) as lease:
            self._current = _JobRun(job_id, lease)
            try:
                self._process(job_id, method, params, weights, record, queue_wait=queued)
            finally:
                self._current = None
                release_memory(self._keep_memory)  # a big job's free memory goes back to the kernel (engine/allocator)
        return True

    # --- one job ---------------------------------------------------------------------------------------

    def _progress(self, fraction: float, message: str) -> None:
        run = self._current
        if run is None:
            return
        if run.lease.lost.is_set():
            raise _JobLost()
        if self._stop.is_set():
            raise _StopRequested()
        now = time.monotonic()
        if now - run.last_progress < self.config.progress_interval and fraction < 1.0:
            return
        run.last_progress = now
        with session_scope(self.sessions) as session:
            ours = store.set_progress(session, run.job_id, self.worker_id, fraction, message)
        if not ours:
            raise _JobLost()

    def _process(self, job_id: int, method: str, params: dict, weights: str | None, record: Input,
                 queue_wait: float | None = None) -> None:
        timings: dict[str, float] = {} if queue_wait is None else {"queue_wait": max(0.0, queue_wait)}
        try:
            start = time.perf_counter()
            spec = get_method(method)
            spec.resolve_params(params)  # a bad parameter fails before the input is read
            inputs = load_method_input(record, self.artifacts, spec)
            timings["load_input"] = time.perf_counter() - start
            result, ctx, resolved = run_method(method, inputs, params, device=str(self.device),
                                               progress=self._progress, weights=weights)
            timings.update(ctx.timings)
            start = time.perf_counter()
            outputs = []
            for layer in encode_result(spec, result):
                key = self.artifacts.put(layer.data)
                outputs.append(store.NewOutput(layer.layer, key, layer.meta["kind"],
                                               _jsonable({**layer.meta, "filename": layer.filename})))
            timings["store_outputs"] = time.perf_counter() - start
            info = _jsonable({"values": vector_values(spec, result), "result": result.info, "params": resolved,
                              "weights": weights})
            if self._current is not None and self._current.lease.lost.is_set():
                raise _JobLost()
            with session_scope(self.sessions) as session:
                done = store.complete_job(session, job_id, self.worker_id, outputs, timings=timings,
                                          device=self.device_label, info=info)
            if done:
                log.info("job %s: succeeded in %.2f s (%d layer(s))", job_id, timings.get("total", 0.0),
                         len(outputs))
            else:
                log.warning("job %s: finished but no longer ours; result discarded", job_id)
        except _JobLost:
            log.warning("job %s: abandoned (cancelled or taken over)", job_id)
        except _StopRequested:
            with session_scope(self.sessions) as session:
                released = store.release_job(session, job_id, self.worker_id)
            log.info("job %s: %s", job_id, "released to the queue" if released else "was no longer ours")
            raise
        except Exception as exc:  # MemoryError included: the worker frees the job's memory and carries on
            kind, message = classify_failure(exc, method)
            details = None
            if kind == USER:
                log.info("job %s: refused: %s", job_id, message)
            else:
                details = traceback.format_exc(limit=20)
                log.error("job %s: %s error: %s", job_id, kind, details)
            del exc
            self._fail(job_id, message, retryable=kind == INFRASTRUCTURE, timings=timings, details=details,
                       kind=kind)

    def _fail(self, job_id: int, error: str, *, retryable: bool, timings: dict[str, float],
              details: str | None = None, kind: str = USER) -> None:
        # ``internal`` keeps the stack for whoever reads the database; the dashboard shows only ``error``.
        info = {"timings": timings, "failure": kind, **({"internal": details} if details else {})}
        try:
            with session_scope(self.sessions) as session:
                status = store.fail_job(session, job_id, self.worker_id, error, retryable=retryable, info=info)
        except OperationalError as exc:  # the database is gone: the lease runs out and the job is retried
            log.warning("job %s: could not record the failure (%s)", job_id, exc.orig)
            return
        log.info("job %s: %s → %s", job_id, error, status or "no longer ours")
