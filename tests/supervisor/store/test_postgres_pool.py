import asyncpg
import pytest

from common.errors import ConfigError, StoreError
from supervisor.config import StorageConfig, load_config
from supervisor.store.postgres.pool import open_pool
from tests.postgres_server import PASSWORD, SUPERUSER, free_port


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_storage_path_and_url_together_are_an_error_naming_both_keys(tmp_path):
    path = write(tmp_path, "storage: {path: var/x.db, url: 'postgresql://u@127.0.0.1/db'}\n")
    with pytest.raises(ConfigError, match=r"storage\.path and storage\.url are both set"):
        load_config(path)


def test_a_url_that_is_not_postgresql_is_refused_without_its_password(tmp_path):
    path = write(tmp_path, "storage: {url: 'mysql://u:hunter2@db/x'}\n")
    with pytest.raises(ConfigError, match=r"storage\.url 'mysql://u:\*\*\*@db/x' is not") as err:
        load_config(path)
    assert "hunter2" not in str(err.value)


def test_the_password_comes_from_the_environment(tmp_path):
    path = write(tmp_path, "storage: {url: 'postgresql://u:${DB_PW}@127.0.0.1/db'}\n")
    config = load_config(path, environ={"DB_PW": "s3cret"})
    assert (config.storage.url, config.storage.path.name) == (
        "postgresql://u:s3cret@127.0.0.1/db",
        "intentd.db",
    )


async def test_the_pool_is_bounded_and_runs_under_the_statement_timeout(postgres_url):
    pool = await open_pool(StorageConfig(url=postgres_url, pool_size=3, statement_timeout=0.2))
    try:
        async with pool.acquire() as conn:
            shown = await conn.fetchval("SHOW statement_timeout")
            with pytest.raises(asyncpg.QueryCanceledError, match="statement timeout"):
                await conn.execute("SELECT pg_sleep(3)")
        assert (pool.get_max_size(), shown) == (3, "200ms")
    finally:
        await pool.close()


async def test_a_server_that_is_down_is_one_sentence_naming_storage_url():
    url = f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{free_port()}/db"
    with pytest.raises(StoreError) as err:
        await open_pool(StorageConfig(url=url, connect_timeout=2))
    message = str(err.value)
    assert message.startswith(f"storage.url 'postgresql://{SUPERUSER}:***@127.0.0.1:")
    assert "cannot reach the PostgreSQL server" in message and "start it" in message
    assert PASSWORD not in message


async def test_a_refused_login_is_one_sentence_without_the_password(postgres_server):
    url = postgres_server.url(password="wrong-pw-77")
    with pytest.raises(StoreError, match=r"refused the login .*check the user") as err:
        await open_pool(StorageConfig(url=url))
    assert "wrong-pw-77" not in str(err.value)
    assert "storage.url" in str(err.value)


async def test_a_missing_database_is_one_sentence_naming_it(postgres_server):
    url = postgres_server.url("no_such_db")
    with pytest.raises(StoreError, match=r"database \"no_such_db\" does not exist; create it"):
        await open_pool(StorageConfig(url=url))
