"""SQLite's implementation of storage's per-database interfaces (aiosqlite and sqlite3)."""

from provisor.storage.backend import Backend
from provisor.storage.sqlite import driver, resources, transactions

BACKEND = Backend(
    name="sqlite",
    # resources and driver
    driver=driver,
    transactions=transactions,
    resources=resources,
)
