"""The ``parts`` fixture: the store's parts on SQLite and on PostgreSQL, for the contract suite."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervisor.config import StorageConfig
from supervisor.store.backends import StoreParts, open_parts
from tests.conftest import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres"])
async def parts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreParts]:
    """Open a fresh store on each backend in turn."""
    if request.param == "sqlite":
        opened = await open_parts(StorageConfig(path=tmp_path / "contract.db"), Path, "test-1")
        yield opened
        await opened.close()
        return
    server = request.getfixturevalue("postgres_server")
    name = await create_database(server)
    opened = await open_parts(StorageConfig(url=server.url(name)), Path, "test-1")
    try:
        yield opened
    finally:
        await opened.close()
        await drop_database(server, name)
