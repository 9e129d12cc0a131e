"""`resources.managed`: false for accounts loaded by `provisor import`, until an IdP adopts them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("managed", sa.Boolean, nullable=False, server_default=sa.text("true")))


def downgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("managed")
