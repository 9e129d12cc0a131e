"""PostgreSQL's implementation of storage's per-database interfaces (asyncpg)."""

from provisor.storage.backend import Backend
from provisor.storage.postgres import driver, resources, transactions

BACKEND = Backend(
    name="postgresql",
    # resources and driver
    driver=driver,
    transactions=transactions,
    resources=resources,
)
