"""The storage contract the service layer is typed against.

Each Protocol names what a storage module offers and promises, in its docstrings; the module
itself is the implementation, checked by mypy where the service binds it (a module assigned to
an attribute or a name of the Protocol's type: `ResourceService.writes`, `.reads`, `.lists`,
`.outbox`, `GroupService.members`, `UserService.groups_of`, elsewhere a module-level name such as
`_store: Tenants = store` in service/tenants.py), and the service calls storage through that name
(tests/unit/test_layering.py fails otherwise; transactions, handles, errors and data types are
imported directly). The per-database statements stay behind these signatures: nothing here says
PostgreSQL or SQLite.

One module per group of concepts, each Protocol re-exported here:
- resources.py: `ResourceWrites`, `Outbox`, `ResourceReads`, `ResourceLists`, `Batches`,
  `ManagedAccounts`, `Tombstones`, `Transfer`;
- members.py: `Members`, `MemberGroups`, `Roles`, `Entitlements`;
- access.py: `Tokens`, `Tenants`, `ConsoleSessions`, `SetupLinks`, `RateBuckets`;
- events.py: `EventLog`, `Consumers`, `DeprovisioningLog`, `Webhooks`, `Snapshots`;
- operations.py: `RequestLog`, `ConsoleQueries`, `Migrations`.

Errors are storage's own (storage/errors.py) unless a docstring says otherwise; an outage
raises the driver's error, which storage/faults.py classifies.
"""

from provisor.storage.interfaces.access import ConsoleSessions, RateBuckets, SetupLinks, Tenants, Tokens
from provisor.storage.interfaces.events import Consumers, DeprovisioningLog, EventLog, Snapshots, Webhooks
from provisor.storage.interfaces.members import Entitlements, MemberGroups, Members, Roles
from provisor.storage.interfaces.operations import ConsoleQueries, Migrations, RequestLog
from provisor.storage.interfaces.resources import (
    Batches,
    ManagedAccounts,
    Outbox,
    ResourceLists,
    ResourceReads,
    ResourceWrites,
    Tombstones,
    Transfer,
)

__all__ = [
    "Batches",
    "ConsoleQueries",
    "ConsoleSessions",
    "Consumers",
    "DeprovisioningLog",
    "Entitlements",
    "EventLog",
    "ManagedAccounts",
    "MemberGroups",
    "Members",
    "Migrations",
    "Outbox",
    "RateBuckets",
    "RequestLog",
    "ResourceLists",
    "ResourceReads",
    "ResourceWrites",
    "Roles",
    "SetupLinks",
    "Snapshots",
    "Tenants",
    "Tokens",
    "Tombstones",
    "Transfer",
    "Webhooks",
]
