"""The relational model (DESIGN.md section 3), in SQLAlchemy Core, portable to SQLite and PostgreSQL.

Every key starts with `tenant_id` so the schema can later be distributed by tenant. Timestamps are
stored as fixed-width UTC ISO-8601 strings (`2026-11-28T09:40:08.123456Z`): on both engines they
then compare as instants with plain string comparison, which keeps filters and cursors portable.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

#: JSON on SQLite (stored as text, queried with JSON1), JSONB on PostgreSQL.
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")

TIMESTAMP = String(32)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("settings", JsonDoc, nullable=False),
    Column("created", TIMESTAMP, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=True),  # NULL for admin tokens
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # "scim" | "admin"
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created", TIMESTAMP, nullable=False),
    Column("last_used", TIMESTAMP, nullable=True),
    Column("expires_at", TIMESTAMP, nullable=True),
    Column("revoked_at", TIMESTAMP, nullable=True),
)

resources = Table(
    "resources",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    Column("last_modified", TIMESTAMP, nullable=False),
    #: Unused: DELETE removes the row; a tombstone is a row of `tombstones` (docs/delete-policy.md).
    Column("deleted_at", TIMESTAMP, nullable=True),
    Column("doc", JsonDoc, nullable=False),
    #: False for accounts loaded by `provisor import` until an IdP's POST adopts them (docs/bulk.md).
    Column("managed", Boolean, nullable=False, server_default=text("true")),
    PrimaryKeyConstraint("tenant_id", "id"),
    Index("ix_resources_type_created", "tenant_id", "resource_type", "created", "id"),
    Index("ix_resources_type_modified", "tenant_id", "resource_type", "last_modified", "id"),
)

#: Normalised values of the attributes that are filtered and unique in practice. `value_norm` is
#: lower-cased for caseExact=false attributes. Rows with `is_unique` enforce uniqueness through a
#: partial unique index, so concurrent creates race in the database, not in Python. No foreign key to
#: `resources`: rows are only written beside their resource's document and deleted with it
#: explicitly, and the key's per-row check cost every create about 12% of PostgreSQL's CPU
#: (migration 0008).
attribute_index = Table(
    "attribute_index",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("attr", String(200), nullable=False),
    #: Code point order on PostgreSQL (migration 0015), as SQLite's BINARY: a prefix's values are
    #: then one range of the B-tree, which serves `sw` (storage/filter_sql.py).
    Column("value_norm", Text().with_variant(Text(collation="C"), "postgresql"), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("is_unique", Boolean, nullable=False, server_default=text("false")),
    Index("ix_attribute_index_lookup", "tenant_id", "resource_type", "attr", "value_norm"),
    #: Led by resource_id (migration 0015): an index led by tenant_id alone would compete with the
    #: lookup index for every `eq`/`sw` and, without statistics, win while reading the whole tenant.
    Index("ix_attribute_index_resource", "resource_id", "tenant_id"),
    Index(
        "ux_attribute_index_unique",
        "tenant_id",
        "resource_type",
        "attr",
        "value_norm",
        unique=True,
        sqlite_where=text("is_unique"),
        postgresql_where=text("is_unique"),
    ),
)

#: Resources deleted under the tenant's `tombstone` delete policy (docs/delete-policy.md), kept
#: until `purge_after` so that a later POST of the same account restores the same id. Out of
#: `resources` on purpose: no read path (by id, lists, filters, members, snapshot, export, console)
#: can see a tombstone, and none of their statements or plans change. `external_id` (exact) and
#: `name_norm` (userName, or a group's displayName, as `attribute_index` normalises it) are the keys
#: a POST is matched on; `groups` the ids of the groups that contained it when it was deleted.
tombstones = Table(
    "tombstones",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    Column("deleted_at", TIMESTAMP, nullable=False),
    Column("purge_after", TIMESTAMP, nullable=False),
    Column("external_id", Text, nullable=True),
    Column("name_norm", Text, nullable=True),
    Column("doc", JsonDoc, nullable=False),
    Column("groups", JsonDoc, nullable=False),
    PrimaryKeyConstraint("tenant_id", "id"),
    Index("ix_tombstones_external", "tenant_id", "resource_type", "external_id"),
    Index("ix_tombstones_name", "tenant_id", "resource_type", "name_norm"),
    Index("ix_tombstones_purge", "purge_after"),
)

#: Group membership as rows: adding or removing one member costs the same at any group size.
group_members = Table(
    "group_members",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("group_id", String(36), nullable=False),
    Column("member_id", String(36), nullable=False),
    Column("member_type", String(16), nullable=False),  # "User" | "Group"
    #: The member's `display` as the client sent it (immutable, RFC 7643 section 2.4); when NULL,
    #: the member resource's current displayName (or userName) is shown.
    Column("display", String(500), nullable=True),
    PrimaryKeyConstraint("tenant_id", "group_id", "member_id"),
    ForeignKeyConstraint(
        ["tenant_id", "group_id"], ["resources.tenant_id", "resources.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "member_id"], ["resources.tenant_id", "resources.id"], ondelete="CASCADE"
    ),
    Index("ix_group_members_member", "tenant_id", "member_id", "group_id"),
)

#: The application's catalogue of entitlements and roles (docs/entitlements.md): what an IdP such as
#: Okta Identity Governance lists under `/Entitlements` and `/Roles` and then assigns through a user's
#: `entitlements` and `roles`. Defined by the application (admin API, CLI), read-only over SCIM. Not
#: in `resources`: ids are the application's own keys (any text, not UUIDs), and nothing of the
#: resource machinery (versions, index rows, events, Bulk) applies to a read-only list.
entitlements = Table(
    "entitlements",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),  # "Entitlement" | "Role"
    Column("id", String(200), nullable=False),
    Column("display_name", String(500), nullable=False),
    Column("type", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("created", TIMESTAMP, nullable=False),
    Column("last_modified", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "resource_type", "id"),
)

#: Per tenant, which groups grant which application roles (docs/roles.md). A group is named by id
#: (`kind` "id") or by displayName (`kind` "name", kept lower-cased: displayName uniqueness ignores
#: case), which survives the group being deleted and re-created by an IdP.
role_mappings = Table(
    "role_mappings",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # "id" | "name"
    Column("group_ref", String(500), nullable=False),
    Column("role", String(200), nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "kind", "group_ref", "role"),
)

#: Background grant/revoke runs for a map or unmap of a large group: one row per run, with a cursor
#: over the group's member ids so that a restarted worker resumes where the last batch committed.
role_jobs = Table(
    "role_jobs",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(36), nullable=False),
    Column("action", String(8), nullable=False),  # "map" | "unmap"
    Column("kind", String(8), nullable=False),
    Column("group_ref", String(500), nullable=False),
    Column("group_id", String(36), nullable=False),
    Column("role", String(200), nullable=False),
    Column("cursor", String(36), nullable=True),  # the last member id done; NULL: none yet
    Column("processed", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # "running" | "done"
    Column("created", TIMESTAMP, nullable=False),
    Column("updated", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "id"),
    Index("ix_role_jobs_state", "state", "created"),
)

#: The transactional outbox: one row per change, written in the change's own transaction.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("at", TIMESTAMP, nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("op", String(32), nullable=False),
    Column("version", Integer, nullable=True),
    Column("actor", String(200), nullable=True),
    Column("payload", JsonDoc, nullable=True),
    Index("ix_events_tenant_seq", "tenant_id", "seq"),
    #: A resource's history and a request's events in the console (migration 0010).
    Index("ix_events_resource", "tenant_id", "resource_id", "seq"),
    #: Only deprovisioning events (docs/deprovisioning.md): a consumer's commit finds the ones it
    #: acknowledges by this index, at a cost in their number, not in the number of events passed.
    Index(
        "ix_events_deprovision",
        "seq",
        sqlite_where=text("resource_type = 'User' AND op IN ('deactivated', 'deleted')"),
        postgresql_where=text("resource_type = 'User' AND op IN ('deactivated', 'deleted')"),
    ),
)

#: Named feed consumers and their committed positions (docs/reconciliation.md). `tenant_id` NULL
#: means every tenant; `start_seq` is the first position committed: deprovisioning before it is not
#: this consumer's to acknowledge (it started from a snapshot that already reflected it).
consumers = Table(
    "consumers",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("tenant_id", String(64), nullable=True),
    Column("seq", BigInteger, nullable=False),
    Column("start_seq", BigInteger, nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    Column("updated", TIMESTAMP, nullable=False),
)

#: When a consumer's commit first covered each deprovisioning event in its scope. The event's
#: tenant and time are copied so the record outlives the event's pruning.
deprovision_acks = Table(
    "deprovision_acks",
    metadata,
    Column("consumer", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("event_at", TIMESTAMP, nullable=False),
    Column("acked_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("consumer", "event_seq"),
    Index("ix_deprovision_acks_tenant_at", "tenant_id", "event_at"),
)

#: Webhook subscriptions. `tenant_id` NULL means every tenant; `events` is a JSON list of ops or
#: NULL for all; `cursor` is the last event seq already fanned out into deliveries.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", JsonDoc, nullable=True),
    Column("format", String(8), nullable=False),  # "json" | "set"
    Column("created", TIMESTAMP, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("cursor", BigInteger, nullable=False, server_default=text("0")),
)

#: One row per (webhook, event): the retry state machine pending -> delivered | dead. The resource
#: columns are copied from the event so the per-resource ordering check is one index lookup.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("webhook_id", String(36), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("state", String(16), nullable=False),  # "pending" | "delivered" | "dead"
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TIMESTAMP, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("locked_until", TIMESTAMP, nullable=True),
    Column("delivered_at", TIMESTAMP, nullable=True),
    PrimaryKeyConstraint("webhook_id", "event_seq"),
    ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="CASCADE"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_resource", "webhook_id", "tenant_id", "resource_id", "event_seq"),
    Index("ix_webhook_deliveries_event", "event_seq"),
)

#: Per-tenant token buckets shared by every worker (docs/security.md, "Rate limits"). `tokens` is
#: the balance after the last request, `updated_at` its time in epoch seconds, `allowed` whether
#: that last request was admitted (read back with RETURNING in the same statement).
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("allowed", Boolean, nullable=False, server_default=text("true")),
)

#: Diagnostics, not the outbox: rows are written in batches after the response, so a crash can
#: lose the last fraction of a second of them. `tenant_id` is NULL for unauthenticated and admin calls.
request_log = Table(
    "request_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", TIMESTAMP, nullable=False),
    Column("tenant_id", String(64), nullable=True),
    Column("request_id", String(128), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=True),
    Column("status", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("token_name", String(200), nullable=True),
    Column("request_body", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    #: The unknown attributes the request's bodies carried and Provisor ignored (a JSON list).
    Column("unknown_attributes", Text, nullable=True),
    Index("ix_request_log_tenant_id", "tenant_id", "id"),
    Index("ix_request_log_at", "at"),
)

#: Per tenant, how often each unknown attribute came and when last (kept beyond the log's retention).
unknown_attributes = Table(
    "unknown_attributes",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_seen", TIMESTAMP, nullable=False),
)

#: Links to a tenant's IT-admin setup page (docs/setup-link.md); only the secret's SHA-256 is stored.
setup_links = Table(
    "setup_links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
    Column("revoked_at", TIMESTAMP, nullable=True),
    Column("last_used", TIMESTAMP, nullable=True),
    #: The event seq and request-log id when the link was made: its checklist reads only what
    #: follows (tokens are minted on the page, so their requests come later), over the tenant indexes.
    Column("since_event", BigInteger, nullable=False, server_default=text("0")),
    Column("since_request", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_setup_links_tenant", "tenant_id", "created"),
)

#: The web console's sessions (docs/console.md): only a hash of the session id is stored; a session
#: ends at `idle_expires_at` (pushed forward while used) or `expires_at` (fixed), whichever is first.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("token_id", String(36), nullable=False),
    Column("created", TIMESTAMP, nullable=False),
    Column("last_seen", TIMESTAMP, nullable=False),
    Column("idle_expires_at", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
    Index("ix_console_sessions_expires", "expires_at"),
)
