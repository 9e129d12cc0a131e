"""Consistent backups of a live deployment and their restore, with each database's own tool.

Why not an export of rows: a backup must hold every table (tokens' hashes, events and their seqs,
webhook cursors and deliveries) as of one instant while writers go on. Each database already has
the tool that does exactly that:
- SQLite: the online backup API, which copies every page under one read transaction; in WAL mode
  writers keep committing meanwhile and the copy is the database as of the copy's start.
- PostgreSQL: `pg_dump`, which reads everything in one repeatable-read snapshot, in its custom
  format; `pg_restore` loads it into an empty database in one transaction.
A backup is restored into the same kind of database only (moving between kinds is `export`/`import`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from provisor.storage.engine import backend_name, without_pgbouncer_param

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message names the problem and the fix."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    kind: str
    size: int


def backup(url: str, target: Path) -> BackupResult:
    """Write a consistent copy of the database at `url` to `target` (replaced only when complete)."""
    kind = backend_name(url)
    if kind == "sqlite":
        _backup_sqlite(_sqlite_path(url), target)
    else:
        _backup_postgres(url, target)
    return BackupResult(target, kind, target.stat().st_size)


def restore(source: Path, url: str, *, force: bool = False) -> str:
    """Load the backup `source` into the database at `url`; refuses a database that holds Provisor
    data unless `force`. Returns the kind of database restored."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    with source.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    kind = backend_name(url)
    if head.startswith(SQLITE_MAGIC):
        if kind != "sqlite":
            raise BackupError(f"{source} is a SQLite backup; restore it into a sqlite:/// URL")
        _restore_sqlite(source, _sqlite_path(url), force=force)
    elif head.startswith(PG_DUMP_MAGIC):
        if kind != "postgresql":
            raise BackupError(f"{source} is a PostgreSQL backup; restore it into a postgresql:// URL")
        _restore_postgres(source, url, force=force)
    else:
        raise BackupError(f"{source} is not a Provisor backup (neither SQLite nor pg_dump's custom format)")
    return kind


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _is_provisor_sqlite(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    return row is not None


def _backup_sqlite(path: Path, target: Path) -> None:
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        source = sqlite3.connect(path)
        copy = sqlite3.connect(partial)
        try:
            if not _is_provisor_sqlite(source):
                raise BackupError(f"{path} is not a Provisor database")
            source.backup(copy)  # every page in one step: one read transaction, one instant
            copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"the copy of {path} failed its integrity check; nothing was written")
        finally:
            copy.close()
            source.close()
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _restore_sqlite(source: Path, path: Path, *, force: bool) -> None:
    backup_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        if backup_conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{source} is damaged (integrity check failed)")
        if not _is_provisor_sqlite(backup_conn):
            raise BackupError(f"{source} is not a Provisor backup")
        if not path.parent.is_dir():
            raise BackupError(f"the directory {path.parent} does not exist")
        target = sqlite3.connect(path)
        try:
            if _is_provisor_sqlite(target) and not force:
                raise BackupError(f"{path} already holds a Provisor database; add --force to replace it")
            backup_conn.backup(target)
        finally:
            target.close()
    finally:
        backup_conn.close()


def _libpq_url(url: str) -> str:
    parsed = make_url(without_pgbouncer_param(url))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _run(args: list[str], what: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{what} failed: {detail}")
    return done.stdout


def _backup_postgres(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        _run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", partial, _libpq_url(url)], "pg_dump"
        )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _restore_postgres(source: Path, url: str, *, force: bool) -> None:
    libpq = _libpq_url(url)
    has_schema = _run(
        [
            _tool("psql"),
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--dbname",
            libpq,
            "--command",
            "SELECT to_regclass('public.alembic_version') IS NOT NULL",
        ],
        "checking the target database",
    ).strip()
    args = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if has_schema == "t":
        if not force:
            raise BackupError(
                "the target database already holds Provisor tables; add --force to replace them"
            )
        args += ["--clean", "--if-exists"]
    _run([*args, "--dbname", libpq, str(source)], "pg_restore")
