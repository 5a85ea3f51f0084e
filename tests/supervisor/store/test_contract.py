"""The store contract: every part behaves the same on SQLite and on PostgreSQL."""

from datetime import UTC, datetime
from typing import Any

import pytest

from common.audit import AuditRecord
from common.errors import StoreError
from supervisor.store.audit import DurableAuditSink
from supervisor.store.backends import StoreParts
from supervisor.store.base import NewNotification, Timer
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


# -- timers -----------------------------------------------------------------------------------


def make_timer(timer_id: str = "tmr-1", due_at: float = 100.0, **overrides: Any) -> Timer:
    fields: dict[str, Any] = {
        "timer_id": timer_id,
        "label": "tea",
        "due_at": due_at,
        "created_at": 10.0,
        "channel_id": "C1",
        "user_id": "U1",
        "role": "timer",
        "original_request": "tea in 90 s",
        "data": {"n": [1, "two"]},
        "state": "pending",
        "attempts": 0,
        "fired_at": None,
        "cancelled_at": None,
    }
    return Timer(**{**fields, **overrides})


async def claim(
    parts: StoreParts, due: list[str], instance: str, now: float, lease_until: float
) -> tuple[list[Timer], dict[str, float]]:
    """One step that only claims."""
    marked, claimed, waiting = await parts.timers.advance([], due, instance, now, lease_until)
    assert marked == 0
    return claimed, waiting


async def mark_fired(parts: StoreParts, fired: list[tuple[str, float]], instance: str) -> int:
    """One step that only records fired marks."""
    marked, claimed, waiting = await parts.timers.advance(fired, [], instance, 0.0, 0.0)
    assert (claimed, waiting) == ([], {})
    return marked


async def test_timers_round_trip_and_query_by_deadline(parts: StoreParts) -> None:
    await parts.timers.add(make_timer("tmr-late", 300.0, user_id="U2"))
    await parts.timers.add(make_timer("tmr-early", 100.0))
    assert await parts.timers.get("tmr-early") == make_timer("tmr-early", 100.0)
    assert [t.timer_id for t in await parts.timers.query()] == ["tmr-early", "tmr-late"]
    assert [t.timer_id for t in await parts.timers.query(user_id="U2")] == ["tmr-late"]
    assert await parts.timers.get("tmr-nope") is None


async def test_a_timer_is_claimed_only_once_it_is_due(parts: StoreParts) -> None:
    await parts.timers.add(make_timer(due_at=100.0))
    assert await claim(parts, ["tmr-1"], "a", 99.0, 104.0) == ([], {"tmr-1": 100.0})
    [claimed], waiting = await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    assert (claimed.timer_id, claimed.attempts, waiting) == ("tmr-1", 1, {})


async def test_a_claim_takes_every_due_timer_it_names_in_one_call(parts: StoreParts) -> None:
    for timer_id, due_at in [("tmr-1", 100.0), ("tmr-2", 100.5), ("tmr-3", 200.0)]:
        await parts.timers.add(make_timer(timer_id, due_at))
    await parts.timers.add(make_timer("tmr-4", 100.0))
    await parts.timers.cancel("tmr-4", 50.0)
    await parts.timers.add(make_timer("tmr-5", 100.0))
    await claim(parts, ["tmr-5"], "b", 100.0, 110.0)
    ids = ["tmr-1", "tmr-2", "tmr-3", "tmr-4", "tmr-5", "tmr-nope"]
    claimed, waiting = await claim(parts, ids, "a", 101.0, 106.0)
    assert sorted((t.timer_id, t.attempts, t.data) for t in claimed) == [
        ("tmr-1", 1, {"n": [1, "two"]}),
        ("tmr-2", 1, {"n": [1, "two"]}),
    ]
    assert waiting == {"tmr-3": 200.0, "tmr-5": 110.0}  # not due yet; b holds its lease
    assert await claim(parts, [], "a", 101.0, 106.0) == ([], {})


async def test_a_live_claim_keeps_others_out_and_an_ended_lease_is_taken_over(
    parts: StoreParts,
) -> None:
    await parts.timers.add(make_timer(due_at=100.0))
    await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    assert await claim(parts, ["tmr-1"], "b", 104.9, 109.9) == ([], {"tmr-1": 105.0})
    assert await parts.timers.pending() == {"tmr-1": 105.0}
    [taken], _ = await claim(parts, ["tmr-1"], "b", 105.0, 110.0)
    assert taken.attempts == 2
    assert await mark_fired(parts, [("tmr-1", 105.1)], "a") == 0  # a lost it
    assert await mark_fired(parts, [("tmr-1", 105.2)], "b") == 1
    timer = await parts.timers.get("tmr-1")
    assert timer is not None and (timer.state, timer.fired_at) == ("fired", 105.2)
    assert await parts.timers.pending() == {}
    assert await mark_fired(parts, [("tmr-1", 105.3)], "b") == 0  # fired already


async def test_finishing_marks_every_timer_held_in_one_call(parts: StoreParts) -> None:
    for timer_id in ["tmr-1", "tmr-2", "tmr-3"]:
        await parts.timers.add(make_timer(timer_id, 100.0))
    await claim(parts, ["tmr-1", "tmr-2"], "a", 100.0, 105.0)
    await claim(parts, ["tmr-3"], "b", 100.0, 105.0)
    fired = [("tmr-1", 100.1), ("tmr-2", 100.2), ("tmr-3", 100.3)]
    assert await mark_fired(parts, fired, "a") == 2
    assert await mark_fired(parts, [], "a") == 0
    states = {
        t.timer_id: (t.state, t.fired_at) for t in await parts.timers.query(include_done=True)
    }
    assert states == {
        "tmr-1": ("fired", 100.1),
        "tmr-2": ("fired", 100.2),
        "tmr-3": ("pending", None),  # b holds it
    }


async def test_one_step_records_the_marks_and_takes_the_claims(parts: StoreParts) -> None:
    for timer_id, due_at in [("tmr-1", 100.0), ("tmr-2", 101.0), ("tmr-3", 105.0)]:
        await parts.timers.add(make_timer(timer_id, due_at))
    await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    marked, claimed, waiting = await parts.timers.advance(
        [("tmr-1", 100.5)], ["tmr-2", "tmr-3"], "a", 101.0, 106.0
    )
    assert (marked, [t.timer_id for t in claimed], waiting) == (1, ["tmr-2"], {"tmr-3": 105.0})
    states = {
        t.timer_id: (t.state, t.attempts) for t in await parts.timers.query(include_done=True)
    }
    assert states == {"tmr-1": ("fired", 1), "tmr-2": ("pending", 1), "tmr-3": ("pending", 0)}
    assert await parts.timers.advance([], [], "a", 101.0, 106.0) == (0, [], {})


async def test_a_renewed_lease_keeps_the_claim(parts: StoreParts) -> None:
    await parts.timers.add(make_timer(due_at=100.0))
    await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    await parts.timers.renew(["tmr-1"], "a", 110.0)
    await parts.timers.renew(["tmr-1"], "b", 200.0)  # b holds nothing: no effect
    assert await claim(parts, ["tmr-1"], "b", 106.0, 111.0) == ([], {"tmr-1": 110.0})
    assert await parts.timers.pending() == {"tmr-1": 110.0}


async def test_a_released_timer_waits_until_its_retry_time(parts: StoreParts) -> None:
    await parts.timers.add(make_timer(due_at=100.0))
    await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    await parts.timers.release("tmr-1", "a", 130.0)
    assert await claim(parts, ["tmr-1"], "b", 129.0, 134.0) == ([], {"tmr-1": 130.0})
    [again], _ = await claim(parts, ["tmr-1"], "b", 130.0, 135.0)
    assert again.attempts == 2


async def test_a_timer_being_fired_cannot_be_cancelled(parts: StoreParts) -> None:
    await parts.timers.add(make_timer("tmr-1", due_at=100.0))
    await parts.timers.add(make_timer("tmr-2", due_at=100.0))
    await claim(parts, ["tmr-1"], "a", 100.0, 105.0)
    assert await parts.timers.cancel("tmr-1", 101.0) is False
    assert await parts.timers.cancel("tmr-2", 101.0) is True
    assert await parts.timers.cancel("tmr-2", 102.0) is False  # already cancelled
    cancelled = await parts.timers.get("tmr-2")
    assert cancelled is not None and (cancelled.state, cancelled.cancelled_at) == (
        "cancelled",
        101.0,
    )
    assert await claim(parts, ["tmr-2"], "a", 103.0, 108.0) == ([], {})


# -- outbox -----------------------------------------------------------------------------------


def make_note(key: str = "int-1", lane: str = "slack:C1", **overrides: Any) -> NewNotification:
    fields: dict[str, Any] = {
        "key": key,
        "kind": "slack",
        "target": lane.partition(":")[2],
        "lane": lane,
        "text": f"note {key}",
        "priority": "medium",
        "user_id": "U1",
        "parent_id": "evt-1",
        "alert": False,
        "created_at": 100.0,
    }
    return NewNotification(**{**fields, **overrides})


async def test_outbox_an_intent_enqueued_twice_is_stored_once(parts: StoreParts) -> None:
    first = await parts.outbox.enqueue(make_note("int-1"))
    again = await parts.outbox.enqueue(make_note("int-1", text="changed"))
    assert (first[1], again) == (True, (first[0], False))
    entry = await parts.outbox.get(first[0])
    assert entry is not None and (entry.text, entry.state, entry.unsure) == (
        "note int-1",
        "pending",
        False,
    )


async def test_outbox_each_lane_gives_its_oldest_pending_entry(parts: StoreParts) -> None:
    ids = [
        (await parts.outbox.enqueue(make_note(f"int-{n}", lane=f"slack:C{n % 2}")))[0]
        for n in range(4)
    ]
    await parts.outbox.update(ids[0], {"state": "delivered", "finished_at": 101.0})
    heads = [await parts.outbox.head(lane) for lane in ("slack:C0", "slack:C1")]
    assert [h.id for h in heads if h is not None] == [ids[2], ids[1]]
    assert sorted(await parts.outbox.pending_lanes()) == ["slack:C0", "slack:C1"]
    assert (await parts.outbox.count("pending"), await parts.outbox.count("delivered")) == (3, 1)


async def test_outbox_dead_letters_are_listed_and_retried(parts: StoreParts) -> None:
    ids = [(await parts.outbox.enqueue(make_note(f"int-{n}")))[0] for n in range(3)]
    for entry_id in ids[:2]:
        await parts.outbox.update(
            entry_id, {"state": "dead", "attempts": 8, "last_error": "gone", "unsure": 1}
        )
    assert [e.id for e in await parts.outbox.dead_letters()] == ids[:2]
    assert await parts.outbox.retry_dead([ids[1], ids[2], 999], 200.0) == [ids[1]]
    again = await parts.outbox.get(ids[1])
    assert again is not None and (again.state, again.attempts, again.unsure) == ("pending", 0, True)
    assert await parts.outbox.retry_dead(None, 200.0) == [ids[0]]


async def test_outbox_a_lane_is_held_by_one_owner_until_its_lease_ends(parts: StoreParts) -> None:
    outbox = parts.outbox
    assert await outbox.claim_lane("slack:C1", "a", 100.0, 105.0)
    assert await outbox.claim_lane("slack:C1", "a", 101.0, 106.0)  # renewing its own claim
    expected_for_b = not parts.shared  # one process on SQLite: every lane is its own
    assert await outbox.claim_lane("slack:C1", "b", 105.9, 110.9) is expected_for_b
    assert await outbox.claim_lane("slack:C1", "b", 106.0, 111.0)  # a's lease ended
    await outbox.release_lane("slack:C1", "b")
    assert await outbox.claim_lane("slack:C1", "a", 106.5, 111.5)


# -- schedules --------------------------------------------------------------------------------


async def test_schedules_timing_round_trips_and_a_later_run_saved_elsewhere_stays(
    parts: StoreParts,
) -> None:
    await parts.schedules.save("report", "spec-1", 200.0, None)
    await parts.schedules.save("report", "spec-1", 150.0, 100.0)  # an instance behind the other
    await parts.schedules.save("digest", "spec-2", 300.0, None)
    assert await parts.schedules.load() == {
        "report": ("spec-1", 200.0),
        "digest": ("spec-2", 300.0),
    }
    await parts.schedules.save("report", "spec-3", 120.0, None)  # a changed schedule starts afresh
    assert (await parts.schedules.load())["report"] == ("spec-3", 120.0)
