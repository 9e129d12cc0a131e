"""One place that turns what can go wrong under any `provisor` command into a short message.

Every subcommand runs inside `ProvisorGroup.invoke`: a known failure (database unreachable or
missing, bad URL, port taken, bad configuration) becomes one or two lines on stderr naming the
problem and the fix, with the exit code of the contract (DESIGN.md 1b): 1 for a runtime failure,
2 for bad usage or an unknown value. The traceback is shown only at `--log-level debug`.
"""

from __future__ import annotations

import errno
import socket
import sys
import traceback
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from provisor.config import LOG_LEVELS, ConfigError
from provisor.schema.registry import SchemaFileError
from provisor.storage.faults import DBAPIError
from provisor.storage.urls import DatabaseUrlError
from provisor.tenant_names import InvalidTenantName

RUNTIME_FAILURE = 1
BAD_USAGE = 2

#: `ctx.meta` key where `--log-level` (on the group or on `serve`) leaves its value.
LOG_LEVEL_KEY = "provisor.log_level"
_URL_FLAGS = "--database-url / PROVISOR_DATABASE_URL"
_URL_FORMS = "use sqlite:///path/to/provisor.db or postgresql://user:password@host:5432/db"


class CliError(click.ClickException):
    """A failure the operator can fix; `hint` says how. Exit 1 unless `exit_code` says otherwise."""

    exit_code = RUNTIME_FAILURE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def format_message(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"provisor: {self.format_message()}", err=True)


class BadUsage(CliError):
    """A mistake in what the operator typed (a URL, a flag's value): exit 2."""

    exit_code = BAD_USAGE


class UnknownValue(BadUsage):
    """A name or enumerated value that does not exist (a tenant, a webhook, an event op): exit 2."""


class NoDatabase(CliError):
    """A read-only command pointed at a URL without a Provisor database: nothing is created."""


def remember_log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Option callback: keep `--log-level` where the error handler of the whole group can see it
    (a subcommand's default does not override a level given before the subcommand)."""
    given = param.name is not None and ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT
    if value and (given or LOG_LEVEL_KEY not in ctx.meta):
        ctx.meta[LOG_LEVEL_KEY] = value
    return value


#: `--log-level` on the root group (`provisor --log-level debug token list`) and on `serve`.
log_level_option = click.option(
    "--log-level",
    envvar="PROVISOR_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=remember_log_level,
    help="debug shows the traceback of a failure (and, for serve, the server's debug log).",
)


def _debug(ctx: click.Context) -> bool:
    return str(ctx.meta.get(LOG_LEVEL_KEY, "")).lower() == "debug"


def _root_cause(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrapper (asyncpg, sqlite3, OSError)."""
    seen: BaseException = exc
    if isinstance(seen, DBAPIError) and seen.orig is not None:
        seen = seen.orig
    while seen.__cause__ is not None and not isinstance(seen, OSError):
        seen = seen.__cause__
    return seen


def _postgres_message(cause: BaseException) -> CliError | None:
    name = type(cause).__name__
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else name
    if name == "InvalidCatalogNameError":
        return CliError(
            f"cannot open the database: {text}",
            f"create it (createdb NAME), or fix the database name in {_URL_FLAGS}",
        )
    if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
        return CliError(
            f"PostgreSQL refused the login: {text}",
            f"fix the user or password in {_URL_FLAGS}",
        )
    return None


def translate(exc: BaseException) -> CliError | None:
    """The message for a known failure, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, DatabaseUrlError):
        return BadUsage(str(exc), _URL_FORMS)
    if isinstance(exc, InvalidTenantName | ConfigError | SchemaFileError):
        return BadUsage(str(exc))
    if isinstance(exc, click.ClickException):
        return None
    cause = _root_cause(exc)
    found = _postgres_message(cause)
    if found is not None:
        return found
    if isinstance(cause, socket.gaierror):
        return CliError(
            f"cannot resolve the database host: {cause.strerror}", f"fix the host in {_URL_FLAGS}"
        )
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        return CliError(
            f"cannot listen: {cause.strerror}",
            "another server holds the port: stop it, or choose another port with --port / PROVISOR_PORT",
        )
    if isinstance(cause, ConnectionError | TimeoutError) or (
        isinstance(cause, OSError)
        and cause.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)
    ):
        return CliError(
            f"cannot reach the database: {cause}",
            f"start PostgreSQL, or fix the host and port in {_URL_FLAGS}",
        )
    if isinstance(exc, DBAPIError):
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "unable to open database file" in text:
            return CliError(
                "cannot open the SQLite database file: its folder does not exist or is not writable",
                f"create the folder, or fix the path in {_URL_FLAGS}",
            )
        if "readonly database" in text:
            return CliError(
                "the SQLite database file is read-only",
                "make the file and its folder writable by this user (chmod / chown), or use another file",
            )
        return CliError(f"database error: {text}", "run with --log-level debug for the full traceback")
    return None


def fail(exc: BaseException, debug: bool) -> NoReturn:
    """Print `exc` as the contract says and exit."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    error = translate(exc)
    if error is None:
        error = CliError(
            f"unexpected error: {type(exc).__name__}: {exc}",
            "run with --log-level debug for the traceback, and please report it",
        )
    error.show()
    sys.exit(error.exit_code)


def _short_usage_error(error: click.UsageError) -> NoReturn:
    """Click's usage errors in the contract's two lines (click prints the usage and a blank line too)."""
    where = error.ctx.command_path if error.ctx else "provisor"
    click.echo(f"provisor: {error.format_message()}", err=True)
    click.echo(f"see `{where} --help`", err=True)
    sys.exit(BAD_USAGE)


class ProvisorGroup(click.Group):
    """The root group: runs every subcommand through `translate`."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # a bad option of the root group itself
            _short_usage_error(error)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            _short_usage_error(error)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the single place where every command's failure lands
            fail(exc, _debug(ctx))
