import asyncpg
import pytest


async def test_each_test_gets_an_empty_database_of_its_own(postgres_url):
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        await conn.execute("CREATE TABLE marker (n int)")
        settings = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    assert (tables, settings) == (0, "off")


async def test_a_second_test_does_not_see_the_first_ones_tables(postgres_url):
    conn = await asyncpg.connect(postgres_url)
    try:
        found = await conn.fetchval("SELECT to_regclass('marker') IS NOT NULL")
    finally:
        await conn.close()
    assert found is False


async def test_the_server_refuses_a_wrong_password(postgres_server):
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(postgres_server.url(password="wrong"))
