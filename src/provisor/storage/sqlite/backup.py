"""SQLite's backup tool (`storage.backup_tools.BackupTool`): the online backup API, which copies
every page under one read transaction; in WAL mode writers keep committing meanwhile and the copy
is the database as of the copy's start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from provisor.storage.backup_tools import BackupError, replaced_when_complete
from provisor.storage.sqlite.auth_signal import announce_path, path_for

magic = b"SQLite format 3\x00"
label = "SQLite"
url_form = "sqlite:///"
file_format = "SQLite"


def _path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _is_provisor(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    return row is not None


def backup(url: str, target: Path) -> None:
    path = _path(url)
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    with replaced_when_complete(target) as partial:
        source = sqlite3.connect(path)
        copy = sqlite3.connect(partial)
        try:
            if not _is_provisor(source):
                raise BackupError(f"{path} is not a Provisor database")
            source.backup(copy)  # every page in one step: one read transaction, one instant
            copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"the copy of {path} failed its integrity check; nothing was written")
        finally:
            copy.close()
            source.close()


def restore(source: Path, url: str, *, force: bool) -> None:
    path = _path(url)
    backup_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        if backup_conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{source} is damaged (integrity check failed)")
        if not _is_provisor(backup_conn):
            raise BackupError(f"{source} is not a Provisor backup")
        if not path.parent.is_dir():
            raise BackupError(f"the directory {path.parent} does not exist")
        target = sqlite3.connect(path)
        try:
            if _is_provisor(target) and not force:
                raise BackupError(f"{path} already holds a Provisor database; add --force to replace it")
            backup_conn.backup(target)
        finally:
            target.close()
        # Tokens and tenants are the backup's now: running workers drop their token caches.
        announce_path(path_for(str(path)))
    finally:
        backup_conn.close()
