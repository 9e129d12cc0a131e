"""`make serve`: check the port, migrate, mint a bearer token, print how to call the API, then serve.

Run twice, it must neither mint a token for a server that cannot start (so the port is checked first)
nor leave a growing pile of never-expiring tokens: minting the new "make serve" token revokes, in the
same transaction, the earlier ones of the default tenant (what `provisor token revoke ID` does to each).
Everything before `provisor serve` runs in this one process, so `make serve` starts in about a second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

TOKEN_NAME = "make serve"
TENANT = "default"  # provisor.storage.tenants.DEFAULT_TENANT
PROVISOR = str(Path(sys.executable).with_name("provisor"))


def port_problem(host: str, port: int) -> str | None:
    """Why `provisor serve` could not listen on host:port (None if it can), found by binding it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


async def mint(database_url: str) -> tuple[str, int]:
    """Migrate; mint a "make serve" token for the default tenant, revoking the earlier live ones.
    Returns the secret and how many were revoked. (Imported here: a taken port is reported at once.)"""
    from provisor.storage.engine import create_engine
    from provisor.storage.migrate import upgrade
    from provisor.storage.tenants import ensure_tenant
    from provisor.storage.tokens import create_token, list_tokens, revoke
    from provisor.storage.transactions import write_transaction

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with write_transaction(engine) as conn:
            await ensure_tenant(conn, TENANT)
            earlier = [
                info.id
                for info in await list_tokens(conn)
                if (info.kind, info.tenant_id, info.name) == ("scim", TENANT, TOKEN_NAME)
                and info.revoked_at is None
            ]
            revoked = sum([await revoke(conn, token_id) for token_id in earlier])
            _, secret = await create_token(conn, tenant_id=TENANT, name=TOKEN_NAME)
        return secret, revoked
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    options = parser.parse_args()
    host, port, url = os.environ.get("PROVISOR_HOST", "127.0.0.1"), options.port, options.database_url

    problem = port_problem(host, port)
    if problem:
        sys.exit(
            f"make serve: port {port} on {host} is taken ({problem}; another `make serve`?): "
            f"stop that server, or pick a free port: PORT={port + 1} make serve"
        )
    try:
        token, revoked = asyncio.run(mint(url))
    except Exception as exc:  # one line, as every provisor command reports a database it cannot use
        sys.exit(f"make serve: cannot prepare the database {url}: {exc}; check DATABASE_URL")
    base = f"http://{host}:{port}/scim/v2"
    replaced = f"  (revoked {revoked} token(s) of earlier `make serve` runs)\n" if revoked else ""
    print(
        f"\n  SCIM base URL: {base}\n  Bearer token:  {token}\n{replaced}"
        f'  Try: curl -H "Authorization: Bearer {token}" {base}/Users\n',
        flush=True,
    )
    os.execv(PROVISOR, [PROVISOR, "serve", "--port", str(port), "--database-url", url])


if __name__ == "__main__":
    main()
