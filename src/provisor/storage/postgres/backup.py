"""PostgreSQL's backup tool (`storage.backup_tools.BackupTool`): `pg_dump`, which reads everything
in one repeatable-read snapshot, in its custom format; `pg_restore` loads it into an empty
database in one transaction."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from provisor.storage.backup_tools import BackupError, replaced_when_complete
from provisor.storage.urls import without_pgbouncer_param

magic = b"PGDMP"
label = "PostgreSQL"
url_form = "postgresql://"
file_format = "pg_dump's custom format"


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


def backup(url: str, target: Path) -> None:
    with replaced_when_complete(target) as partial:
        _run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", partial, _libpq_url(url)], "pg_dump"
        )


def restore(source: Path, url: str, *, force: bool) -> None:
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
