"""PostgreSQL's implementation of storage's per-database interfaces (asyncpg)."""

from sqlalchemy.dialects import postgresql

from provisor.storage.backend import Backend
from provisor.storage.postgres import backup, driver, filter_sql, members, resources, snapshot, transactions
from provisor.storage.postgres import engine as engines
from provisor.storage.postgres.migrate import migration_lock

BACKEND = Backend(
    name="postgresql",
    engines=engines,
    # resources and driver
    driver=driver,
    transactions=transactions,
    resources=resources,
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
    token_signal=None,
    network_server=True,
)
