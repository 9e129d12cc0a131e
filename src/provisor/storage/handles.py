"""The database handles that the layers above storage hold and hand back.

An engine lives as long as the process; a connection is one transaction or one autocommit
statement (storage/transactions.py opens them). Above storage they are opaque: service and events
pass them to storage functions and never run a statement on them, so they name the types here
rather than importing SQLAlchemy, and the test of the layout (tests/unit/test_layering.py) can
hold SQLAlchemy to this package.
"""

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["AsyncConnection", "AsyncEngine"]
