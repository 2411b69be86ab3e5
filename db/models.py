"""Tables of the store, as typed SQLAlchemy 2.x models.

Times are stored as naive UTC (portable across SQLite and PostgreSQL) and come back timezone-aware (UTC).
JSON columns use JSONB on PostgreSQL. The schema itself is owned by the Alembic migrations in
``db/migrations``; a test checks that the migrations and these models agree. Every table is declared here (the
benchmark tables too, whose store functions live in :mod:`db.benchmark_store`), so Alembic's autogenerate sees them all.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text, TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Naive UTC in the database, aware UTC in Python: SQLite has no time zones, so we never store one."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


#: Statuses for which an identical request reuses the existing job instead of queuing a new one.
REUSABLE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.SUCCEEDED.value)


# Named constraints, so that Alembic's batch mode (SQLite) can find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class Input(Base):
    """One uploaded input (an image, a pair, a sequence), deduplicated by the hash of its frames and kind."""

    __tablename__ = "inputs"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # engine.registry.InputKind value
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(512))
    frames: Mapped[list[Any]] = mapped_column()  # artifact keys of the uploaded files, in order
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Public mode: when a public visitor's upload (and everything made from it) may be purged; None keeps it.
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    published: Mapped[bool] = mapped_column(default=False)  # an example an admin showed to every visitor

    jobs: Mapped[list["Job"]] = relationship(back_populates="input", passive_deletes=True)

    def __repr__(self) -> str:
        return f"Input(id={self.id}, kind={self.kind!r}, {self.width}x{self.height}x{self.frame_count})"


class Job(Base):
    """One request to run one method on one input with given (resolved) parameters."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The worker's claim query and the dashboard's queue view.
        Index("ix_jobs_status_created_at", "status", "created_at"),
        # Deduplication of identical requests and "every method on this input".
        Index("ix_jobs_input_method_params", "input_id", "method", "params_hash"),
        Index("ix_jobs_method_created_at", "method", "created_at"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    input_id: Mapped[int] = mapped_column(ForeignKey("inputs.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column()
    params_hash: Mapped[str] = mapped_column(String(64))
    weights: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far, the running one included
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    worker_id: Mapped[str | None] = mapped_column(String(128))
    device: Mapped[str | None] = mapped_column(String(128))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    visitor: Mapped[str | None] = mapped_column(String(64), index=True)  # who asked for it (public mode)

    input: Mapped[Input] = relationship(back_populates="jobs")
    outputs: Mapped[list["Output"]] = relationship(
        back_populates="job", order_by="Output.id", passive_deletes=True
    )

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    def __repr__(self) -> str:
        return f"Job(id={self.id}, method={self.method!r}, status={self.status!r}, attempts={self.attempts})"


class Output(Base):
    """One stored layer of a finished job (a PNG artifact), e.g. ``reflectance`` or ``shading/003``."""

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    layer: Mapped[str] = mapped_column(String(128))
    artifact_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # engine.registry.OutputKind value
    meta: Mapped[dict[str, Any]] = mapped_column()

    job: Mapped[Job] = relationship(back_populates="outputs")

    def __repr__(self) -> str:
        return f"Output(job_id={self.job_id}, layer={self.layer!r}, key={self.artifact_key[:12]}…)"


class Metric(Base):
    """One measured number: a quality metric of a job's output, or a benchmark score.

    ``job_id`` is set when the number describes one stored job; a benchmark over a data set fills ``method``,
    ``sample`` (the data set item) and ``protocol`` (data set, split, resolution, metric settings) instead.
    """

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_method_name", "method", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    input_id: Mapped[int | None] = mapped_column(ForeignKey("inputs.id", ondelete="CASCADE"), index=True)
    method: Mapped[str | None] = mapped_column(String(64))
    sample: Mapped[str | None] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    protocol: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"Metric({self.name}={self.value:.4g}, method={self.method!r}, job_id={self.job_id})"


class WorkerRecord(Base):
    """A worker process's heartbeat: the dashboard tells "no worker running" from "idle worker" with it."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(200))
    methods: Mapped[list[Any]] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column()


# --- benchmarks (migration 0002_benchmarks) --------------------------------------------------------------------
# benchmark_datasets: a user's name for a dataset folder and its adapter kind; benchmark_runs: one per distinct
# configuration (config_hash); benchmark_entries: one per (run, method, item), pointing at the job that computed it;
# benchmark_scores: the metric values of one entry.

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
class InputOwner(Base):
    """Which public visitor may see an input (public mode): one row per (input, visitor)."""

    __tablename__ = "input_owners"

    input_id: Mapped[int] = mapped_column(ForeignKey("inputs.id", ondelete="CASCADE"), primary_key=True)
    visitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Vote(Base):
    """A teammate's judgement of two methods' outputs on one input: ``winner`` is "a", "b" or "same"."""

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    input_id: Mapped[int] = mapped_column(ForeignKey("inputs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(32), index=True)
    method_a: Mapped[str] = mapped_column(String(64))
    method_b: Mapped[str] = mapped_column(String(64))
    winner: Mapped[str] = mapped_column(String(8))
    voter: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
