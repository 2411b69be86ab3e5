"""Tables of the store, as typed SQLAlchemy 2.x models.

Times are stored as naive UTC (portable across SQLite and PostgreSQL) and come back timezone-aware (UTC).
JSON columns use JSONB on PostgreSQL. The schema itself is owned by the Alembic migrations in
``db/migrations``; a test checks that the migrations and these models agree.
"""

from __future__ import annotations

import enum
import importlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text, TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


#: Modules that add tables to ``Base.metadata`` beside this one (one line each, like METHOD_MODULES), so that
#: Alembic's autogenerate and the schema tests see every table.
MODEL_MODULES: tuple[str, ...] = ()


def load_model_modules() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


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
