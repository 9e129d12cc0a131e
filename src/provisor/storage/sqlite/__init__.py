"""SQLite's implementation of storage's per-database interfaces (aiosqlite and sqlite3)."""

from sqlalchemy.dialects import sqlite

from provisor.storage.backend import Backend

# members and the rest
from provisor.storage.sqlite import members

BACKEND = Backend(
    name="sqlite",
    # members and the rest
    members=members,
    insert=sqlite.insert,
    row_locks=False,
    serial_writer=True,
    bulk_copy=False,
    seq_gaps=False,
    analyze_keeper=False,
    listen_notify=False,
    network_server=False,
)
