"""The store contract: every part behaves the same on SQLite and on PostgreSQL."""

from datetime import UTC, datetime

import pytest

from common.audit import AuditRecord
from common.errors import StoreError
from supervisor.store.audit import DurableAuditSink
from supervisor.store.backends import StoreParts
from supervisor.store.kv import KVStore


def make_record(action: str = "timer_expired", **overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "action": action,
        "details": {"timer_id": "tmr-1"},
        "user_id": "U1",
        "role": "timer",
        "intent_id": "int-1",
        "parent_id": "evt-1",
        "created_at": datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return AuditRecord(**fields)  # type: ignore[arg-type]


# -- role kv ----------------------------------------------------------------------------------


async def test_kv_value_round_trips_as_json(parts: StoreParts) -> None:
    notes = KVStore(parts.kv).for_role("notes")
    await notes.set("list", {"items": [1, "two", None], "nested": {"ü": 1.5}})
    assert await notes.get("list") == {"items": [1, "two", None], "nested": {"ü": 1.5}}


async def test_kv_missing_key_gives_the_default(parts: StoreParts) -> None:
    assert await KVStore(parts.kv).for_role("notes").get("nope", "fallback") == "fallback"


async def test_kv_set_twice_keeps_the_last_value(parts: StoreParts) -> None:
    notes = KVStore(parts.kv).for_role("notes")
    await notes.set("k", 1)
    await notes.set("k", [2])
    assert (await notes.get("k"), await notes.keys()) == ([2], ["k"])


async def test_kv_roles_do_not_see_each_others_keys(parts: StoreParts) -> None:
    kv = KVStore(parts.kv)
    await kv.for_role("a").set("shared", 1)
    await kv.for_role("b").set("shared", 2)
    await kv.for_role("b").set("B-upper", 3)
    assert (await kv.for_role("a").get("shared"), await kv.for_role("b").keys()) == (
        1,
        ["B-upper", "shared"],
    )


async def test_kv_delete_says_whether_the_key_existed(parts: StoreParts) -> None:
    notes = KVStore(parts.kv).for_role("notes")
    await notes.set("k", "v")
    assert (await notes.delete("k"), await notes.delete("k"), await notes.keys()) == (
        True,
        False,
        [],
    )


async def test_kv_value_that_is_not_json_is_refused_and_changes_nothing(parts: StoreParts) -> None:
    notes = KVStore(parts.kv).for_role("notes")
    with pytest.raises(StoreError, match=r"value .* is not JSON-serialisable; store only dicts"):
        await notes.set("k", object())
    assert await notes.keys() == []


async def test_kv_empty_key_is_refused(parts: StoreParts) -> None:
    with pytest.raises(StoreError, match="kv key '' is not a non-empty string"):
        await KVStore(parts.kv).for_role("notes").set("", 1)


# -- audit ------------------------------------------------------------------------------------


async def test_audit_tail_is_oldest_first_and_filters_by_action(parts: StoreParts) -> None:
    sink = DurableAuditSink(parts.audit)
    await sink.append_many([make_record(a, intent_id=f"int-{i}") for i, a in enumerate("abab")])
    assert [r.intent_id for r in await sink.tail(3)] == ["int-1", "int-2", "int-3"]
    assert [r.intent_id for r in await sink.tail(5, action="a")] == ["int-0", "int-2"]


async def test_audit_recent_is_newest_first(parts: StoreParts) -> None:
    sink = DurableAuditSink(parts.audit)
    await sink.append_many([make_record(intent_id=f"int-{i}") for i in range(4)])
    assert [r.intent_id for r in await sink.recent(3)] == ["int-3", "int-2", "int-1"]


async def test_audit_record_round_trips(parts: StoreParts) -> None:
    record = make_record(details={"n": 1, "text": "tea ☕", "list": [1, None]}, user_id=None)
    await DurableAuditSink(parts.audit).append(record)
    assert await DurableAuditSink(parts.audit).tail() == [record]


async def test_audit_an_intent_id_already_logged_is_logged_once(parts: StoreParts) -> None:
    sink = DurableAuditSink(parts.audit)
    await sink.append(make_record(details={"attempt": 1}))
    await sink.append_many([make_record(details={"attempt": 2}), make_record(intent_id="int-2")])
    assert [(r.intent_id, r.details) for r in await sink.tail()] == [
        ("int-1", {"attempt": 1}),
        ("int-2", {"timer_id": "tmr-1"}),
    ]
