"""Named feed consumers, their deprovisioning acknowledgements, and a partial index on events.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

_DEPROVISION = "resource_type = 'User' AND op IN ('deactivated', 'deleted')"


def upgrade() -> None:
    op.create_table(
        "consumers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("start_seq", sa.BigInteger, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
    )
    op.create_table(
        "deprovision_acks",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("event_at", sa.String(32), nullable=False),
        sa.Column("acked_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_seq"),
    )
    op.create_index("ix_deprovision_acks_tenant_at", "deprovision_acks", ["tenant_id", "event_at"])
    op.create_index(
        "ix_events_deprovision",
        "events",
        ["seq"],
        sqlite_where=sa.text(_DEPROVISION),
        postgresql_where=sa.text(_DEPROVISION),
    )


def downgrade() -> None:
    op.drop_index("ix_events_deprovision", table_name="events")
    op.drop_table("deprovision_acks")
    op.drop_table("consumers")
