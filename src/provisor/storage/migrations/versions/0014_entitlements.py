"""The entitlement catalogue: the entitlements and roles an application offers, per tenant.

Okta Identity Governance lists them under `/Entitlements` and `/Roles` and assigns them through a
user's `entitlements` and `roles` (docs/entitlements.md). One row per (tenant, resource type, id);
the id is the application's own key, so it is text up to 200 characters, not a UUID.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(500), nullable=False),
        sa.Column("type", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("last_modified", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "resource_type", "id"),
    )


def downgrade() -> None:
    op.drop_table("entitlements")
