"""Benchmark tables (migration ``0002_benchmarks``) and the store functions the runner and leaderboard use.

* ``benchmark_datasets``: a user's name for a dataset folder and its adapter kind.
* ``benchmark_runs``: one per distinct configuration (methods, parameters, weights, dataset folder fingerprint,
  split, metric protocol), identified by ``config_hash`` — running the same configuration again finds this row.
* ``benchmark_entries``: one per (run, method, dataset item), pointing at the job that computed it (jobs are shared:
  the queue itself reuses an identical job across runs), with the runtime and device read off the job.
* ``benchmark_scores``: the metric values of one entry.

Like :mod:`db.store`, functions take a session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .models import Base, utcnow

RUN_STATUSES = ("running", "complete", "incomplete")
ENTRY_STATUSES = ("pending", "succeeded", "failed")


class BenchmarkDataset(Base):
    __tablename__ = "benchmark_datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    folder: Mapped[str] = mapped_column(String(1024))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BenchmarkRun(Base):
    __tablename__ = "benchmark_runs"
    __table_args__ = (
        Index("ix_benchmark_runs_dataset_split", "dataset", "split"),
        CheckConstraint("status IN ('running', 'complete', 'incomplete')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64), unique=True)
    dataset: Mapped[str] = mapped_column(String(128))
    dataset_kind: Mapped[str] = mapped_column(String(32))
    folder: Mapped[str] = mapped_column(String(1024))
    split: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(32))
    methods: Mapped[list[Any]] = mapped_column()
    config: Mapped[dict[str, Any]] = mapped_column()  # params, weights, metric protocols, input convention
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    entries: Mapped[list["BenchmarkEntry"]] = relationship(back_populates="run", passive_deletes=True)


class BenchmarkEntry(Base):
    __tablename__ = "benchmark_entries"
    __table_args__ = (
        UniqueConstraint("run_id", "method", "item", name="uq_benchmark_entries_run_id"),
        Index("ix_benchmark_entries_run_id_status", "run_id", "status"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("benchmark_runs.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(64))
    item: Mapped[str] = mapped_column(String(256))
    input_id: Mapped[int | None] = mapped_column(ForeignKey("inputs.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    runtime_s: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(128))
    weights: Mapped[str | None] = mapped_column(String(512))
    evaluated_at: Mapped[datetime | None] = mapped_column()

    run: Mapped[BenchmarkRun] = relationship(back_populates="entries")
    scores: Mapped[list["BenchmarkScore"]] = relationship(back_populates="entry", passive_deletes=True,
                                                          order_by="BenchmarkScore.id")


class BenchmarkScore(Base):
    __tablename__ = "benchmark_scores"
    __table_args__ = (UniqueConstraint("entry_id", "metric", name="uq_benchmark_scores_entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("benchmark_entries.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)

    entry: Mapped[BenchmarkEntry] = relationship(back_populates="scores")


# --- datasets -----------------------------------------------------------------------------------------------

def register_dataset(session: Session, name: str, kind: str, folder: str, notes: str | None = None
                     ) -> BenchmarkDataset:
    """Bind ``name`` to a folder of adapter ``kind`` (replacing an earlier binding of the same name)."""
    row = session.scalars(select(BenchmarkDataset).where(BenchmarkDataset.name == name)).first()
    if row is None:
        row = BenchmarkDataset(name=name, kind=kind, folder=folder, notes=notes, created_at=utcnow())
        session.add(row)
    else:
        row.kind, row.folder, row.notes = kind, folder, notes
    session.flush()
    return row


def get_dataset(session: Session, name: str) -> BenchmarkDataset | None:
    return session.scalars(select(BenchmarkDataset).where(BenchmarkDataset.name == name)).first()


def list_datasets(session: Session) -> list[BenchmarkDataset]:
    return list(session.scalars(select(BenchmarkDataset).order_by(BenchmarkDataset.name)))


# --- runs and entries ---------------------------------------------------------------------------------------

def get_or_create_run(session: Session, config_hash: str, **fields: Any) -> tuple[BenchmarkRun, bool]:
    """The run of this configuration, and whether it was just created."""
    run = session.scalars(select(BenchmarkRun).where(BenchmarkRun.config_hash == config_hash)).first()
    if run is not None:
        return run, False
    run = BenchmarkRun(config_hash=config_hash, status="running", created_at=utcnow(), **fields)
    session.add(run)
    session.flush()
    return run, True


def get_run(session: Session, run_id: int) -> BenchmarkRun | None:
    return session.get(BenchmarkRun, run_id)


def list_runs(session: Session, *, dataset: str | None = None, split: str | None = None) -> list[BenchmarkRun]:
    query = select(BenchmarkRun).order_by(BenchmarkRun.created_at.desc(), BenchmarkRun.id.desc())
    if dataset is not None:
        query = query.where(BenchmarkRun.dataset == dataset)
    if split is not None:
        query = query.where(BenchmarkRun.split == split)
    return list(session.scalars(query))


def entries(session: Session, run_id: int) -> list[BenchmarkEntry]:
    return list(session.scalars(select(BenchmarkEntry).where(BenchmarkEntry.run_id == run_id)
                                .order_by(BenchmarkEntry.method, BenchmarkEntry.item)))


def get_entry(session: Session, run_id: int, method: str, item: str) -> BenchmarkEntry | None:
    return session.scalars(select(BenchmarkEntry).where(
        BenchmarkEntry.run_id == run_id, BenchmarkEntry.method == method, BenchmarkEntry.item == item)).first()


def add_entry(session: Session, run_id: int, method: str, item: str, *, input_id: int, job_id: int,
              weights: str | None) -> BenchmarkEntry:
    entry = BenchmarkEntry(run_id=run_id, method=method, item=item, input_id=input_id, job_id=job_id,
                           status="pending", weights=weights)
    session.add(entry)
    session.flush()
    return entry


def finish_entry(session: Session, entry: BenchmarkEntry, *, scores: dict[str, float] | None = None,
                 error: str | None = None, runtime_s: float | None = None, device: str | None = None) -> None:
    """Record an entry's outcome: its scores (succeeded) or its error (failed)."""
    entry.status = "failed" if error is not None else "succeeded"
    entry.error, entry.runtime_s, entry.device, entry.evaluated_at = error, runtime_s, device, utcnow()
    for metric, value in (scores or {}).items():
        session.add(BenchmarkScore(entry_id=entry.id, metric=metric, value=float(value)))
    session.flush()


def set_run_status(session: Session, run: BenchmarkRun, status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {RUN_STATUSES}")
    run.status = status
    run.finished_at = utcnow() if status == "complete" else None
    session.flush()


def score_rows(session: Session, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Flat rows (run, method, item, metric, value, job, input, runtime, device, weights) for the given runs."""
    query = (select(BenchmarkEntry, BenchmarkScore)
             .join(BenchmarkScore, BenchmarkScore.entry_id == BenchmarkEntry.id)
             .where(BenchmarkEntry.run_id.in_(list(run_ids)), BenchmarkEntry.status == "succeeded")
             .order_by(BenchmarkEntry.run_id, BenchmarkEntry.method, BenchmarkEntry.item, BenchmarkScore.id))
    return [
        {"run_id": e.run_id, "method": e.method, "item": e.item, "metric": s.metric, "value": s.value,
         "job_id": e.job_id, "input_id": e.input_id, "runtime_s": e.runtime_s, "device": e.device,
         "weights": e.weights}
        for e, s in session.execute(query)
    ]
