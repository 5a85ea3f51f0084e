"""A role's key-value store: the daemon's RoleKV and the test kit's MemoryKV keep one contract
(what the SQLite and PostgreSQL backends share is in test_contract.py)."""

import pytest

from common.errors import StoreError
from common.testing import MemoryKV
from supervisor.store.kv import KVStore, SqliteKV
from supervisor.store.sqlite import Store


class MemoryStores:
    """The test kit's stand-in, one MemoryKV per role, shaped like KVStore."""

    def __init__(self) -> None:
        self.roles: dict[str, MemoryKV] = {}

    def for_role(self, role: str) -> MemoryKV:
        return self.roles.setdefault(role, MemoryKV(role))


@pytest.fixture(params=["sqlite", "memory"])
def kv(request, tmp_path):
    if request.param == "memory":
        yield MemoryStores()
        return
    store = Store(tmp_path / "kv.db")
    yield KVStore(SqliteKV(store))
    store.close()


async def test_stored_value_is_a_copy(kv):
    notes = kv.for_role("notes")
    items = [1]
    await notes.set("list", items)
    items.append(2)
    assert await notes.get("list") == [1]


async def test_value_round_trips_as_json(kv):
    notes = kv.for_role("notes")
    await notes.set("list", {"items": [1, "two", None]})
    assert await notes.get("list") == {"items": [1, "two", None]}


async def test_missing_key_gives_the_default(kv):
    assert await kv.for_role("notes").get("nope", "fallback") == "fallback"


async def test_roles_do_not_see_each_others_keys(kv):
    await kv.for_role("a").set("shared", 1)
    await kv.for_role("b").set("shared", 2)
    assert (await kv.for_role("a").get("shared"), await kv.for_role("b").keys()) == (1, ["shared"])
    assert await kv.for_role("b").get("shared") == 2


async def test_delete_says_whether_the_key_existed(kv):
    notes = kv.for_role("notes")
    await notes.set("k", "v")
    assert (await notes.delete("k"), await notes.delete("k"), await notes.keys()) == (
        True,
        False,
        [],
    )


async def test_value_that_is_not_json_is_refused_and_changes_nothing(kv):
    notes = kv.for_role("notes")
    with pytest.raises(StoreError, match=r"value .* is not JSON-serialisable; store only dicts"):
        await notes.set("k", object())
    assert await notes.keys() == []


async def test_empty_key_is_refused(kv):
    with pytest.raises(StoreError, match="kv key '' is not a non-empty string"):
        await kv.for_role("notes").set("", 1)


async def test_values_survive_reopening_the_store(tmp_path):
    store = Store(tmp_path / "kv.db")
    await KVStore(SqliteKV(store)).for_role("notes").set("k", [1])
    store.close()
    reopened = Store(tmp_path / "kv.db")
    assert await KVStore(SqliteKV(reopened)).for_role("notes").get("k") == [1]
    reopened.close()
