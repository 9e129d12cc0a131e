"""What one database kind implements: the `Backend` the per-database packages fill in.

PostgreSQL's and SQLite's code live in their own packages (`storage/postgres/`,
`storage/sqlite/`), each exporting one `Backend` whose parts implement the same interfaces.
`storage/kind.py` picks the one serving an engine; the portable storage modules call that part
and never compare dialect names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisor.storage.contracts import Driver, ResourceStatements, WriteTransactions


@dataclass(frozen=True)
class Backend:
    """One database kind's implementations of storage's per-database interfaces.

    Each field is one concern's implementation, typed by the Protocol that the portable module
    of that concern declares (the contract); the per-database packages fill them in.
    """

    name: str

    # resources and driver
    #: Statements sent to the driver directly (storage/direct.py).
    driver: Driver
    #: How write transactions start and commit (storage/transactions.py).
    transactions: WriteTransactions
    #: The statements and one-call writes of resources (storage/resources.py).
    resources: ResourceStatements
