"""An empty database for an example app's own tables, on the same backend as `database_url`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from provisor.storage.engine import backend_name, create_engine


@pytest.fixture
def app_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """SQLite: a fresh file. PostgreSQL: a fresh database on the same server, dropped afterwards."""
    if backend_name(database_url) == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    name = f"example_app_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
