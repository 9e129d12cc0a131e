"""Process-wide settings, read from the environment (`PROVISOR_*`) and overridden by CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from provisor.storage.engine import DEFAULT_DATABASE_URL


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class ConfigError(ValueError):
    """A setting (environment variable or flag) with a value Provisor cannot use."""


REQUEST_LOG_MODES = ("off", "metadata", "full")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    #: Public base URL of the SCIM API (used in `meta.location` and `Location`), e.g.
    #: `https://idp.example.com/scim/v2`. When unset it is derived from each request.
    base_url: str | None = None
    #: Optional static bearer token for the default tenant (containers, first runs).
    static_token: str | None = None
    log_level: str = "info"
    schema_extensions: tuple[str, ...] = ()
    migrate_on_start: bool = True
    default_page_size: int = 100
    max_page_size: int = 1000
    max_body_bytes: int = 1_048_576
    max_filter_length: int = 4096
    max_filter_depth: int = 32
    max_patch_operations: int = 1000
    bulk_max_operations: int = 1000
    bulk_max_payload_bytes: int = 1_048_576
    #: Keep accepted tokens in memory while a PostgreSQL LISTEN connection is proven to carry their
    #: invalidation (storage/auth_cache.py); where notifications do not come back (PgBouncer in
    #: transaction mode) it stays off by itself. SQLite never caches.
    token_cache: bool = True
    #: Run the webhook delivery worker (and event pruning) in this process.
    webhooks_enabled: bool = True
    webhook_max_attempts: int = 8
    #: How long a worker holds a delivery it is sending; a crashed worker's deliveries are retried
    #: by another after this. Keep it above the request timeout (10 s).
    webhook_lease_seconds: float = 30.0
    #: How often each worker looks for events written by other processes. Its own writes wake it
    #: at once (events/runtime.py), so this bounds only the delay of other processes' changes.
    webhook_poll_seconds: float = 0.2
    #: Prune events older than this many days (0 keeps them forever); see docs/events.md.
    event_retention_days: int = 0
    #: Deepest JSON nesting accepted in a request body (400 invalidSyntax beyond); docs/security.md.
    max_json_depth: int = 64
    #: Seconds until a response must have started (503 after); 0 disables the limit.
    request_timeout_seconds: float = 30.0
    #: Default request-log mode for tenants without a `request_log` setting: off | metadata | full.
    request_log_mode: str = "metadata"
    #: Prune request-log rows older than this many days (0 keeps them forever).
    request_log_retention_days: int = 7
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        exts = tuple(p for p in env.get("PROVISOR_SCHEMA_EXTENSIONS", "").split(os.pathsep) if p)
        settings = cls(
            database_url=env.get("PROVISOR_DATABASE_URL", DEFAULT_DATABASE_URL),
            base_url=env.get("PROVISOR_BASE_URL") or None,
            static_token=env.get("PROVISOR_TOKEN") or None,
            log_level=env.get("PROVISOR_LOG_LEVEL", "info"),
            schema_extensions=exts,
            default_page_size=_env_int("PROVISOR_DEFAULT_PAGE_SIZE", 100),
            max_page_size=_env_int("PROVISOR_MAX_PAGE_SIZE", 1000),
            max_body_bytes=_env_int("PROVISOR_MAX_BODY_BYTES", 1_048_576),
            bulk_max_operations=_env_int("PROVISOR_BULK_MAX_OPERATIONS", 1000),
            bulk_max_payload_bytes=_env_int("PROVISOR_BULK_MAX_PAYLOAD_BYTES", 1_048_576),
            webhooks_enabled=env.get("PROVISOR_WEBHOOKS_ENABLED", "1").lower() not in ("0", "false", "no"),
            token_cache=env.get("PROVISOR_TOKEN_CACHE", "1").lower() not in ("0", "false", "no", "off"),
            webhook_max_attempts=_env_int("PROVISOR_WEBHOOK_MAX_ATTEMPTS", 8),
            webhook_lease_seconds=_env_float("PROVISOR_WEBHOOK_LEASE_SECONDS", 30.0),
            webhook_poll_seconds=_env_float("PROVISOR_WEBHOOK_POLL_SECONDS", 0.2),
            event_retention_days=_env_int("PROVISOR_EVENT_RETENTION_DAYS", 0),
            max_filter_length=_env_int("PROVISOR_MAX_FILTER_LENGTH", 4096),
            max_filter_depth=_env_int("PROVISOR_MAX_FILTER_DEPTH", 32),
            max_patch_operations=_env_int("PROVISOR_MAX_PATCH_OPERATIONS", 1000),
            max_json_depth=_env_int("PROVISOR_MAX_JSON_DEPTH", 64),
            request_timeout_seconds=_env_float("PROVISOR_REQUEST_TIMEOUT", 30.0),
            request_log_mode=env.get("PROVISOR_REQUEST_LOG", "metadata").lower(),
            request_log_retention_days=_env_int("PROVISOR_REQUEST_LOG_RETENTION_DAYS", 7),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(settings, **clean)
        if settings.request_log_mode not in REQUEST_LOG_MODES:
            raise ConfigError(f"PROVISOR_REQUEST_LOG must be one of {', '.join(REQUEST_LOG_MODES)}")
        return settings
