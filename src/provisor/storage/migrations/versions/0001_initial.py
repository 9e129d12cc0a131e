"""Initial schema: tenants, tokens, resources, attribute_index, group_members, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("settings", JsonDoc, nullable=False),
        sa.Column("created", TS, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("last_used", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "resources",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("last_modified", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("doc", JsonDoc, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_resources_type_id", "resources", ["tenant_id", "resource_type", "id"])
    op.create_index("ix_resources_type_created", "resources", ["tenant_id", "resource_type", "created", "id"])
    op.create_index(
        "ix_resources_type_modified", "resources", ["tenant_id", "resource_type", "last_modified", "id"]
    )
    op.create_table(
        "attribute_index",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("attr", sa.String(200), nullable=False),
        sa.Column("value_norm", sa.Text, nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("is_unique", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "resource_id"], ["resources.tenant_id", "resources.id"], ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_attribute_index_lookup", "attribute_index", ["tenant_id", "resource_type", "attr", "value_norm"]
    )
    op.create_index("ix_attribute_index_resource", "attribute_index", ["tenant_id", "resource_id"])
    op.create_index(
        "ux_attribute_index_unique",
        "attribute_index",
        ["tenant_id", "resource_type", "attr", "value_norm"],
        unique=True,
        sqlite_where=sa.text("is_unique"),
        postgresql_where=sa.text("is_unique"),
    )
    op.create_table(
        "group_members",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("member_id", sa.String(36), nullable=False),
        sa.Column("member_type", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "group_id", "member_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_id"], ["resources.tenant_id", "resources.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"], ["resources.tenant_id", "resources.id"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_group_members_member", "group_members", ["tenant_id", "member_id", "group_id"])
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("payload", JsonDoc, nullable=True),
    )
    op.create_index("ix_events_tenant_seq", "events", ["tenant_id", "seq"])


def downgrade() -> None:
    for table in ("events", "group_members", "attribute_index", "resources", "tokens", "tenants"):
        op.drop_table(table)
