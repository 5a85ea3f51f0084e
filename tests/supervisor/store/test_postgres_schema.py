import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

from common.errors import StoreError
from supervisor.config import StorageConfig
from supervisor.store.postgres.pool import open_pool
from supervisor.store.postgres.schema import MIGRATIONS, migrate

ROOT = Path(__file__).resolve().parents[3]
# One process: open a pool and migrate; print how many migrations it applied.
CHILD = """
import asyncio, sys
from supervisor.config import StorageConfig
from supervisor.store.postgres.pool import open_pool
from supervisor.store.postgres.schema import migrate

async def main():
    pool = await open_pool(StorageConfig(url=sys.argv[1]))
    try:
        print(await migrate(pool, sys.argv[2], "test"))
    finally:
        await pool.close()

asyncio.run(main())
"""


async def test_a_second_migrate_applies_nothing(postgres_url):
    pool = await open_pool(StorageConfig(url=postgres_url))
    try:
        assert (await migrate(pool, "a", "t"), await migrate(pool, "b", "t")) == (
            len(MIGRATIONS),
            0,
        )
    finally:
        await pool.close()


async def test_three_processes_starting_at_once_on_an_empty_database_migrate_once(postgres_url):
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            postgres_url,
            f"proc-{n}",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(3)
    ]
    outputs = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], outputs
    applied = sorted(int(out.decode().splitlines()[-1]) for out, _ in outputs)
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT version, applied_by FROM schema_migrations")
    finally:
        await conn.close()
    assert applied == [0, 0, len(MIGRATIONS)]
    assert sorted(row["version"] for row in rows) == list(range(1, len(MIGRATIONS) + 1))
    assert len({row["applied_by"] for row in rows}) == 1


async def test_a_database_from_a_newer_intentd_is_refused(postgres_url):
    pool = await open_pool(StorageConfig(url=postgres_url))
    try:
        await migrate(pool, "a", "t")
        await pool.execute("INSERT INTO schema_migrations (version, applied_by) VALUES (99, 'x')")
        with pytest.raises(StoreError, match=r"schema version 99 is newer .*; upgrade intentd"):
            await migrate(pool, "a", "postgresql://u:***@h/db")
    finally:
        await pool.close()


async def test_the_audit_log_is_append_only(postgres_url):
    pool = await open_pool(StorageConfig(url=postgres_url))
    try:
        await migrate(pool, "a", "t")
        await pool.execute(
            "INSERT INTO audit_log (created_at, action, details, intent_id) "
            "VALUES (now(), 'x', '{}', 'int-1')"
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute("DELETE FROM audit_log")
    finally:
        await pool.close()
