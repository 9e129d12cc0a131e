"""`provisor token rotate ID [--overlap 7d]` on both databases: the new secret alone on the last
line, the old token working until the overlap ends, and one-line errors with the right exit codes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from provisor.storage.tables import tokens
from provisor.storage.tokens import hash_secret
from provisor.storage.transactions import read_transaction
from tests.scim_client import mint_token, run_db

PROVISOR = str(Path(sys.executable).with_name("provisor"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROVISOR, *args], capture_output=True, text=True, timeout=60)


def _row(url: str, secret: str) -> dict[str, object]:
    async def work(engine: object) -> dict[str, object]:
        async with read_transaction(engine) as conn:  # type: ignore[arg-type]
            query = select(tokens).where(tokens.c.secret_hash == hash_secret(secret))
            return dict((await conn.execute(query)).mappings().one())

    return run_db(url, work)


def test_rotate_mints_a_successor_and_schedules_the_old_expiry(database_url: str, tenant_id: str) -> None:
    old_secret = mint_token(database_url, tenant_id, name="okta")
    old = _row(database_url, old_secret)
    result = _cli("token", "rotate", str(old["id"]), "--overlap", "2h", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    new_secret = result.stdout.strip().splitlines()[-1]
    assert new_secret.startswith("prv_") and new_secret != old_secret
    new = _row(database_url, new_secret)
    assert new["tenant_id"] == tenant_id and new["kind"] == "scim" and new["expires_at"] is None
    expires = datetime.strptime(str(_row(database_url, old_secret)["expires_at"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    expected = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
    assert abs((expires - expected).total_seconds()) < 60
    assert "last used never" in result.stderr


def test_rotate_refuses_unknown_tokens_and_bad_overlaps(database_url: str, tenant_id: str) -> None:
    unknown = _cli("token", "rotate", "no-such-id", "--database-url", database_url)
    assert unknown.returncode == 1 and "no active token no-such-id" in unknown.stderr
    assert "Traceback" not in unknown.stderr and len(unknown.stderr.strip().splitlines()) <= 2
    secret = mint_token(database_url, tenant_id)
    token_id = str(_row(database_url, secret)["id"])
    bad = _cli("token", "rotate", token_id, "--overlap", "soon", "--database-url", database_url)
    assert bad.returncode == 2 and "30d" in bad.stderr
    assert _row(database_url, secret)["expires_at"] is None, "a refused rotation changed the token"
