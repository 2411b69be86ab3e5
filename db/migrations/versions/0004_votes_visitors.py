"""Team votes between methods, and public-mode visitors: who may see an input, when it expires, published examples.

Revision ID: 0004_votes_visitors
Revises: 0003_workers
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_votes_visitors"
down_revision = "0003_workers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_inputs_expires_at", ["expires_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("visitor", sa.String(64), nullable=True))
        batch.create_index("ix_jobs_visitor", ["visitor"])
    op.create_table(
        "input_owners",
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["input_id"], ["inputs.id"], name="fk_input_owners_input_id_inputs",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("input_id", "visitor", name="pk_input_owners"),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("method_a", sa.String(64), nullable=False),
        sa.Column("method_b", sa.String(64), nullable=False),
        sa.Column("winner", sa.String(8), nullable=False),
        sa.Column("voter", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["input_id"], ["inputs.id"], name="fk_votes_input_id_inputs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_votes"),
    )
    op.create_index("ix_votes_input_id", "votes", ["input_id"])
    op.create_index("ix_votes_task", "votes", ["task"])


def downgrade() -> None:
    op.drop_index("ix_votes_task", table_name="votes")
    op.drop_index("ix_votes_input_id", table_name="votes")
    op.drop_table("votes")
    op.drop_table("input_owners")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_visitor")
        batch.drop_column("visitor")
    with op.batch_alter_table("inputs") as batch:
        batch.drop_index("ix_inputs_expires_at")
        batch.drop_column("published")
        batch.drop_column("expires_at")
