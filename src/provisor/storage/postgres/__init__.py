"""PostgreSQL's implementation of storage's per-database interfaces (asyncpg)."""

from provisor.storage.backend import Backend

# members and the rest
from provisor.storage.postgres import members

BACKEND = Backend(
    name="postgresql",
    # members and the rest
    members=members,
)
