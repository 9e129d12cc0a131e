"""What each database's backup tool promises (`Backend.backup`), and what both tools share.

storage/backup.py picks the tool; storage/postgres/backup.py and storage/sqlite/backup.py
implement it. This module must not import `storage/kind.py` (the tools import it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol


class BackupError(Exception):
    """A backup or restore that cannot be done; the message names the problem and the fix."""


class BackupTool(Protocol):
    """A consistent backup of a live database of one kind, and its restore into the same kind."""

    #: The first bytes of every backup file this tool writes (how `restore` recognises one).
    magic: bytes
    #: The kind as the user names it, and the form of URL a backup of it restores into, for
    #: messages ("a SQLite backup; restore it into a sqlite:/// URL").
    label: str
    url_form: str
    #: The backup file's format, for the message about a file that is no backup.
    file_format: str

    def backup(self, url: str, target: Path) -> None:
        """Write the database at `url` as of one instant to `target`, while writers go on; `target`
        is replaced only when the copy is complete. Raises BackupError."""
        ...

    def restore(self, source: Path, url: str, *, force: bool) -> None:
        """Load the backup `source` (which starts with `magic`) into the database at `url`; refuses
        one that holds Provisor data unless `force`. Raises BackupError."""
        ...


@contextmanager
def replaced_when_complete(target: Path) -> Iterator[str]:
    """A temporary path beside `target`, moved onto it when the block ends without an error
    (and removed otherwise): a failed backup never leaves a partial file under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
