"""Operator mistakes give a short message and the documented exit code, never a traceback.

Each case runs the real `provisor` command. The contract (DESIGN.md 1b, docs/admin-guide.md): one
or two lines on stderr naming the problem and the fix; exit 1 for a runtime failure, 2 for bad
usage or an unknown value; the traceback only at `--log-level debug`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from provisor.storage.engine import create_engine
from provisor.storage.migrate import code_revisions, upgrade
from tests.live.server import free_port
from tests.live.test_cli import PROVISOR

PG = os.environ.get("PROVISOR_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
PG_HOST = PG.split("@", 1)[1].split("/", 1)[0]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("PROVISOR_") or k.startswith("PROVISOR_TEST")
    }
    return subprocess.run(
        [PROVISOR, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, **(env or {})},
        check=False,
    )


def assert_short_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert 1 <= len(lines) <= 2, result.stderr[-3000:]
    for word in words:
        assert word.lower() in result.stderr.lower(), result.stderr


DATABASE_MISTAKES = [
    pytest.param("postgresql://root@127.0.0.1:1/test", 1, ("reach", "port"), id="port-refuses"),
    pytest.param(
        f"postgresql://root@{PG_HOST}/provisor_no_such_db", 1, ("does not exist", "createdb"), id="no-db"
    ),
    pytest.param(f"postgresql://no_such_role_x@{PG_HOST}/test", 1, ("no_such_role_x", "user"), id="bad-role"),
    pytest.param("mysql://root@127.0.0.1/provisor", 2, ("mysql", "postgresql://"), id="mysql"),
    pytest.param("not a url at all", 2, ("parse", "sqlite:///"), id="unparsable"),
    pytest.param(
        "sqlite:////nonexistent-folder-x/sub/provisor.db",
        1,
        ("nonexistent-folder-x", "--database-url"),
        id="sqlite-no-dir",
    ),
]


@pytest.mark.parametrize(("url", "code", "words"), DATABASE_MISTAKES)
@pytest.mark.parametrize("command", [("migrate",), ("token", "create"), ("tenant", "list")])
def test_database_mistakes_are_one_or_two_lines(
    url: str, code: int, words: tuple[str, ...], command: tuple[str, ...]
) -> None:
    assert_short_error(run(*command, "--database-url", url), code, *words)


def test_serve_database_mistake_is_short() -> None:
    result = run("serve", "--port", str(free_port()), "--database-url", "postgresql://root@127.0.0.1:1/test")
    assert_short_error(result, 1, "reach")


def test_the_traceback_is_there_at_debug_level() -> None:
    url = "postgresql://root@127.0.0.1:1/test"
    by_flag = run("--log-level", "debug", "migrate", "--database-url", url)
    by_env = run("migrate", "--database-url", url, env={"PROVISOR_LOG_LEVEL": "debug"})
    for result in (by_flag, by_env):
        assert result.returncode == 1
        assert "Traceback" in result.stderr and "reach" in result.stderr


def test_read_only_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    assert run("migrate", "--database-url", f"sqlite:///{path}").returncode == 0
    # Opened read-only through SQLite's URI form: the same failure as a file without write
    # permission, and one that root (which ignores file modes) gets too.
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert_short_error(run("tenant", "create", "acme", "--database-url", url), 1, "read-only")
    if os.geteuid() != 0:
        path.chmod(stat.S_IRUSR)
        tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            result = run("tenant", "create", "acme", "--database-url", f"sqlite:///{path}")
            assert_short_error(result, 1, "read-only")
        finally:
            tmp_path.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use(workers: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        url = f"sqlite:///{tmp_path / 'p.db'}"
        result = run("serve", "--port", port, "--workers", workers, "--database-url", url)
    assert_short_error(result, 1, "port", port)


READ_ONLY_COMMANDS = [
    ("token", "list"),
    ("tenant", "list"),
    ("log", "tail"),
    ("events", "tail"),
    ("export",),
    ("webhook", "list"),
    ("webhook", "dead"),
]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_read_only_commands_never_create_a_database(
    command: tuple[str, ...], empty_database_url: str, tmp_path: Path
) -> None:
    result = run(*command, "--database-url", empty_database_url, cwd=tmp_path)
    assert_short_error(result, 1, "no provisor database", "provisor migrate")
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "provisor.db").exists()
    assert list(tmp_path.iterdir()) == []
    # On PostgreSQL the empty database stays empty: nothing migrated it behind the operator's back.
    assert "no provisor database" in run(*command, "--database-url", empty_database_url).stderr.lower()


def test_token_list_from_another_folder_creates_nothing(tmp_path: Path) -> None:
    result = run("token", "list", cwd=tmp_path)
    assert_short_error(result, 1, "no provisor database", "provisor migrate")
    assert not (tmp_path / "provisor.db").exists()


def test_an_outdated_schema_is_named(empty_database_url: str) -> None:
    """A read-only command refuses a database an older Provisor migrated, naming its revision
    and the one this version needs (read as `/readyz` reads them, storage/migrate.py)."""
    url = empty_database_url

    async def migrate_to_0007() -> None:
        engine = create_engine(url)
        await upgrade(engine, "0007")
        await engine.dispose()

    asyncio.run(migrate_to_0007())
    (head,) = code_revisions()[0]
    result = run("token", "list", "--database-url", url)
    assert_short_error(result, 1, "outdated", "provisor migrate")
    assert f"(revision 0007, this version needs {head})" in result.stderr
