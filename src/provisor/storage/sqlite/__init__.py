"""SQLite's implementation of storage's per-database interfaces (aiosqlite and sqlite3)."""

from provisor.storage.backend import Backend

BACKEND = Backend(name="sqlite")
