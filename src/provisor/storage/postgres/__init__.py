"""PostgreSQL's implementation of storage's per-database interfaces (asyncpg)."""

from sqlalchemy.dialects import postgresql

from provisor.storage.backend import Backend

# members and the rest
from provisor.storage.postgres import backup, filter_sql, members, snapshot
from provisor.storage.postgres.migrate import migration_lock

BACKEND = Backend(
    name="postgresql",
    # members and the rest
    members=members,
    filters=filter_sql,
    insert=postgresql.insert,
    snapshot=snapshot,
    backup=backup,
    migration_lock=migration_lock,
    row_locks=True,
    serial_writer=False,
    bulk_copy=True,
    seq_gaps=True,
    analyze_keeper=True,
    listen_notify=True,
    network_server=True,
)
