"""A role's key-value store: the SQLite table and the test kit's MemoryKV keep one contract."""

import pytest

from common.errors import StoreError
from common.testing import MemoryKV
from supervisor.store.kv import KVStore
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
    yield KVStore(store)
    store.close()


def test_stored_value_is_a_copy(kv):
    notes = kv.for_role("notes")
    items = [1]
    notes.set("list", items)
    items.append(2)
    assert notes.get("list") == [1]


def test_value_round_trips_as_json(kv):
    notes = kv.for_role("notes")
    notes.set("list", {"items": [1, "two", None]})
    assert notes.get("list") == {"items": [1, "two", None]}


def test_missing_key_gives_the_default(kv):
    assert kv.for_role("notes").get("nope", "fallback") == "fallback"


def test_roles_do_not_see_each_others_keys(kv):
    kv.for_role("a").set("shared", 1)
    kv.for_role("b").set("shared", 2)
    assert (kv.for_role("a").get("shared"), kv.for_role("b").keys()) == (1, ["shared"])
    assert kv.for_role("b").get("shared") == 2


def test_delete_says_whether_the_key_existed(kv):
    notes = kv.for_role("notes")
    notes.set("k", "v")
    assert (notes.delete("k"), notes.delete("k"), notes.keys()) == (True, False, [])


def test_value_that_is_not_json_is_refused_and_changes_nothing(kv):
    notes = kv.for_role("notes")
    with pytest.raises(StoreError, match=r"value .* is not JSON-serialisable; store only dicts"):
        notes.set("k", object())
    assert notes.keys() == []


def test_empty_key_is_refused(kv):
    with pytest.raises(StoreError, match="kv key '' is not a non-empty string"):
        kv.for_role("notes").set("", 1)


def test_values_survive_reopening_the_store(tmp_path):
    store = Store(tmp_path / "kv.db")
    KVStore(store).for_role("notes").set("k", [1])
    store.close()
    reopened = Store(tmp_path / "kv.db")
    assert KVStore(reopened).for_role("notes").get("k") == [1]
    reopened.close()
