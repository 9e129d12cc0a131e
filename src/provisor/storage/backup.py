"""Consistent backups of a live deployment and their restore, with each database's own tool.

Why not an export of rows: a backup must hold every table (tokens' hashes, events and their seqs,
webhook cursors and deliveries) as of one instant while writers go on. Each database already has
the tool that does exactly that:
- SQLite: the online backup API, which copies every page under one read transaction; in WAL mode
  writers keep committing meanwhile and the copy is the database as of the copy's start.
- PostgreSQL: `pg_dump`, which reads everything in one repeatable-read snapshot, in its custom
  format; `pg_restore` loads it into an empty database in one transaction.
A backup is restored into the same kind of database only (moving between kinds is `export`/`import`).
Each tool is its database's `Backend.backup` (storage/sqlite/backup.py, storage/postgres/backup.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisor.storage.backup_tools import BackupError as BackupError  # the callers' name for it
from provisor.storage.backup_tools import BackupTool
from provisor.storage.kind import backend_named, every_backend
from provisor.storage.urls import backend_name


@dataclass(frozen=True)
class BackupResult:
    path: Path
    kind: str
    size: int


def _tool(url: str) -> tuple[str, BackupTool]:
    kind = backend_named(backend_name(url))
    if kind is None:
        scheme = url.partition(":")[0]
        raise BackupError(f"{scheme} databases cannot be backed up: use a sqlite:/// or postgresql:// URL")
    return kind.name, kind.backup


def backup(url: str, target: Path) -> BackupResult:
    """Write a consistent copy of the database at `url` to `target` (replaced only when complete)."""
    kind, tool = _tool(url)
    tool.backup(url, target)
    return BackupResult(target, kind, target.stat().st_size)


def restore(source: Path, url: str, *, force: bool = False) -> str:
    """Load the backup `source` into the database at `url`; refuses a database that holds Provisor
    data unless `force`. Returns the kind of database restored."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    tools = [found.backup for found in every_backend()]
    with source.open("rb") as handle:
        head = handle.read(max(len(tool.magic) for tool in tools))
    written_by = next((tool for tool in tools if head.startswith(tool.magic)), None)
    if written_by is None:
        formats = " nor ".join(tool.file_format for tool in tools)
        raise BackupError(f"{source} is not a Provisor backup (neither {formats})")
    kind = backend_named(backend_name(url))
    if kind is None or kind.backup is not written_by:
        raise BackupError(
            f"{source} is a {written_by.label} backup; restore it into a {written_by.url_form} URL"
        )
    written_by.restore(source, url, force=force)
    return kind.name
