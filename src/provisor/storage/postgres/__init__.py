"""PostgreSQL's implementation of storage's per-database interfaces (asyncpg)."""

from provisor.storage.backend import Backend

BACKEND = Backend(name="postgresql")
