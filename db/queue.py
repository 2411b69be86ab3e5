"""The worker's side of the job queue: claiming a job, keeping its lease, reporting progress and the outcome, and
the workers' heartbeats. Like :mod:`db.store` (the user's side, which re-exports these), functions take a session and
never commit.

Every state change a worker makes is a conditional UPDATE on (id, status='running', worker_id), so a worker that lost
its lease (it was too slow, or the job was cancelled) can no longer write: a job completes once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from .models import Job, JobStatus, Output, WorkerRecord, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.SUCCEEDED.value,
                                      JobStatus.FAILED.value)
_MESSAGE_LIMIT = 512
#: A job is quarantined when this many workers stopped responding while running it.
QUARANTINE_AFTER_LOST_WORKERS = 2


@dataclass(frozen=True)
class NewOutput:
    """One layer to attach to a completed job: its artifact key plus what the dashboard needs to show it."""

    layer: str
    artifact_key: str
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)


# --- jobs -------------------------------------------------------------------------------

def _claimable(now: datetime):
    return or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.lease_expires_at < now))


def _lease_lost_message(worker_id: str | None, attempts: int, max_attempts: int) -> str:
    return (f"worker {worker_id or '?'} stopped responding (its lease expired) during attempt "
            f"{attempts} of {max_attempts}")


def _claim_values(worker_id: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    return {
        "status": RUNNING, "attempts": Job.attempts + 1, "worker_id": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_seconds), "started_at": now, "finished_at": None,
        "progress": 0.0, "progress_message": None, "device": None,
    }


def claim_next_job(session: Session, worker_id: str, lease_seconds: float, *,
                   methods: Collection[str] | None = None, now: datetime | None = None,
                   job_ids: Collection[int] | None = None) -> Job | None:
    """Atomically take the oldest claimable job for ``worker_id``, or return None.

    Claimable: queued, or running with an expired lease (its worker died; this counts as a new attempt, and a
    job whose attempts are used up ends failed instead, with the lost attempt as its error). ``methods``
    limits the claim to methods this worker can run (e.g. a CPU worker skips CUDA-only methods); ``job_ids`` to
    those jobs (a Ray task handed a batch of them, see :mod:`engine.distributed.ray_bench`).
    Commit promptly: on PostgreSQL the claimed row stays locked until the transaction ends.
    """
    now = now or utcnow()
    query = select(Job.id, Job.status, Job.attempts, Job.max_attempts, Job.worker_id, Job.info).where(
        _claimable(now))
    if methods is not None:
        query = query.where(Job.method.in_(list(methods)))
    if job_ids is not None:
        query = query.where(Job.id.in_(list(job_ids)))
    query = query.order_by(Job.created_at, Job.id)
    postgresql = session.get_bind().dialect.name == "postgresql"
    while True:
        if postgresql:
            # SKIP LOCKED: concurrent workers each lock a different row instead of waiting on one another;
            # the conditional UPDATE below then matches the row this transaction holds.
            candidates = session.execute(query.limit(1).with_for_update(of=Job, skip_locked=True)).all()
        else:
            # SQLite has no row locks, but it runs one writer at a time: the conditional UPDATE re-checks the
            # condition, so exactly one worker's UPDATE matches (rowcount 1) and the others try the next row.
            # A round that finds nothing holds the write lock from then on, so the next round sees the truth.
            candidates = session.execute(query.limit(8)).all()
        if not candidates:
            return None
        for job_id, status, attempts, max_attempts, old_worker, info in candidates:
            still_claimable = and_(Job.id == job_id, _claimable(now))
            values = _claim_values(worker_id, now, lease_seconds)
            if status == RUNNING:
                values["error"] = _lease_lost_message(old_worker, attempts, max_attempts)
                lost = int((info or {}).get("lost_workers", 0)) + 1
                values["info"] = {**(info or {}), "lost_workers": lost}
                if lost >= QUARANTINE_AFTER_LOST_WORKERS:
                    session.execute(
                        update(Job).where(still_claimable)
                        .values(status=FAILED, finished_at=now, lease_expires_at=None,
                                info={**values["info"], "quarantined": True, "failure": "quarantined"},
                                error=(f"quarantined: running this job stopped {lost} workers (the last was "
                                       f"{old_worker or '?'}); it will not be run again automatically. Retry it "
                                       f"from the Jobs page once the cause is fixed"))
                        .execution_options(synchronize_session=False)
                    )
                    continue
                if attempts >= max_attempts:
                    session.execute(
                        update(Job).where(still_claimable, Job.attempts >= Job.max_attempts)
                        .values(status=FAILED, error=values["error"], finished_at=now, lease_expires_at=None)
                        .execution_options(synchronize_session=False)
                    )
                    continue
                still_claimable = and_(still_claimable, Job.attempts < Job.max_attempts)
            result = session.execute(
                update(Job).where(still_claimable).values(**values).execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                return session.get(Job, job_id, populate_existing=True)


def _owned(job_id: int, worker_id: str):
    return and_(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)


def _update_owned(session: Session, job_id: int, owner: str, values: dict[str, Any]) -> bool:
    result = session.execute(
        update(Job).where(_owned(job_id, owner)).values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def renew_lease(session: Session, job_id: int, worker_id: str, lease_seconds: float, *,
                now: datetime | None = None) -> bool:
    """Extend this worker's lease; False means the job is no longer ours (cancelled or taken over)."""
    now = now or utcnow()
    return _update_owned(session, job_id, worker_id, {"lease_expires_at": now + timedelta(seconds=lease_seconds)})


def set_progress(session: Session, job_id: int, worker_id: str, fraction: float, message: str = "") -> bool:
    fraction = min(1.0, max(0.0, float(fraction)))
    return _update_owned(session, job_id, worker_id,
                         {"progress": fraction, "progress_message": (message or None) and message[:_MESSAGE_LIMIT]})


def complete_job(session: Session, job_id: int, worker_id: str, outputs: Sequence[NewOutput], *,
                 timings: dict[str, float] | None = None, device: str | None = None,
                 info: dict[str, Any] | None = None) -> bool:
    """Mark the job succeeded and attach its outputs, if it is still this worker's; else change nothing."""
    done = _update_owned(session, job_id, worker_id, {
        "status": SUCCEEDED, "finished_at": utcnow(), "lease_expires_at": None, "progress": 1.0, "error": None,
        "timings": timings or {}, "device": device, "info": info or {},
    })
    if done:
        session.add_all(Output(job_id=job_id, layer=o.layer, artifact_key=o.artifact_key, kind=o.kind,
                               meta=o.meta) for o in outputs)
        session.flush()
    return done


def fail_job(session: Session, job_id: int, worker_id: str, error: str, *, retryable: bool,
             info: dict[str, Any] | None = None) -> str | None:
    """Record an attempt's error. Retryable and attempts left → queued again; else failed.

    Returns the job's new status, or None if the job was no longer this worker's.
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != RUNNING or job.worker_id != worker_id:
        return None
    if retryable and job.attempts < job.max_attempts:
        values = {"status": QUEUED, "worker_id": None, "lease_expires_at": None, "progress": 0.0,
                  "progress_message": None}
    else:
        values = {"status": FAILED, "finished_at": utcnow(), "lease_expires_at": None}
    if info is not None:
        lost = (job.info or {}).get("lost_workers")  # the quarantine count survives a failed attempt
        values["info"] = {**info, **({"lost_workers": lost} if lost else {})}
    if not _update_owned(session, job_id, worker_id, {**values, "error": error}):
        return None
    return values["status"]


def release_job(session: Session, job_id: int, worker_id: str) -> bool:
    """Give a running job back to the queue without counting the attempt (the worker is shutting down)."""
    return _update_owned(session, job_id, worker_id, {
        "status": QUEUED, "attempts": Job.attempts - 1, "worker_id": None, "lease_expires_at": None,
        "started_at": None, "progress": 0.0, "progress_message": None,
    })


# --- worker heartbeats ---------------------------------------------------------------------------------------

def record_heartbeat(session: Session, worker_id: str, device: str, methods: Sequence[str], *,
                     now: datetime | None = None) -> None:
    """Say that this worker is alive (insert on its first beat, then refresh ``seen_at``)."""
    now = now or utcnow()
    row = session.get(WorkerRecord, worker_id)
    if row is None:
        session.add(WorkerRecord(worker_id=worker_id, device=device, methods=list(methods), started_at=now,
                                 seen_at=now))
    else:
        row.device, row.methods, row.seen_at, row.stopped_at = device, list(methods), now, None
    session.flush()


def record_worker_stopped(session: Session, worker_id: str) -> None:
    row = session.get(WorkerRecord, worker_id)
    if row is not None:
        row.stopped_at = utcnow()
        session.flush()


def live_workers(session: Session, within_seconds: float, *, now: datetime | None = None) -> list[WorkerRecord]:
    """Workers that beat within the last ``within_seconds`` and did not say they stopped."""
    since = (now or utcnow()) - timedelta(seconds=within_seconds)
    return list(session.scalars(
        select(WorkerRecord).where(WorkerRecord.seen_at >= since, WorkerRecord.stopped_at.is_(None))
        .order_by(WorkerRecord.worker_id)
    ))
