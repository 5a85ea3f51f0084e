"""The SQLite role kv keeps its data across a reopen; what both backends share is in
test_contract.py."""

from supervisor.store.kv import KVStore, SqliteKV
from supervisor.store.sqlite import Store


async def test_values_survive_reopening_the_store(tmp_path):
    store = Store(tmp_path / "kv.db")
    await KVStore(SqliteKV(store)).for_role("notes").set("k", [1])
    store.close()
    reopened = Store(tmp_path / "kv.db")
    assert await KVStore(SqliteKV(reopened)).for_role("notes").get("k") == [1]
    reopened.close()
