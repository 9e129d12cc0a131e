"""Group-to-role mappings and the background jobs that apply a map or unmap to a large group.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_mappings",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("group_ref", sa.String(500), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "group_ref", "role"),
    )
    op.create_table(
        "role_jobs",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("group_ref", sa.String(500), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("cursor", sa.String(36), nullable=True),
        sa.Column("processed", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_role_jobs_state", "role_jobs", ["state", "created"])


def downgrade() -> None:
    op.drop_index("ix_role_jobs_state", table_name="role_jobs")
    op.drop_table("role_jobs")
    op.drop_table("role_mappings")
