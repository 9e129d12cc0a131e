"""SQLite's implementation of storage's per-database interfaces (aiosqlite and sqlite3)."""

from sqlalchemy.dialects import sqlite

from provisor.storage.backend import Backend
from provisor.storage.sqlite import (
    auth_signal,
    backup,
    driver,
    filter_sql,
    members,
    resources,
    snapshot,
    transactions,
)
from provisor.storage.sqlite import engine as engines
from provisor.storage.sqlite.migrate import migration_lock

BACKEND = Backend(
    name="sqlite",
    engines=engines,
    # resources and driver
    driver=driver,
    transactions=transactions,
    resources=resources,
    # members and the rest
    members=members,
    filters=filter_sql,
    insert=sqlite.insert,
    snapshot=snapshot,
    backup=backup,
    migration_lock=migration_lock,
    row_locks=False,
    serial_writer=True,
    bulk_copy=False,
    seq_gaps=False,
    analyze_keeper=False,
    listen_notify=False,
    token_signal=auth_signal,
    network_server=False,
)
