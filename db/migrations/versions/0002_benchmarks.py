"""Benchmarks: registered dataset folders, benchmark runs, one entry per (method, item), per-entry scores.

Revision ID: 0002_benchmarks
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_benchmarks"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "benchmark_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("folder", sa.String(1024), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_benchmark_datasets"),
        sa.UniqueConstraint("name", name="uq_benchmark_datasets_name"),
    )
    op.create_table(
        "benchmark_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("dataset_kind", sa.String(32), nullable=False),
        sa.Column("folder", sa.String(1024), nullable=False),
        sa.Column("split", sa.String(32), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("methods", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_benchmark_runs"),
        sa.UniqueConstraint("config_hash", name="uq_benchmark_runs_config_hash"),
        sa.CheckConstraint("status IN ('running', 'complete', 'incomplete')", name="ck_benchmark_runs_status"),
    )
    with op.batch_alter_table("benchmark_runs") as batch:
        batch.create_index("ix_benchmark_runs_dataset_split", ["dataset", "split"])
    op.create_table(
        "benchmark_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("item", sa.String(256), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runtime_s", sa.Float(), nullable=True),
        sa.Column("device", sa.String(128), nullable=True),
        sa.Column("weights", sa.String(512), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["benchmark_runs.id"], name="fk_benchmark_entries_run_id_benchmark_runs",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["input_id"], ["inputs.id"], name="fk_benchmark_entries_input_id_inputs",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_benchmark_entries_job_id_jobs",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_benchmark_entries"),
        sa.UniqueConstraint("run_id", "method", "item", name="uq_benchmark_entries_run_id"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_benchmark_entries_status"),
    )
    with op.batch_alter_table("benchmark_entries") as batch:
        batch.create_index("ix_benchmark_entries_run_id_status", ["run_id", "status"])
    op.create_table(
        "benchmark_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["benchmark_entries.id"],
                                name="fk_benchmark_scores_entry_id_benchmark_entries", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_benchmark_scores"),
        sa.UniqueConstraint("entry_id", "metric", name="uq_benchmark_scores_entry_id"),
    )


def downgrade() -> None:
    op.drop_table("benchmark_scores")
    op.drop_table("benchmark_entries")
    op.drop_table("benchmark_runs")
    op.drop_table("benchmark_datasets")
