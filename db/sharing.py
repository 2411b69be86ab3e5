"""Who may see what, team votes, and retention: the store functions of public mode and of the human-preference
leaderboard. Like :mod:`db.store`, every function takes a session and does not commit.

* **Owners.** In public mode each visitor sees only the inputs they uploaded (one ``input_owners`` row per
  input and visitor) and the inputs an admin published. Inputs are content-addressed, so two visitors who upload
  the same file share one row but each needs their own owner row to see it.
* **Retention.** A public upload gets ``inputs.expires_at``; :func:`purge_expired` removes expired, unpublished
  inputs with their jobs, outputs, votes and metrics, then deletes the files that no remaining row refers to.
* **Votes.** One row per judgement of two methods' outputs on one input ("a", "b" or "same").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from .artifacts import ArtifactStore, open_artifacts
from .models import Input, InputOwner, Job, JobStatus, Metric, Output, Vote, utcnow

WINNERS = ("a", "b", "same")


# --- owners -------------------------------------------------------------------------------------------------

def add_owner(session: Session, input_id: int, visitor: str, *, keep_for: timedelta | None) -> None:
    """Let ``visitor`` see an input. ``keep_for`` (public uploads) sets or extends its expiry; ``None`` (a team
    member's upload) keeps it for good."""
    exists = session.get(InputOwner, (input_id, visitor))
    if exists is None:
        session.add(InputOwner(input_id=input_id, visitor=visitor, created_at=utcnow()))
    row = session.get(Input, input_id)
    if row is None:
        raise KeyError(f"input {input_id} does not exist")
    if keep_for is None:
        row.expires_at = None
    elif not row.published:
        until = utcnow() + keep_for
        # An input that a team member keeps (expires_at None and no owners before) stays kept.
        if row.expires_at is not None or exists is None and _owner_count(session, input_id) <= 1:
            row.expires_at = max(row.expires_at or until, until)
    session.flush()


def _owner_count(session: Session, input_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(InputOwner).where(InputOwner.input_id == input_id)))


def visible_filter(visitor: str | None):
    """A WHERE clause on ``Input`` for what a visitor may see; ``None`` (team mode or admin) sees everything."""
    if visitor is None:
        return True
    owned = select(InputOwner.input_id).where(InputOwner.visitor == visitor)
    return or_(Input.published.is_(True), Input.id.in_(owned))


def can_see(session: Session, input_id: int, visitor: str | None) -> bool:
    if visitor is None:
        return session.get(Input, input_id) is not None
    return session.scalar(select(Input.id).where(Input.id == input_id, visible_filter(visitor))) is not None


def set_published(session: Session, input_id: int, published: bool) -> None:
    row = session.get(Input, input_id)
    if row is None:
        raise KeyError(f"input {input_id} does not exist")
    row.published = published
    if published:
        row.expires_at = None
    session.flush()


def visitor_usage(session: Session, visitor: str, *, within: timedelta) -> tuple[int, int]:
    """(jobs the visitor asked for within the window, their jobs queued or running now)."""
    since = utcnow() - within
    recent = session.scalar(select(func.count()).select_from(Job)
                            .where(Job.visitor == visitor, Job.created_at >= since))
    active = session.scalar(select(func.count()).select_from(Job).where(
        Job.visitor == visitor, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])))
    return int(recent or 0), int(active or 0)


# --- votes --------------------------------------------------------------------------------------------------

def record_vote(session: Session, input_id: int, task: str, method_a: str, method_b: str, winner: str,
                voter: str) -> Vote:
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {WINNERS}, not {winner!r}")
    if method_a == method_b:
        raise ValueError("a vote compares two different methods")
    vote = Vote(input_id=input_id, task=str(task), method_a=method_a, method_b=method_b, winner=winner,
                voter=voter, created_at=utcnow())
    session.add(vote)
    session.flush()
    return vote


def list_votes(session: Session, task: str | None = None) -> list[Vote]:
    query = select(Vote).order_by(Vote.id)
    if task is not None:
        query = query.where(Vote.task == task)
    return list(session.scalars(query))


# --- retention ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PurgeReport:
    inputs: int
    jobs: int
    files_deleted: int
    files_kept: int  # files of purged rows still used by another row

    def summary(self) -> str:
        return (f"purged {self.inputs} expired input(s) and {self.jobs} job(s); deleted {self.files_deleted} "
                f"file(s), kept {self.files_kept} still referenced by other rows")


def referenced_keys(session: Session) -> set[str]:
    keys = set(session.scalars(select(Output.artifact_key)))
    for frames in session.scalars(select(Input.frames)):
        keys.update(frames or [])
    return keys


def purge_expired(sessions, artifacts: ArtifactStore | None = None, *, now: datetime | None = None) -> PurgeReport:
    """Remove expired, unpublished inputs and everything made from them, then the files only they used.

    The rows go in one transaction, committed first; only then are files deleted, and only those that no
    remaining row refers to (a file shared with a kept input — the same upload, an identical output — stays).
    So a crash in between leaves at worst an orphan file, never a row pointing at a missing file. Inputs with a
    job still queued or running are left until a later purge. ``sessions`` is a session factory.
    """
    from .session import session_scope

    artifacts = artifacts or open_artifacts()
    now = now or utcnow()
    with session_scope(sessions) as session:
        busy = select(Job.input_id).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
        expired = list(session.scalars(select(Input).where(
            Input.expires_at.is_not(None), Input.expires_at < now, Input.published.is_(False),
            Input.id.not_in(busy))))
        if not expired:
            return PurgeReport(0, 0, 0, 0)
        ids = [row.id for row in expired]
        candidate_keys: set[str] = set()
        for row in expired:
            candidate_keys.update(row.frames or [])
        job_ids = list(session.scalars(select(Job.id).where(Job.input_id.in_(ids))))
        if job_ids:
            candidate_keys.update(session.scalars(select(Output.artifact_key).where(Output.job_id.in_(job_ids))))
            session.execute(delete(Output).where(Output.job_id.in_(job_ids)))
            session.execute(delete(Metric).where(Metric.job_id.in_(job_ids)))
        session.execute(delete(Metric).where(Metric.input_id.in_(ids)))
        session.execute(delete(Job).where(Job.input_id.in_(ids)))
        session.execute(delete(Vote).where(Vote.input_id.in_(ids)))
        session.execute(delete(InputOwner).where(InputOwner.input_id.in_(ids)))
        session.execute(delete(Input).where(Input.id.in_(ids)))
    with session_scope(sessions) as session:
        still = referenced_keys(session)
    deleted = kept = 0
    for key in sorted(candidate_keys):
        if key in still:
            kept += 1
        elif artifacts.delete(key):
            deleted += 1
    return PurgeReport(len(ids), len(job_ids), deleted, kept)


def expire_now(session: Session, input_ids: Iterable[int]) -> None:
    """Mark inputs as expired (an admin's "delete"): the next purge removes them."""
    session.execute(update(Input).where(Input.id.in_(list(input_ids)))
                    .values(expires_at=utcnow() - timedelta(seconds=1), published=False))
