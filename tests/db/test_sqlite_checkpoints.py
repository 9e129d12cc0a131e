"""SQLite's WAL is checkpointed in the background, off the writers' lock (storage/sqlite/checkpoint.py).

SQLite-only by nature. Two engines on one file stand in for two workers (as in test_sqlite_gate.py).
What the tests look at is on disk: the database file alone (without its `-wal`) holds what was
written once the background checkpoint ran, and the `-wal` file stays near
`WAL_MARK_PAGES` under a burst that writes several times that. The WAL header's checkpoint
sequence number (bytes 12-15, big-endian: https://www.sqlite.org/fileformat2.html#walformat) counts
the times the WAL started over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.engine import create_engine
from provisor.storage.migrate import upgrade
from provisor.storage.sqlite.checkpoint import INTERVAL, NEAR_INTERVAL, WalCheckpointer, open_descriptor
from provisor.storage.sqlite.driver import write_in_sqlite_thread
from provisor.storage.sqlite.engine import WAL_AUTOCHECKPOINT_PAGES, WAL_MARK_PAGES
from provisor.storage.sqlite.gate import SqliteWriterGate, writer_gate
from provisor.storage.transactions import write_transaction
from tests.scim_client import wait_for

#: Bytes of one WAL frame: a 24-byte header and a 4 KiB page (SQLite's default page size).
FRAME = 24 + 4096


def wal_restarts(path: Path) -> int:
    """The `-wal` file's checkpoint sequence number (0 when there is none yet)."""
    wal = path.with_name(path.name + "-wal")
    header = wal.read_bytes()[:16] if wal.exists() else b""
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else 0


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def rows_in_file_alone(path: Path, copy: Path) -> int:
    """The rows of `hits` in a copy of the database file made without its WAL (-1: no table yet)."""
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    try:
        if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'hits'").fetchone()[0] == 0:
            return -1
        return int(db.execute("SELECT count(*) FROM hits").fetchone()[0])
    finally:
        db.close()


async def make_table(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with write_transaction(engine) as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS hits (n INTEGER, pad BLOB)"))


async def gate_of_new_table(engine: AsyncEngine) -> SqliteWriterGate:
    """`make_table`, then the engine's writers' gate (and with it its checkpoints)."""
    await make_table(engine)
    gate = writer_gate(engine)
    assert gate is not None
    return gate


def test_writes_reach_the_database_file_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "background.db"

    async def main() -> None:
        engine = create_engine(f"sqlite:///{path}")
        try:
            gate = await gate_of_new_table(engine)
            async with engine.connect() as conn:  # the pragma every connection gets
                pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
            assert pages == WAL_AUTOCHECKPOINT_PAGES
            for n in range(20):
                async with write_transaction(engine) as conn:
                    await conn.execute(text("INSERT INTO hits VALUES (:n, NULL)"), {"n": n})
            # Far below SQLite's own checkpoint: only the background one copies the WAL.
            # Polled from a thread: this loop runs the checkpoints.
            await asyncio.to_thread(wait_for, lambda: rows_in_file_alone(path, tmp_path / "copy.db") == 20)
            assert gate.checkpoints.runs >= 1
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_the_wal_stays_bounded_under_a_burst_from_two_engines(tmp_path: Path) -> None:
    path = tmp_path / "burst.db"
    pad = os.urandom(16_000)  # a row of four overflow pages: the WAL grows by 5-6 pages a write
    rows = 3_200

    async def main() -> None:
        first, second = create_engine(f"sqlite:///{path}"), create_engine(f"sqlite:///{path}")
        try:
            await make_table(first)
            restarts = wal_restarts(path)
            largest = 0
            written = 0
            insert = text("INSERT INTO hits VALUES (:n, :pad)")

            async def write(engine: AsyncEngine, count: int) -> None:
                nonlocal largest, written
                for _ in range(count):
                    async with write_transaction(engine) as conn:
                        await conn.execute(insert, {"n": written, "pad": pad})
                    written += 1
                    largest = max(largest, size(path.with_name(path.name + "-wal")))

            writers = [write(engine, rows // 8) for engine in (first, second) for _ in range(4)]
            await asyncio.gather(*writers)
            # Past WAL_MARK_PAGES a background checkpoint finishes the WAL under the writers' gate,
            # and the next writer starts it over; the WAL passes the mark by the writes of the
            # moment before that pass (once 200+ pages on a loaded machine). Without it the WAL
            # would reach SQLite's own checkpoint at WAL_AUTOCHECKPOINT_PAGES (16,000 pages).
            assert wal_restarts(path) > restarts
            assert largest <= 2 * WAL_MARK_PAGES * FRAME, largest
        finally:
            await first.dispose()
            await second.dispose()
        # Every page of the rows went through the WAL: several times what it may hold (the last
        # connection's close copied all of it into the database file).
        assert size(path) > 3 * WAL_MARK_PAGES * 4096
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT count(*) FROM hits").fetchone()[0] == written == rows
        finally:
            db.close()

    asyncio.run(main())


def fill_wal(db: sqlite3.Connection, pages: int) -> None:
    """Append about `pages` pages to the WAL in one transaction (rows of one overflow page each)."""
    with db:
        db.executemany("INSERT INTO hits VALUES (?, ?)", ((n, os.urandom(4000)) for n in range(pages)))


def test_checkpoints_come_sooner_once_the_wal_passes_half_its_mark(tmp_path: Path) -> None:
    """Past half of `WAL_MARK_PAGES` the next background checkpoint comes after
    `NEAR_INTERVAL`, so that SQLite's own (inside a commit, while every writer waits) finds little
    left to copy; below it, or when a reader's older snapshot keeps it from getting further, after
    `INTERVAL` as before."""
    path = tmp_path / "near.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer under test copies the WAL
    db.execute("CREATE TABLE hits (n INTEGER, pad BLOB)")
    reader = sqlite3.connect(path, isolation_level=None)
    checkpoints = WalCheckpointer(str(path))

    async def checkpoint() -> tuple[int, int, int]:
        await checkpoints._run(asyncio.get_running_loop())
        assert checkpoints.last is not None
        return checkpoints.last

    async def main() -> None:
        fill_wal(db, 100)
        _, wal_pages, copied = await checkpoint()
        assert copied == wal_pages < WAL_MARK_PAGES // 2
        assert checkpoints.delay == INTERVAL

        # The next writer finds the WAL all copied and starts it over. Past half of the mark, with
        # a reader's snapshot in the middle: the checkpoint copies up to that snapshot.
        fill_wal(db, WAL_MARK_PAGES // 2)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM hits").fetchone()
        fill_wal(db, 200)
        _, wal_pages, stuck = await checkpoint()
        assert 0 < stuck < wal_pages
        assert wal_pages > WAL_MARK_PAGES // 2
        assert checkpoints.delay == NEAR_INTERVAL

        # While the snapshot lasts nothing more can be copied: no hurry.
        fill_wal(db, 200)
        _, wal_pages, copied = await checkpoint()
        assert copied == stuck < wal_pages
        assert checkpoints.delay == INTERVAL

        reader.execute("COMMIT")
        _, wal_pages, copied = await checkpoint()
        assert copied == wal_pages > WAL_MARK_PAGES // 2
        assert checkpoints.delay == NEAR_INTERVAL

    try:
        asyncio.run(main())
    finally:
        checkpoints.stop()
        reader.close()
        db.close()


def test_the_checkpoints_keep_one_connection_until_stopped(tmp_path: Path) -> None:
    """A new connection per checkpoint opened the files, mapped the WAL index and parsed the whole
    schema, every 5 ms near the mark; the checkpoints keep one, and close it when stopped."""
    path = tmp_path / "kept.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE hits (n INTEGER, pad BLOB)")
    checkpoints = WalCheckpointer(str(path))
    used: list[sqlite3.Connection | None] = []

    async def main() -> None:
        for _ in range(3):
            fill_wal(db, 10)
            await checkpoints._run(asyncio.get_running_loop())
            assert checkpoints.last is not None and checkpoints.last[2] > 0
            used.append(checkpoints._db)
        kept = used[0]
        assert kept is not None and used == [kept, kept, kept]
        checkpoints.stop()
        assert checkpoints._db is None
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            kept.execute("SELECT 1")

    try:
        asyncio.run(main())
    finally:
        checkpoints.stop()
        db.close()


def wal_database(path: Path) -> sqlite3.Connection:
    """A database in WAL mode with a `hits` table, whose connection never checkpoints by itself
    (only the checkpoints under test copy the WAL)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE IF NOT EXISTS hits (n INTEGER, pad BLOB)")
    return db


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Another connection reading meanwhile: a writer cannot start the WAL over under it, so the
    WAL grows past what was checkpointed, as under a steady stream of writes."""
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM hits").fetchone()
        yield
        reader.execute("COMMIT")
    finally:
        reader.close()


def test_past_the_mark_the_next_writer_finishes_the_wal_under_its_gate(tmp_path: Path) -> None:
    """Below `WAL_MARK_PAGES` a checkpoint asks for nothing more. Past it, the checkpoint copies
    what it can and hands the pass that finishes the WAL to the next writer, without waiting for
    the writers' gate (here held by another worker's writer): the thread that waited for it under
    load saw the WAL grow to 90,000 pages meanwhile. The next write of the process runs that pass
    after its COMMIT, still under the gate, and the write after it starts the WAL over."""
    path = tmp_path / "mark.db"

    async def main() -> None:
        engine = create_engine(f"sqlite:///{path}")
        try:
            gate = await gate_of_new_table(engine)
            checkpoints = gate.checkpoints
            db = wal_database(path)
            other = os.open(gate.lock_path, os.O_RDWR)  # another worker's writer
            loop = asyncio.get_running_loop()
            try:
                fcntl.flock(other, fcntl.LOCK_EX)
                fill_wal(db, 100)
                await asyncio.wait_for(checkpoints._run(loop), 5)
                assert not checkpoints.finish_wanted
                fill_wal(db, WAL_MARK_PAGES)
                await asyncio.wait_for(checkpoints._run(loop), 5)  # never waits for the gate
                assert checkpoints.finish_wanted and checkpoints.finishing_passes == 0
                assert checkpoints.database_syncs == 1  # what it copied, synced off the gate
                _, wal_pages, copied = checkpoints.last or (0, 0, 0)
                assert copied == wal_pages >= WAL_MARK_PAGES
                restarts = wal_restarts(path)
                fcntl.flock(other, fcntl.LOCK_UN)

                def one_row(conn: sqlite3.Connection) -> None:
                    conn.execute("INSERT INTO hits VALUES (1, NULL)")

                await write_in_sqlite_thread(engine, one_row)
                assert checkpoints.finishing_passes == 1 and not checkpoints.finish_wanted
                assert wal_restarts(path) == restarts  # the pass ran after that write's commit
                await write_in_sqlite_thread(engine, one_row)
                assert wal_restarts(path) == restarts + 1
            finally:
                os.close(other)
                db.close()
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_a_finishing_pass_no_writer_took_is_run_by_the_checkpoints_under_the_gate(tmp_path: Path) -> None:
    """Writes that never go through the writers' thread (storage/sqlite/transactions.py) do not
    run the handed-over pass: the next checkpoint runs it itself, under the writers' gate, so that
    no write lands meanwhile, and the next writer starts the WAL over."""
    path = tmp_path / "unclaimed.db"
    db = wal_database(path)
    gate = SqliteWriterGate(str(path))
    checkpoints = gate.checkpoints
    writer = os.open(gate.lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # another worker's writer

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fill_wal(db, WAL_MARK_PAGES)
        with reading(path):
            await asyncio.wait_for(checkpoints._run(loop), 5)
            assert checkpoints.finish_wanted and checkpoints.finishing_passes == 0
            fill_wal(db, 10)
        fcntl.flock(writer, fcntl.LOCK_EX)
        run = asyncio.create_task(checkpoints._run(loop))
        await asyncio.sleep(0.5)
        assert not run.done()  # copied what it could, now waits for the gate
        restarts = wal_restarts(path)
        fcntl.flock(writer, fcntl.LOCK_UN)
        await asyncio.wait_for(run, 5)
        assert checkpoints.finishing_passes == 1 and not checkpoints.finish_wanted
        assert checkpoints.database_syncs == 2  # at the hand-over, and before taking the gate
        _, wal_pages, copied = checkpoints.last or (0, 0, 0)
        assert copied == wal_pages >= WAL_MARK_PAGES
        fill_wal(db, 1)
        assert wal_restarts(path) == restarts + 1

    try:
        asyncio.run(main())
    finally:
        checkpoints.stop()
        os.close(writer)
        db.close()


def test_a_finishing_pass_that_fails_leaves_the_write_committed(tmp_path: Path) -> None:
    """The pass runs after a COMMIT: whatever happens to it, the write stands and is answered as
    done; the pass is asked for again."""
    path = tmp_path / "failing.db"
    db = wal_database(path)
    gate = SqliteWriterGate(str(path))
    checkpoints = gate.checkpoints
    closed = sqlite3.connect(path)
    closed.close()
    try:
        checkpoints.finish_wanted = True
        checkpoints.finish_after_commit(closed)  # sqlite3.ProgrammingError inside: not raised
        assert checkpoints.finish_wanted and checkpoints.finishing_passes == 0
        checkpoints.finish_after_commit(db)
        assert not checkpoints.finish_wanted and checkpoints.finishing_passes == 1
    finally:
        checkpoints.stop()
        db.close()


def test_checkpoints_stopped_while_one_runs_close_its_connection_when_it_ends(tmp_path: Path) -> None:
    """The engine is disposed, and its loop ends, while a checkpoint runs in its thread (here: its
    second pass, which no writer took, waits for the writers' gate). The thread closes the
    connection when it is done, so that no connection of Provisor's is left open on the file
    (another tool may need it alone: tests/db/test_direct.py takes it in exclusive mode)."""
    path = tmp_path / "stopped.db"
    db = wal_database(path)
    fill_wal(db, WAL_MARK_PAGES)
    gate = SqliteWriterGate(str(path))
    checkpoints = gate.checkpoints
    writer = os.open(gate.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(writer, fcntl.LOCK_EX)

    async def main() -> None:
        with reading(path):
            await checkpoints._run(asyncio.get_running_loop())  # hands the second pass over
            fill_wal(db, 10)  # no writer of this process takes it: the next checkpoint does
        checkpoints.kick()
        await asyncio.sleep(0.3)  # its first pass is done; the second waits for the gate
        checkpoints.stop()
        # The gate comes free after the loop has ended (asyncio.run waits for the thread).
        threading.Timer(0.3, fcntl.flock, (writer, fcntl.LOCK_UN)).start()

    try:
        asyncio.run(main())
        assert checkpoints.finishing_passes == 1
        db.close()
        alone = sqlite3.connect(path, isolation_level=None)
        try:
            alone.execute("PRAGMA locking_mode=EXCLUSIVE")
            alone.execute("BEGIN IMMEDIATE")  # "database is locked" while another connection is open
            alone.execute("COMMIT")
        finally:
            alone.close()
    finally:
        checkpoints.stop()
        os.close(writer)


def assert_locks_kept(db: sqlite3.Connection, path: Path, wal: Path) -> None:
    """Another process opens the database and closes it: were this process's locks dropped, that
    connection would find itself alone, checkpoint and delete the WAL under `db` (10 rows)."""
    closing = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        " db.execute('SELECT count(*) FROM hits').fetchone(); db.close()"
    )
    subprocess.run([sys.executable, "-c", closing, str(path)], check=True)
    assert size(wal) > 0  # another connection is open here: the WAL must stay
    assert db.execute("SELECT count(*) FROM hits").fetchone()[0] == 10


def test_syncing_the_wal_keeps_this_process_s_locks_on_the_database(tmp_path: Path) -> None:
    """POSIX locks belong to a process and a file: closing any descriptor of the database file
    drops every lock this process's connections hold on it. A checkpoint that opened the database
    file to sync it let another process's closing connection find itself alone, checkpoint and
    delete the WAL under this process's open connections: "database disk image is malformed"
    (CI, 2026-12-07). The checkpoints sync the WAL alone, whose file SQLite does not lock."""
    path = tmp_path / "locks.db"
    db = wal_database(path)
    wal = path.with_name(path.name + "-wal")
    try:
        fill_wal(db, 10)
        assert size(wal) > 0
        SqliteWriterGate(str(path)).checkpoints._sync_wal()
        assert_locks_kept(db, path, wal)
    finally:
        db.close()


def test_syncing_the_database_keeps_this_process_s_locks_on_it(tmp_path: Path) -> None:
    """The database file is synced through a descriptor one of this process's SQLite connections
    already has open, never one opened (and so closed) here: the same check as the WAL's above."""
    path = tmp_path / "db-locks.db"
    db = wal_database(path)
    wal = path.with_name(path.name + "-wal")
    try:
        fill_wal(db, 10)
        checkpoints = SqliteWriterGate(str(path)).checkpoints
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        assert checkpoints._sync_database()
        assert_locks_kept(db, path, wal)
    finally:
        db.close()


def test_the_database_s_descriptor_is_one_a_connection_of_this_process_holds(tmp_path: Path) -> None:
    """Found among this process's descriptors, on the same file; none while no connection of the
    process has it open (then nothing is synced, rather than a descriptor opened for it)."""
    path = tmp_path / "found.db"
    sqlite3.connect(path).close()
    assert open_descriptor(str(path)) is None
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE t (n INTEGER)")
        found = open_descriptor(str(tmp_path / "." / "found.db"))
        assert found is not None
        assert os.path.samestat(os.fstat(found), os.stat(path))
        assert open_descriptor(str(tmp_path / "other.db")) is None
    finally:
        db.close()
    assert open_descriptor(str(path)) is None
