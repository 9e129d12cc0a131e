"""What one database kind implements: the `Backend` the per-database packages fill in.

PostgreSQL's and SQLite's code live in their own packages (`storage/postgres/`,
`storage/sqlite/`), each exporting one `Backend` whose parts implement the same interfaces.
`storage/kind.py` picks the one serving an engine; the portable storage modules call that part
and never compare dialect names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisor.storage.backup_tools import BackupTool
from provisor.storage.contracts import (
    Driver,
    EngineFactory,
    MigrationLock,
    OnConflictInsert,
    ResourceStatements,
    SnapshotView,
    TokenSignal,
    WriteTransactions,
)
from provisor.storage.filter_values import FilterSql
from provisor.storage.members_sql import MemberStatements


@dataclass(frozen=True)
class Backend:
    """One database kind's implementations of storage's per-database interfaces.

    Each field is one concern's implementation, typed by the Protocol that the portable module
    of that concern declares (the contract); the per-database packages fill them in.
    """

    name: str

    #: Builds the engine for a URL of this kind (storage/engine.py).
    engines: EngineFactory
    # resources and driver
    #: Statements sent to the driver directly (storage/direct.py).
    driver: Driver
    #: How write transactions start and commit (storage/transactions.py).
    transactions: WriteTransactions
    #: The statements and one-call writes of resources (storage/resources.py).
    resources: ResourceStatements
    # members and the rest
    #: Group membership statements (storage/members.py).
    members: MemberStatements
    #: The filter compiler's JSON access and string functions (storage/filter_sql.py).
    filters: FilterSql
    #: INSERT ... ON CONFLICT (upserts: consumers, request log counts, rate buckets, entitlements).
    insert: OnConflictInsert
    #: The snapshot's consistent view of the data and the event log (storage/snapshot.py).
    snapshot: SnapshotView
    #: Consistent backups and their restore (storage/backup.py).
    backup: BackupTool
    #: Serialises concurrent migrations (storage/migrate.py).
    migration_lock: MigrationLock
    #: `SELECT ... FOR UPDATE` holds rows against concurrent writers until commit (and
    #: `SKIP LOCKED` passes them by). False: writers are serialised by one lock on the whole
    #: database already, and FOR UPDATE is not SQL the database knows.
    row_locks: bool
    #: Writers are serialised by one database-wide lock: a write transaction's statements are best
    #: bound beforehand and run as one call in the connection's thread (`write_in_sqlite_thread`),
    #: so that the lock is held for the database's own work only (storage/batch.py).
    serial_writer: bool
    #: `COPY ... FROM STDIN` (`storage.direct.copy_rows`) appends rows for less CPU per row than
    #: INSERTs do (storage/request_log.py, storage/batch.py).
    bulk_copy: bool
    #: An event's seq is drawn at its insert and becomes visible at its commit, so a higher seq can
    #: be visible while a lower one is still in flight: readers of the log must not pass a gap
    #: until it is old enough to be a rollback's (storage/event_log.py `safe_horizon`).
    seq_gaps: bool
    #: The planner needs statistics that `ANALYZE` refreshes, and they can go stale as tables grow:
    #: the statistics keeper (storage/statistics.py) runs.
    analyze_keeper: bool
    #: LISTEN/NOTIFY carries invalidations between processes: the token cache can be on
    #: (storage/auth_cache.py).
    listen_notify: bool
    #: Without LISTEN/NOTIFY: how workers hear of changes to tokens and tenants, so that the token
    #: cache can be on all the same (storage/auth_cache.py); None where LISTEN/NOTIFY does it.
    token_signal: TokenSignal | None
    #: A server reached over the network, with its own authentication: a URL without a password
    #: to another machine is refused at `serve` (storage/dbcheck.py).
    network_server: bool
