"""Initial schema: inputs, jobs, outputs, metrics.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(512), nullable=False),
        sa.Column("frames", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inputs"),
        sa.UniqueConstraint("content_hash", name="uq_inputs_content_hash"),
    )
    with op.batch_alter_table("inputs") as batch:
        batch.create_index("ix_inputs_kind", ["kind"])
        batch.create_index("ix_inputs_created_at", ["created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("weights", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("device", sa.String(128), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("progress_message", sa.String(512), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("timings", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("info", JSON, nullable=True),
        sa.ForeignKeyConstraint(["input_id"], ["inputs.id"], name="fk_jobs_input_id_inputs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="ck_jobs_status"
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="ck_jobs_progress"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.create_index("ix_jobs_status_created_at", ["status", "created_at"])
        batch.create_index("ix_jobs_input_method_params", ["input_id", "method", "params_hash"])
        batch.create_index("ix_jobs_method_created_at", ["method", "created_at"])

    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.String(128), nullable=False),
        sa.Column("artifact_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_outputs_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_outputs"),
    )
    with op.batch_alter_table("outputs") as batch:
        batch.create_index("ix_outputs_job_id", ["job_id"])

    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("input_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(64), nullable=True),
        sa.Column("sample", sa.String(256), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("protocol", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_metrics_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["input_id"], ["inputs.id"], name="fk_metrics_input_id_inputs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
    )
    with op.batch_alter_table("metrics") as batch:
        batch.create_index("ix_metrics_job_id", ["job_id"])
        batch.create_index("ix_metrics_input_id", ["input_id"])
        batch.create_index("ix_metrics_method_name", ["method", "name"])
        batch.create_index("ix_metrics_created_at", ["created_at"])


def downgrade() -> None:
    op.drop_table("metrics")
    op.drop_table("outputs")
    op.drop_table("jobs")
    op.drop_table("inputs")
