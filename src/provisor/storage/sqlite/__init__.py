"""SQLite's implementation of storage's per-database interfaces (aiosqlite and sqlite3)."""

from provisor.storage.backend import Backend

# members and the rest
from provisor.storage.sqlite import members

BACKEND = Backend(
    name="sqlite",
    # members and the rest
    members=members,
)
