"""SQLite on a full disk (a 12 MiB tmpfs): writes are refused with SCIM 507 and nothing of them is
stored, reads keep working, and writes resume by themselves once space is freed."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _migrate, _run
from tests.faults.observe import integrity_ok, stored
from tests.live.server import live_server


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _user(name: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "displayName": name + "-" + "x" * 4000,
    }


def _fill(path: Path) -> None:
    """Write zeros to `path` until the disk has no space left, down to the last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_sqlite_disk_full(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'provisor.db'}"
    _run(_migrate(url))
    tenant = "t-disk"
    with live_server(
        url, tenant, env={"PROVISOR_REQUEST_TIMEOUT": "3", "PROVISOR_REQUEST_LOG": "off"}
    ) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        first = client.post("/Users", json=_user("before"))
        assert first.status_code == 201, first.text
        first_id = first.json()["id"]

        _fill(small_disk / "filler")
        refused: list[str] = []
        created: list[str] = []
        for i in range(200):
            name = f"full-{i}"
            answer = client.post("/Users", json=_user(name))
            if answer.status_code == 201:
                created.append(name)
                continue
            assert answer.status_code == 507, answer.text
            assert "disk is full" in answer.json()["detail"]
            assert answer.headers.get("retry-after")
            refused.append(name)
            if len(refused) >= 5:
                break
        assert len(refused) >= 5, "the disk never filled up"
        patched = client.patch(
            f"/Users/{first_id}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "t" * 20000}],
            },
        )
        assert patched.status_code in (200, 507), patched.text
        # Reads keep working.
        read = client.get(f"/Users/{first_id}")
        assert read.status_code == 200
        listed = client.get("/Users", params={"filter": 'userName eq "before"'})
        assert listed.status_code == 200 and listed.json()["totalResults"] == 1

        for leftover in small_disk.glob("filler*"):
            leftover.unlink()
        again = client.post("/Users", json=_user("after"))
        assert again.status_code == 201, again.text

        data = stored(url, tenant)
        for name in refused:
            assert name not in data.users
        for name in [*created, "before", "after"]:
            rid = data.users[name][0]
            assert data.events_of(rid)[0] == ("created", 1)
        expected_version = 2 if patched.status_code == 200 else 1
        assert data.users["before"][1] == expected_version
        assert len(data.events_of(first_id)) == expected_version
    assert integrity_ok(url)


def test_filler_really_fills(small_disk: Path) -> None:
    _fill(small_disk / "filler")
    with pytest.raises(OSError) as raised, open(small_disk / "one-more", "wb") as extra:
        extra.write(b"\0" * 4096)
        extra.flush()
    assert raised.value.errno == errno.ENOSPC
