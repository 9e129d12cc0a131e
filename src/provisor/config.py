"""Process-wide settings: each declared once (name, environment variable, parser, default, help).

`Settings` is the table. Every field is made by `setting()`, whose metadata carries the
`PROVISOR_*` variable, the parser of its text and the help shown in README.md's configuration
table (tests/unit/test_config.py keeps the two in step). `Settings.from_env()` reads the variables
through those parsers; CLI flags override them by keyword. `provisor serve` hands the resulting
`Settings` to its workers as a value (http/factory.py), not through `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, TypeVar

from provisor.storage.engine import DEFAULT_POOL_SIZE
from provisor.storage.urls import DEFAULT_DATABASE_URL

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting (environment variable or flag) with a value Provisor cannot use."""


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    """The one spelling of booleans: true/false, 1/0, yes/no, on/off, in any case."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false (also 1/0, yes/no, on/off)")


def _text(raw: str) -> str:
    return raw


def _optional_text(raw: str) -> str | None:
    return raw or None


def _integer(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if value < low:
            raise ValueError(f"{value} is below the minimum {low}")
        return value

    return parse


def _number(low: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not value >= low:  # also refuses NaN
            raise ValueError(f"{raw.strip()} is below the minimum {low:g}")
        return value

    return parse


def _choice(*values: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        lowered = raw.strip().lower()
        if lowered not in values:
            raise ValueError(f"{raw!r} is not one of {', '.join(values)}")
        return lowered

    return parse


def _paths(raw: str) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in raw.split(os.pathsep) if p)


REQUEST_LOG_MODES = ("off", "metadata", "full")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _metrics_address(raw: str) -> str:
    """`main`, `off` or `HOST:PORT` (docs/operations.md)."""
    value = raw.strip().lower() or "main"
    if value in ("main", "off"):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be main, off or HOST:PORT (e.g. 127.0.0.1:9464), not {raw!r}")
    return value


def setting(default: T, env: str | None, parse: Callable[[str], Any], help: str) -> T:
    """One setting: its default, its `PROVISOR_*` variable (None: not configurable), parser and help."""
    # At run time a dataclasses.Field; typed as its value so that the class body type-checks.
    return field(default=default, metadata={"env": env, "parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        "PROVISOR_DATABASE_URL",
        _text,
        "`sqlite:///path.db` or `postgresql://user:pass@host:port/db`",
    )
    database_pool_size: int = setting(
        DEFAULT_POOL_SIZE,
        "PROVISOR_DATABASE_POOL_SIZE",
        _integer(2),
        "PostgreSQL connections each worker keeps; it opens up to half as many more for a burst, and "
        "one for the token cache (size `max_connections` from it; docs/scale-out.md)",
    )
    base_url: str | None = setting(
        None,
        "PROVISOR_BASE_URL",
        _optional_text,
        "Public base URL of the SCIM API, used in `meta.location` and `Location` behind a proxy, "
        "e.g. `https://scim.example.com/scim/v2` (default: derived from each request)",
    )
    static_token: str | None = setting(
        None,
        "PROVISOR_TOKEN",
        _optional_text,
        "A static bearer token for the `default` tenant (containers, first runs)",
    )
    log_level: str = setting("info", "PROVISOR_LOG_LEVEL", _choice(*LOG_LEVELS), "Log level")
    schema_extensions: tuple[str, ...] = setting(
        (),
        "PROVISOR_SCHEMA_EXTENSIONS",
        _paths,
        "Custom schema extension files (RFC 7643 JSON); `os.pathsep`-separated in the variable. Each is "
        "checked when loaded: a bad file stops `serve` and `migrate` (exit 2) naming it and the attribute",
    )
    #: Internal: `provisor serve` migrates once in the parent, so its workers must not.
    migrate_on_start: bool = setting(True, None, parse_bool, "Run migrations when the app starts")
    default_page_size: int = setting(
        100, "PROVISOR_DEFAULT_PAGE_SIZE", _integer(1), "`count` when a list request gives none"
    )
    max_page_size: int = setting(
        1000,
        "PROVISOR_MAX_PAGE_SIZE",
        _integer(1),
        "Largest `count` honoured (advertised as `filter.maxResults`)",
    )
    max_body_bytes: int = setting(
        1_048_576,
        "PROVISOR_MAX_BODY_BYTES",
        _integer(1),
        "Larger request bodies get 413 before they are read",
    )
    max_filter_length: int = setting(
        4096, "PROVISOR_MAX_FILTER_LENGTH", _integer(1), "Longer filters are 400 `invalidFilter`"
    )
    max_filter_depth: int = setting(
        32, "PROVISOR_MAX_FILTER_DEPTH", _integer(1), "Filters nested deeper are 400 `invalidFilter`"
    )
    max_patch_operations: int = setting(
        1000, "PROVISOR_MAX_PATCH_OPERATIONS", _integer(1), "Most operations in one PATCH request"
    )
    bulk_max_operations: int = setting(
        1000,
        "PROVISOR_BULK_MAX_OPERATIONS",
        _integer(1),
        "Most operations in one Bulk request (advertised as `bulk.maxOperations`)",
    )
    bulk_max_payload_bytes: int = setting(
        1_048_576,
        "PROVISOR_BULK_MAX_PAYLOAD_BYTES",
        _integer(1),
        "Largest Bulk request body (advertised as `bulk.maxPayloadSize`)",
    )
    #: See storage/auth_cache.py: the cache stays off by itself where notifications do not come back.
    token_cache: bool = setting(
        True,
        "PROVISOR_TOKEN_CACHE",
        parse_bool,
        "PostgreSQL: keep accepted tokens in each worker while a `LISTEN` connection is proven to carry "
        "their invalidation (docs/security.md); it stays off by itself where notifications do not come "
        "back (PgBouncer in transaction mode). SQLite: while the signal file beside the database "
        "(`.auth-signal`) can be read, for at most 1 s at a time",
    )
    webhooks_enabled: bool = setting(
        True,
        "PROVISOR_WEBHOOKS_ENABLED",
        parse_bool,
        "Run the webhook delivery worker (and event pruning) in each serving process",
    )
    webhook_max_attempts: int = setting(
        8, "PROVISOR_WEBHOOK_MAX_ATTEMPTS", _integer(1), "Attempts before a delivery is dead"
    )
    #: Keep it above the webhook request timeout (10 s): a crashed worker's deliveries are retried after it.
    webhook_lease_seconds: float = setting(
        30.0,
        "PROVISOR_WEBHOOK_LEASE_SECONDS",
        _number(1),
        "How long a worker holds a delivery it is sending (another retries it after a crash)",
    )
    #: A worker's own writes wake it at once (events/runtime.py); this bounds other processes' delay.
    webhook_poll_seconds: float = setting(
        0.2,
        "PROVISOR_WEBHOOK_POLL_SECONDS",
        _number(0.01),
        "How often each worker looks for events written by other processes",
    )
    auto_analyze: bool = setting(
        True,
        "PROVISOR_AUTO_ANALYZE",
        parse_bool,
        "PostgreSQL: `ANALYZE` a hot table once it has changed by more than its size at the last ANALYZE "
        "(and 1,000 rows), checked every 10 s by each worker that wrote (docs/performance.md); `false` "
        "leaves statistics to your autovacuum tuning",
    )
    role_job_batch: int = setting(
        1000,
        "PROVISOR_ROLE_JOB_BATCH",
        _integer(1),
        "Members per transaction when a role mapping is applied in the background (docs/roles.md)",
    )
    event_retention_days: int = setting(
        0,
        "PROVISOR_EVENT_RETENTION_DAYS",
        _integer(0),
        "Prune events older than this many days (0 keeps them; docs/events.md)",
    )
    max_json_depth: int = setting(
        64, "PROVISOR_MAX_JSON_DEPTH", _integer(1), "Deeper JSON nesting in a body is 400 `invalidSyntax`"
    )
    request_timeout_seconds: float = setting(
        30.0,
        "PROVISOR_REQUEST_TIMEOUT",
        _number(0),
        "Seconds until a response must start (503 after; 0 = no limit)",
    )
    max_inflight: int = setting(
        16,
        "PROVISOR_MAX_INFLIGHT",
        _integer(0),
        "SCIM and admin requests one worker serves at once; more are answered 503 with `Retry-After` "
        "at once (0 = no limit; docs/operations.md)",
    )
    request_log_mode: str = setting(
        "metadata",
        "PROVISOR_REQUEST_LOG",
        _choice(*REQUEST_LOG_MODES),
        "Request log mode for tenants without their own `request_log` setting: `off`, `metadata`, `full`",
    )
    request_log_retention_days: int = setting(
        7,
        "PROVISOR_REQUEST_LOG_RETENTION_DAYS",
        _integer(0),
        "Prune request log rows older than this (0 keeps them)",
    )

    metrics_address: str = setting(
        "main",
        "PROVISOR_METRICS_ADDRESS",
        _metrics_address,
        "Where `/metrics` is served: `main` (the API's port, admin tokens only), `HOST:PORT` (a separate "
        "listener without authentication) or `off` (docs/operations.md)",
    )
    otlp_endpoint: str | None = setting(
        None,
        "PROVISOR_OTLP_ENDPOINT",
        _optional_text,
        "OTLP/HTTP endpoint for traces (needs `pip install 'provisor[otel]'`); unset: no tracing unless "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` is set (docs/operations.md)",
    )
    console_idle_minutes: int = setting(
        480,
        "PROVISOR_CONSOLE_IDLE_MINUTES",
        _integer(1),
        "A console session ends after this many idle minutes",
    )
    console_session_hours: int = setting(
        24,
        "PROVISOR_CONSOLE_SESSION_HOURS",
        _integer(1),
        "A console session ends this many hours after sign-in",
    )

    @classmethod
    def declared(cls) -> tuple[Field[Any], ...]:
        """The settings configurable through the environment, in declaration order."""
        return tuple(f for f in fields(cls) if f.metadata.get("env"))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `PROVISOR_*` variables (ConfigError naming a bad one), then `overrides`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for declared in cls.declared():
            name = declared.metadata["env"]
            raw = env.get(name)
            if raw is None or (raw == "" and declared.default is not None):
                continue  # unset, or set empty for a setting that cannot be empty: the default
            try:
                values[declared.name] = declared.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        if settings.request_log_mode not in REQUEST_LOG_MODES:
            raise ConfigError(f"request log mode must be one of {', '.join(REQUEST_LOG_MODES)}")
        return settings
