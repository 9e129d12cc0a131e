"""PostgreSQL: notify `provisor_auth` whenever a token or tenant changes in a way auth depends on.

Workers keep successful token lookups in memory (storage/auth_cache.py) only while they listen on
this channel. Triggers rather than application code, so that every writer (the CLI, the admin API,
another host, a DBA's manual UPDATE) invalidates the caches; statement-level, because the payload
is only "something changed". `last_used` is left out: the periodic touch must not empty the caches.
SQLite has no such channel and its workers do not cache, so this revision does nothing there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TOKEN_COLUMNS = "tenant_id, name, kind, secret_hash, expires_at, revoked_at"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION provisor_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('provisor_auth', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER tokens_auth_changed AFTER UPDATE OF {_TOKEN_COLUMNS} OR DELETE OR TRUNCATE "
        "ON tokens FOR EACH STATEMENT EXECUTE FUNCTION provisor_auth_changed()"
    )
    op.execute(
        "CREATE TRIGGER tenants_auth_changed AFTER UPDATE OR DELETE OR TRUNCATE "
        "ON tenants FOR EACH STATEMENT EXECUTE FUNCTION provisor_auth_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS tokens_auth_changed ON tokens")
    op.execute("DROP TRIGGER IF EXISTS tenants_auth_changed ON tenants")
    op.execute("DROP FUNCTION IF EXISTS provisor_auth_changed()")
