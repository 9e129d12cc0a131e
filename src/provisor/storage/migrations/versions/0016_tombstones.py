"""Tombstones: resources deleted under a tenant's `tombstone` delete policy, kept for the retention.

A separate table rather than `resources.deleted_at`: every read path keeps its statements and plans
unchanged and cannot see a tombstone (docs/delete-policy.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tombstones",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("deleted_at", sa.String(32), nullable=False),
        sa.Column("purge_after", sa.String(32), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("name_norm", sa.Text(), nullable=True),
        sa.Column("doc", _JSON, nullable=False),
        sa.Column("groups", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_tombstones_external", "tombstones", ["tenant_id", "resource_type", "external_id"])
    op.create_index("ix_tombstones_name", "tombstones", ["tenant_id", "resource_type", "name_norm"])
    op.create_index("ix_tombstones_purge", "tombstones", ["purge_after"])


def downgrade() -> None:
    op.drop_table("tombstones")
