"""Unknown attributes made visible: named on each request log row, counted per tenant.

IdPs send attributes Provisor does not model, and it accepts them by ignoring them; a mapping typo
in the IdP (`favouriteColour`) would then vanish without a trace. `request_log.unknown_attributes`
names them per request (a JSON list, NULL when there were none) and `unknown_attributes` keeps a
count and the last time seen per tenant and name, which the request log writer folds in with its
batches (service/request_log.py), off the request path.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("unknown_attributes", sa.Text, nullable=True))
    op.create_table(
        "unknown_attributes",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("unknown_attributes")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("unknown_attributes")
