"""Plain functions over the store. Each takes a session and never commits: the caller owns the transaction
(one per user action, see :func:`db.session.session_scope`).

The job life cycle::

    queued ──claim──► running ──complete──► succeeded
      ▲                 │ ├──fail (user error, or out of attempts)──► failed ──retry_job──► queued
      └──fail (retryable) / release / lease expired ◄┘ └──cancel_job──► cancelled

The user's side is here (inputs, enqueue / retry / cancel, results, metrics); the worker's side (claiming, leases,
progress, outcomes, heartbeats) is :mod:`db.queue`, re-exported here so ``store.claim_next_job`` keeps working.
A job whose run stopped ``QUARANTINE_AFTER_LOST_WORKERS`` workers (each lost its lease mid-job: killed by the
kernel's out-of-memory killer, a crash in native code) is quarantined: it ends failed with a message saying so, and
only a user's retry queues it again (``info["quarantined"]``, ``info["lost_workers"]`` record it).

Every state change a worker makes is a conditional UPDATE on (id, status='running', worker_id), so a worker
that lost its lease (it was too slow, or the job was cancelled) can no longer write: a job completes once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from .artifacts import ArtifactStore, open_artifacts
from .models import REUSABLE_STATUSES, Input, Job, JobStatus, Metric, Output, utcnow
from .queue import (NewOutput, claim_next_job, complete_job, fail_job, live_workers, record_heartbeat,
                    record_worker_stopped, release_job, renew_lease, set_progress)

#: the worker's side, from :mod:`db.queue`, so that ``store.claim_next_job`` and friends keep working
WORKER_SIDE = ("NewOutput", "claim_next_job", "complete_job", "fail_job", "live_workers", "record_heartbeat",
               "record_worker_stopped", "release_job", "renew_lease", "set_progress")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (s.value for s in JobStatus)


class JobStateError(ValueError):
    """A user action that does not fit the job's state (e.g. retrying a job that succeeded)."""


@dataclass
class GalleryRow:
    """One stored input and, per method that ran on it, the latest matching job."""

    input: Input
    jobs: dict[str, Job]


def _value(kind: Any) -> str:
    return kind.value if hasattr(kind, "value") else str(kind)


def _as_set(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [_value(v) for v in value]


def params_hash(params: dict[str, Any] | None) -> str:
    """A stable hash of JSON-able parameters (key order does not matter)."""
    text = json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def input_hash(frames: Sequence[bytes], kind: str) -> str:
    """The identity of an input: its kind and the bytes of its files, in order."""
    digest = hashlib.sha256(f"{kind}\0{len(frames)}\0".encode())
    for data in frames:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


# --- inputs -------------------------------------------------------------------------------------------------

def _insert_ignoring_duplicate(session: Session, table, values: dict[str, Any], key: str) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {dialect}")
    session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=[key]))


def get_or_create_input(session: Session, frames: Sequence[bytes], kind: Any, original_name: str, width: int,
                        height: int, *, frame_count: int | None = None,
                        artifacts: ArtifactStore | None = None) -> Input:
    """Store the uploaded file(s) as artifacts and return their input row; the same upload reuses the row.

    ``frames`` are the uploaded files' bytes (one per file; an animated file counts as one, so pass
    ``frame_count`` when it holds several frames). ``kind`` is an ``engine.registry.InputKind`` or its value.
    """
    if not frames:
        raise ValueError("an input needs at least one file")
    kind = _value(kind)
    artifacts = artifacts or open_artifacts()
    # Files first: a committed row must never point at a missing file (an orphan file is harmless).
    keys = [artifacts.put(data) for data in frames]
    content_hash = input_hash(frames, kind)
    existing = session.scalars(select(Input).where(Input.content_hash == content_hash)).first()
    if existing is not None:
        return existing
    # Two uploads of the same file at once: the unique hash lets one insert win and the other reuse it.
    _insert_ignoring_duplicate(session, Input.__table__, {
        "content_hash": content_hash, "kind": kind, "width": int(width), "height": int(height),
        "frame_count": int(frame_count if frame_count is not None else len(frames)),
        "original_name": str(original_name)[:512], "frames": keys, "created_at": utcnow(),
    }, "content_hash")
    return session.scalars(select(Input).where(Input.content_hash == content_hash)).one()


def get_input(session: Session, input_id: int) -> Input | None:
    return session.get(Input, input_id)


def list_inputs(session: Session, *, kind: Any = None, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = 100, offset: int = 0) -> list[Input]:
    """Inputs, newest first."""
    query = select(Input).order_by(Input.created_at.desc(), Input.id.desc())
    if kind is not None:
        query = query.where(Input.kind == _value(kind))
    if since is not None:
        query = query.where(Input.created_at >= since)
    if until is not None:
        query = query.where(Input.created_at < until)
    return list(session.scalars(query.offset(offset).limit(limit)))


# --- jobs: the user's side ---------------------------------------------------------------------------------

def enqueue_job(session: Session, input_id: int, method: str, params: dict[str, Any] | None = None,
                weights: str | None = None, *, force: bool = False, max_attempts: int = 3,
                visitor: str | None = None) -> Job:
    """Queue ``method`` on an input, or return the identical job that is queued, running or done.

    ``params`` should be the method's resolved parameters (defaults filled in, see
    ``MethodSpec.resolve_params``) so that "default" and "explicitly the default" are the same request.
    ``force`` queues a new job even if an identical one exists (e.g. to time a method again). ``visitor``
    records who asked (public mode: per-visitor limits and the fair queue).
    """
    params = dict(params or {})
    digest = params_hash(params)
    if not force:
        same_weights = Job.weights.is_(None) if weights is None else Job.weights == weights
        existing = session.scalars(
            select(Job).where(Job.input_id == input_id, Job.method == method, Job.params_hash == digest,
                              same_weights, Job.status.in_(REUSABLE_STATUSES))
            .order_by(Job.id.desc()).limit(1)
        ).first()
        if existing is not None:
            return existing
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    job = Job(input_id=input_id, method=method, params=params, params_hash=digest, weights=weights,
              status=QUEUED, attempts=0, max_attempts=max_attempts, progress=0.0, created_at=utcnow(),
              visitor=visitor)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def _job_or_raise(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobStateError(f"there is no job {job_id}")
    return job


def retry_job(session: Session, job_id: int) -> Job:
    """Queue a failed or cancelled job again, with a fresh set of attempts."""
    job = _job_or_raise(session, job_id)
    if job.status not in (FAILED, CANCELLED):
        raise JobStateError(f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried")
    job.status, job.attempts, job.error = QUEUED, 0, None
    job.progress, job.progress_message = 0.0, None
    job.worker_id = job.lease_expires_at = job.device = None
    job.started_at = job.finished_at = None
    job.timings = job.info = None
    session.flush()
    return job


def cancel_job(session: Session, job_id: int) -> Job:
    """Cancel a queued or running job. A running job's worker notices when it next renews its lease."""
    job = _job_or_raise(session, job_id)
    if job.status not in (QUEUED, RUNNING):
        raise JobStateError(f"job {job_id} is {job.status}; only queued or running jobs can be cancelled")
    job.status, job.finished_at, job.lease_expires_at = CANCELLED, utcnow(), None
    session.flush()
    return job


def list_jobs(session: Session, *, status: str | Iterable[str] | None = None,
              method: str | Iterable[str] | None = None, input_id: int | None = None,
              since: datetime | None = None, until: datetime | None = None,
              limit: int | None = 100, offset: int = 0) -> list[Job]:
    """Jobs, newest first, filtered by status(es), method(s), input and creation time."""
    query = select(Job).options(selectinload(Job.input)).order_by(Job.created_at.desc(), Job.id.desc())
    query = _filter_jobs(query, status, method, since, until)
    if input_id is not None:
        query = query.where(Job.input_id == input_id)
    return list(session.scalars(query.offset(offset).limit(limit)))


def _filter_jobs(query, status, method, since: datetime | None, until: datetime | None):
    """``query`` restricted to jobs of the given status(es) and method(s), created in [since, until)."""
    statuses, methods = _as_set(status), _as_set(method)
    if statuses is not None:
        query = query.where(Job.status.in_(statuses))
    if methods is not None:
        query = query.where(Job.method.in_(methods))
    if since is not None:
        query = query.where(Job.created_at >= since)
    if until is not None:
        query = query.where(Job.created_at < until)
    return query


def count_jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = {s.value: 0 for s in JobStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


# --- results ------------------------------------------------------------------------------------------------

def outputs_for_job(session: Session, job_id: int) -> list[Output]:
    return list(session.scalars(select(Output).where(Output.job_id == job_id).order_by(Output.id)))


def outputs_for_input(session: Session, input_id: int, *, method: str | None = None) -> list[Output]:
    """Every stored layer of every succeeded job on an input (``output.job`` is loaded), newest job first."""
    query = (select(Output).join(Output.job).options(contains_eager(Output.job))
             .where(Job.input_id == input_id, Job.status == SUCCEEDED)
             .order_by(Job.id.desc(), Output.id))
    if method is not None:
        query = query.where(Job.method == method)
    return list(session.scalars(query))


def gallery(session: Session, *, method: str | Iterable[str] | None = None, since: datetime | None = None,
            until: datetime | None = None, status: str | Iterable[str] | None = SUCCEEDED,
            kind: Any = None, limit: int | None = 200, offset: int = 0, visible: Any = True) -> list[GalleryRow]:
    """Every input that a method ran on × the latest job of each such method (filters apply to the jobs).

    Rows come newest input first; ``row.jobs`` maps method → job with ``job.outputs`` loaded.
    ``status=None`` shows the latest job whatever its state (e.g. to show failures in the grid).
    ``visible`` is a WHERE clause on ``Input`` (``db.sharing.visible_filter``: a public visitor's own inputs).
    """
    latest = _filter_jobs(select(func.max(Job.id)).group_by(Job.input_id, Job.method), status, method, since, until)
    input_query = (select(Input).where(Input.id.in_(select(Job.input_id).where(Job.id.in_(latest))), visible)
                   .order_by(Input.created_at.desc(), Input.id.desc()).offset(offset).limit(limit))
    if kind is not None:
        input_query = input_query.where(Input.kind == _value(kind))
    inputs = list(session.scalars(input_query))
    if not inputs:
        return []
    jobs = session.scalars(
        select(Job).where(Job.id.in_(latest), Job.input_id.in_([i.id for i in inputs]))
        .options(selectinload(Job.outputs)).order_by(Job.method)
    )
    rows = {i.id: GalleryRow(i, {}) for i in inputs}
    for job in jobs:
        rows[job.input_id].jobs[job.method] = job
    return list(rows.values())


# --- metrics ------------------------------------------------------------------------------------------------

def record_metric(session: Session, name: str, value: float, *, job_id: int | None = None,
                  input_id: int | None = None, method: str | None = None, sample: str | None = None,
                  protocol: dict[str, Any] | None = None) -> Metric:
    metric = Metric(name=name, value=float(value), job_id=job_id, input_id=input_id, method=method,
                    sample=sample, protocol=protocol, created_at=utcnow())
    session.add(metric)
    session.flush()
    return metric


def list_metrics(session: Session, *, name: str | None = None, method: str | None = None,
                 job_id: int | None = None, input_id: int | None = None) -> list[Metric]:
    query = select(Metric).order_by(Metric.id)
    if name is not None:
        query = query.where(Metric.name == name)
    if method is not None:
        query = query.where(Metric.method == method)
    if job_id is not None:
        query = query.where(Metric.job_id == job_id)
    if input_id is not None:
        query = query.where(Metric.input_id == input_id)
    return list(session.scalars(query))
