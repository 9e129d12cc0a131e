"""`console_sessions` (the web console's server-side sessions) and an index of events by resource.

Only a SHA-256 hash of a session id is stored, so a copy of the table signs no one in. The events
index serves the console's resource history and request-to-events views (docs/console.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.String(36), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("idle_expires_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
    op.create_index("ix_events_resource", "events", ["tenant_id", "resource_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_events_resource", "events")
    op.drop_index("ix_console_sessions_expires", "console_sessions")
    op.drop_table("console_sessions")
