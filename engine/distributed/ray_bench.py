"""Benchmark sweeps on Ray: ``python -m engine bench METHODS... --dataset D --on ray`` (or ``--on ray://HOST:PORT``).

The database stays the source of truth; Ray only supplies processes on more machines.

1. **Plan and enqueue** exactly as the queue path (:func:`engine.benchmark.runner.start`): one ``benchmark_entries``
   row and one queued ``jobs`` row per (method, item), identical configurations re-used, finished rows skipped.
2. **Dispatch.** The run's claimable jobs are grouped by method and cut into batches (``--batch``). A pool of Ray
   actors (:class:`BenchWorker`, ``--workers``; one per GPU when the cluster has GPUs, else one per
   ``--threads`` CPUs) takes batches; an actor that finishes a batch gets the next batch *of the same method* while
   there is one, so each actor process loads a method's network once (:mod:`engine.models` keeps it) and then
   works through that method's images. GPUs are Ray resources: a GPU actor asks for ``num_gpus``; a CPU actor
   asks for ``num_cpus`` equal to its torch threads (:func:`engine.threads.apply_thread_policy`).
3. **Work.** Inside the actor an ordinary :class:`engine.worker.Worker` claims each job of its batch with the same
   atomic claim as a queue worker (:func:`db.queue.claim_next_job`, limited to the batch's ids), keeps its lease,
   stores the layers as artifacts plus ``outputs`` rows, and completes the job with the same conditional update.
   So a Ray sweep writes the same ``jobs``/``outputs``/``benchmark_*`` rows as the queue path, queue workers may
   help with the same jobs, and nothing can complete twice.
4. **Collect** scores finished jobs exactly as the queue path (:func:`engine.benchmark.runner.collect`), in the
   driver, whenever a batch comes back (the actor already has its next batch), and once more at the end.

Faults. An actor runs with ``max_restarts`` and ``max_task_retries``: when its process dies (killed, out of memory,
a node lost), Ray restarts it and re-sends the batch. The new incarnation first re-queues the jobs the dead one held
(``fail_job(..., retryable=True)``: the lost attempt is counted, and a job that keeps killing its worker fails after
its ``max_attempts`` instead of looping), then claims whatever of the batch is still claimable; jobs already
finished are not claimable, so they are not run again. An actor that runs out of restarts is replaced, after its
jobs are re-queued the same way. Interrupting the command loses nothing: rerunning it skips finished rows and redoes
the rest, as on the queue path (a job held by a killed driver's actor is claimable again when its lease expires).

Batches are batches of jobs, not of tensors: a method's runner still sees one image at a time (the methods'
runners take one input), so "batched per method" buys one model load per process and fewer round trips, not a
larger forward pass.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import and_, or_, select

from db import benchmark_store as bstore
from db import store
from db.artifacts import ArtifactStore, open_artifacts
from db.models import BenchmarkEntry, Job, utcnow
from db.session import session_scope

from ..benchmark.runner import BenchConfig, BenchmarkError, Progress, RunReport, collect, start
from ..errors import ParameterError
from ..registry import get_method
from .cluster import cluster_cpus, cluster_gpus, connect, forwarded_env, import_ray, parse_target

log = logging.getLogger("intrinsic_lab.ray_bench")

#: Prefix of a Ray actor's worker id: ``ray:<actor id>:<host>:<pid>:<device>``; the actor id survives a restart,
#: the pid does not, which is how a new incarnation finds the jobs its dead predecessor held.
WORKER_PREFIX = "ray:"


@dataclass
class RayOptions:
    address: str = "ray"  # ray | local | auto | ray://HOST:PORT | HOST:PORT
    workers: int | None = None  # actors; default: one per GPU, else one per ``threads`` CPUs of the cluster
    batch: int = 8  # jobs per actor call
    threads: int | None = None  # torch threads of a CPU actor (and the CPUs it reserves); default 1
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs; 0: CPU actors only
    max_restarts: int = 3  # per actor; also its task retries
    lease_seconds: float = 60.0
    num_cpus: int | None = None  # CPUs of a local cluster started here (default: all)

    def check(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ParameterError(f"--workers must be at least 1, got {self.workers}")
        if self.batch < 1:
            raise ParameterError(f"--batch must be at least 1, got {self.batch}")
        if self.threads is not None and self.threads < 1:
            raise ParameterError(f"--threads must be at least 1, got {self.threads}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ParameterError(f"--gpus-per-worker must be at least 0, got {self.gpus_per_worker}")


def actor_prefix(actor_id: str) -> str:
    return f"{WORKER_PREFIX}{actor_id[:16]}:"


def release_dead_worker_jobs(sessions, prefix: str, keep: str | None = None) -> list[int]:
    """Re-queue the running jobs of workers whose id starts with ``prefix`` (a dead actor's incarnations).

    Each counts as a failed attempt (``retryable``): it goes back to the queue while attempts remain, else it fails
    with this message. ``keep`` is the live incarnation's own id. Returns the job ids released.
    """
    released = []
    with session_scope(sessions) as session:
        held = session.execute(select(Job.id, Job.worker_id).where(
            Job.status == store.RUNNING, Job.worker_id.like(prefix + "%"),
            *([Job.worker_id != keep] if keep else []))).all()
        for job_id, worker_id in held:
            status = store.fail_job(session, job_id, worker_id, f"the Ray worker {worker_id} died while running it",
                                    retryable=True, info={"failure": "infrastructure"})
            if status is not None:
                released.append(job_id)
    if released:
        log.warning("re-queued job(s) %s of dead Ray worker(s) %s*", released, prefix)
    return released


class BenchWorker:
    """One Ray actor: an ordinary job worker on one device, fed batches of job ids of one method at a time."""

    def __init__(self, database_url: str, artifacts: ArtifactStore | None, device: str, threads: int | None,
                 lease_seconds: float):
        from ..threads import apply_thread_policy

        apply_thread_policy(threads)
        import ray

        from db.session import make_engine, make_sessions

        from ..worker import Worker, WorkerConfig

        self.prefix = actor_prefix(ray.get_runtime_context().get_actor_id())
        self.worker_id = f"{self.prefix}{socket.gethostname()}:{os.getpid()}:{device}"
        self.sessions = make_sessions(make_engine(database_url))
        release_dead_worker_jobs(self.sessions, self.prefix, keep=self.worker_id)  # a restart: the last one died
        self.worker = Worker(WorkerConfig(worker_id=self.worker_id, device=device, warm="none",
                                          lease_seconds=lease_seconds),
                             sessions=self.sessions, artifacts=artifacts)

    def identity(self) -> dict[str, Any]:
        from ..allocator import current_mode

        return {"worker_id": self.worker_id, "pid": os.getpid(), "device": self.worker.device_label,
                "malloc": current_mode()}

    def stop(self) -> None:
        """Say in the workers table that this worker stopped (the dashboard stops listing it)."""
        with session_scope(self.sessions) as session:
            store.record_worker_stopped(session, self.worker_id)

    def run_batch(self, job_ids: list[int]) -> dict[str, Any]:
        """Claim and run every still-claimable job of ``job_ids``; returns who ran how many."""
        self.worker._beat()
        ran = 0
        while self.worker.run_next(job_ids=job_ids):
            ran += 1
        return {**self.identity(), "ran": ran}


def claimable_jobs(sessions, run_id: int) -> dict[str, list[int]]:
    """The run's jobs that a worker could claim now (queued, or running on an expired lease), by method."""
    now = utcnow()
    with session_scope(sessions) as session:
        rows = session.execute(
            select(BenchmarkEntry.method, Job.id).join(Job, Job.id == BenchmarkEntry.job_id)
            .where(BenchmarkEntry.run_id == run_id, BenchmarkEntry.status == "pending",
                   or_(Job.status == store.QUEUED, and_(Job.status == store.RUNNING, Job.lease_expires_at < now)))
            .order_by(BenchmarkEntry.method, Job.id)).all()
    jobs: dict[str, list[int]] = defaultdict(list)
    for method, job_id in rows:
        if job_id not in jobs[method]:  # identical (method, input) entries share one job
            jobs[method].append(job_id)
    return dict(jobs)


def _database_url(sessions) -> str:
    return sessions.kw["bind"].url.render_as_string(hide_password=False)


class _Pool:
    """Actors of one device kind and the batches waiting for them, scheduled method by method."""

    def __init__(self, ray, options: RayOptions, device: str, size: int, sessions, artifacts: ArtifactStore,
                 progress: Progress):
        self.ray, self.options, self.device, self.size = ray, options, device, size
        self.sessions, self.progress = sessions, progress
        database_url = _database_url(sessions)
        gpus = (options.gpus_per_worker or 1.0) if device == "cuda" else 0
        cpus = 1 if device == "cuda" else (options.threads or 1)
        threads = (options.threads or 1) if device == "cpu" else None  # a GPU actor: Ray's one CPU
        self._make = lambda: ray.remote(BenchWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=options.max_restarts, max_task_retries=options.max_restarts,
            runtime_env={"env_vars": forwarded_env()}).remote(database_url, artifacts, device, threads,
                                                          options.lease_seconds)
        self.replacements = 0

    def run(self, batches: dict[str, deque[list[int]]], deadline: float | None = None,
            after_batch: Callable[[], Any] = lambda: None) -> int:
        """Run every batch (none is started after ``deadline``, a ``time.monotonic()``); returns the jobs run.
        ``after_batch`` runs in the driver whenever a batch is done and its actor has the next one (scoring)."""
        ray = self.ray
        remaining = {m: q for m, q in batches.items() if q}
        if not remaining:
            return 0
        count = min(self.size, sum(len(q) for q in remaining.values()))
        actors = [self._make() for _ in range(count)]
        last_method: dict[Any, str | None] = {a: None for a in actors}
        running: dict[Any, tuple[Any, str, list[int]]] = {}  # future → (actor, method, batch)
        ran = 0

        def next_batch(actor) -> tuple[str, list[int]] | None:
            method = last_method[actor]
            if method not in remaining:  # the method it served is done: take the one with most batches left
                if not remaining:
                    return None
                method = max(remaining, key=lambda m: len(remaining[m]))
            batch = remaining[method].popleft()
            if not remaining[method]:
                del remaining[method]
            last_method[actor] = method
            return method, batch

        def give(actor) -> None:
            if deadline is not None and time.monotonic() > deadline:
                return
            item = next_batch(actor)
            if item is not None:
                method, batch = item
                running[actor.run_batch.remote(batch)] = (actor, method, batch)

        for actor in actors:
            give(actor)
        finished = False
        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                actor, method, batch = running.pop(done[0])
                try:
                    result = ray.get(done[0])
                    ran += result["ran"]
                    self.progress(f"{result['worker_id']} ({result['malloc']}): {method} × {result['ran']} of a batch "
                                  f"of {len(batch)}")
                    give(actor)
                    after_batch()
                except ray.exceptions.RayActorError as exc:
                    # Out of restarts (or its node is gone): re-queue what it held, put the batch back, replace it.
                    self.progress(f"a Ray worker died for good ({type(exc).__name__}); replacing it")
                    release_dead_worker_jobs(self.sessions, actor_prefix(actor._actor_id.hex()))
                    remaining.setdefault(method, deque()).appendleft(batch)
                    ray.kill(actor)
                    if self.replacements >= self.options.max_restarts + len(actors):
                        raise
                    self.replacements += 1
                    replacement = self._make()
                    last_method[replacement] = method
                    give(replacement)
            finished = True
        finally:
            if finished:  # interrupted: no waiting for busy actors, their heartbeats simply go stale
                try:
                    ray.get([actor.stop.remote() for actor in last_method], timeout=30)
                except Exception:  # noqa: BLE001 -- a dead actor's heartbeat goes stale too
                    pass
            for actor in list(last_method):
                ray.kill(actor)
        return ran


def run_on_ray(config: BenchConfig, options: RayOptions | None = None, *, sessions=None,
               artifacts: ArtifactStore | None = None, timeout_s: float | None = None, poll_s: float = 2.0,
               progress: Progress = lambda message: None) -> RunReport:
    """Start (or resume) a run, do its jobs on Ray, and score them; like :func:`engine.benchmark.run`."""
    from db.session import default_sessions

    options = options or RayOptions()
    options.check()
    parse_target(options.address)  # a bad address or a missing ray fails before anything is queued
    import_ray()
    sessions = sessions or default_sessions()
    artifacts = artifacts or open_artifacts()
    report = start(config, sessions=sessions, artifacts=artifacts, progress=progress)
    reused, queued = report.reused, report.queued_now
    progress(f"run {report.run_id}: {report.succeeded + report.failed}/{report.total} scored"
             + (" (configuration seen before: results re-used)" if report.reused else ""))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    if report.pending:
        with connect(options.address, num_cpus=options.num_cpus) as ray:
            pools = make_pools(ray, options, sessions, artifacts, progress)
            while report.pending and (deadline is None or time.monotonic() < deadline):
                # The driver scores finished jobs while the workers go on with the next batches.
                score = lambda: collect(report.run_id, sessions=sessions, artifacts=artifacts)  # noqa: E731
                if not dispatch(pools, sessions, report.run_id, options.batch, deadline, score):
                    time.sleep(poll_s)  # the rest is running on other workers (queue workers, or a live lease)
                report = collect(report.run_id, sessions=sessions, artifacts=artifacts)
                progress(f"run {report.run_id}: {report.succeeded + report.failed}/{report.total} scored")
    report.reused, report.queued_now = reused, queued
    if not report.complete:
        with session_scope(sessions) as session:
            bstore.set_run_status(session, bstore.get_run(session, report.run_id), "incomplete")
    return report


def dispatch(pools: dict[str, "_Pool"], sessions, run_id: int, batch: int, deadline: float | None = None,
             after_batch: Callable[[], Any] = lambda: None) -> int:
    """Run the run's claimable jobs on the pools, in batches of ``batch`` per method; the number of jobs run."""
    todo = claimable_jobs(sessions, run_id)
    by_device: dict[str, dict[str, deque[list[int]]]] = defaultdict(dict)
    for method, job_ids in todo.items():
        devices = get_method(method).devices
        device = "cuda" if "cuda" in pools and "cuda" in devices else "cpu"
        if device not in devices:
            raise BenchmarkError(f"{method} runs on {', '.join(devices)} only; the Ray cluster has no GPU")
        by_device[device][method] = deque(job_ids[i:i + batch] for i in range(0, len(job_ids), batch))
    return sum(pools[device].run(batches, deadline, after_batch) for device, batches in by_device.items())


def make_pools(ray, options: RayOptions, sessions, artifacts: ArtifactStore,
               progress: Progress = lambda message: None) -> dict[str, "_Pool"]:
    """The CPU pool, and a GPU pool when the cluster has GPUs (and ``gpus_per_worker`` is not 0).

    A pool holds no more actors than the cluster can run at once: a batch handed to an actor that waits for
    resources would wait until the end of the sweep."""
    cpus, gpus = cluster_cpus(ray), cluster_gpus(ray)
    threads = options.threads or 1

    def size(fits: int, kind: str) -> int:
        if fits < 1:
            raise ParameterError(f"one {kind} worker needs more than the Ray cluster has ({cpus} CPUs, {gpus} GPUs)")
        if options.workers and options.workers > fits:
            progress(f"--workers {options.workers}: the Ray cluster has room for {fits} {kind} worker(s) now; "
                     f"using {fits}")
        return max(1, min(options.workers or fits, fits))

    pools = {"cpu": _Pool(ray, options, "cpu", size(cpus // threads, "CPU"), sessions, artifacts, progress)}
    if gpus and options.gpus_per_worker != 0:
        per = options.gpus_per_worker or 1.0
        pools["cuda"] = _Pool(ray, options, "cuda", size(int(gpus / per), "GPU"), sessions, artifacts, progress)
    return pools
