"""`setup_links`: signed, expiring links to a tenant's IT-admin setup page (docs/setup-link.md).

Only the SHA-256 of a link's secret is stored; the URL carries the secret itself.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "setup_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used", TS, nullable=True),
        # The event seq and request-log id when the link was made: the checklist reads only after them.
        sa.Column("since_event", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("since_request", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_setup_links_tenant", "setup_links", ["tenant_id", "created"])


def downgrade() -> None:
    op.drop_index("ix_setup_links_tenant", "setup_links")
    op.drop_table("setup_links")
