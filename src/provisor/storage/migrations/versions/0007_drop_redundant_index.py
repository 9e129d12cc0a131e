"""Drop `ix_resources_type_id`: the primary key (tenant_id, id) already finds any one resource.

Every lookup by id also names the type, and the planner chose this index for those lookups, but an
id is unique in its tenant, so the primary key gives the same single row. What the index did add
was a fourth index entry to write on every create and on every update that moves the row (each
PATCH and PUT changes `last_modified`, which is indexed): PostgreSQL's CPU per PATCH and PUT fell
by about 4% without it (docs/performance.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_resources_type_id", table_name="resources")


def downgrade() -> None:
    op.create_index("ix_resources_type_id", "resources", ["tenant_id", "resource_type", "id"])
