"""Fixtures shared by every test folder: logging restored, one PostgreSQL server per run, a fresh
database per test."""

import itertools
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import structlog

from tests.postgres_server import PostgresServer, start_server

_databases = itertools.count(1)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were after a test configures logging.

    For every test: configure_logging filters by level in structlog's wrapper class, so a test
    that runs the CLI (which logs at CRITICAL) would otherwise hide info lines from capture_logs
    in the tests after it.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start the suite's PostgreSQL server on first use; stop it when the run ends."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


async def create_database(server: PostgresServer) -> str:
    """Create a new, empty database on ``server``; return its name."""
    name = f"test_{next(_databases)}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    finally:
        await admin.close()
    return name


async def drop_database(server: PostgresServer, name: str) -> None:
    """Drop database ``name``, ending any session still connected to it."""
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """Return the URL of a new, empty database of its own; drop it after the test."""
    name = await create_database(postgres_server)
    yield postgres_server.url(name)
    await drop_database(postgres_server, name)
