"""Compare `attribute_index.value_norm` in code point order (collation "C") on PostgreSQL.

A `sw` filter asks for every value starting with a prefix: under code point order those values are
exactly the range [prefix, successor of prefix), which the B-tree on (tenant_id, resource_type,
attr, value_norm) serves. Under the database's default collation (en_US.UTF-8, C.UTF-8, ...) the
index is in linguistic order, where that range is not the prefix's values, and PostgreSQL cannot use
it for `LIKE 'p%'` either, so every `sw` read all of the attribute's rows of the tenant.

Changing the column's collation rebuilds its indexes (the table is not rewritten: text stays text)
and costs nothing per write. Equality is unchanged: under a deterministic collation two strings
are equal only when their bytes are, so the partial unique index still enforces the same
(case-insensitive, `value_norm` being lower-cased) uniqueness. SQLite's default collation (BINARY)
already compares in code point order (UTF-8 bytes), so there is nothing to do there.

`ix_attribute_index_resource` becomes (resource_id, tenant_id): it serves the same lookups (a
resource's rows, always by both columns), but no longer leads with tenant_id. Led by tenant_id,
it was a second way to read an `eq`/`sw` range (the tenant's rows, filtered), and with no
statistics PostgreSQL costed it the same as the range and took it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE attribute_index ALTER COLUMN value_norm TYPE text COLLATE "C"')
    _index_by_resource("resource_id", "tenant_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE attribute_index ALTER COLUMN value_norm TYPE text COLLATE "default"')
    _index_by_resource("tenant_id", "resource_id")


def _index_by_resource(*columns: str) -> None:
    op.drop_index("ix_attribute_index_resource", table_name="attribute_index")
    op.create_index("ix_attribute_index_resource", "attribute_index", list(columns))
