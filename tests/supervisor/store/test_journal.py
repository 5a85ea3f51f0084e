"""The event journal's contract: states, transitions, claims with leases, keys, dead events.

Written against the ``Journal`` interface only and run on SQLite and on PostgreSQL.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.errors import StoreError
from common.ids import derived_event_id
from supervisor.config import StorageConfig
from supervisor.store.journal import (
    TRANSITIONS,
    EntryState,
    Journal,
    NewEvent,
    SqliteJournal,
    next_state,
)
from supervisor.store.postgres.journal import PostgresJournal
from supervisor.store.postgres.pool import open_pool
from supervisor.store.postgres.schema import migrate
from supervisor.store.sqlite import Store
from tests.conftest import create_database, drop_database

NOW = 1_800_000_000.0
LEASE = 60.0


def make_event(n: int, **overrides: object) -> NewEvent:
    fields: dict[str, object] = {
        "event_id": f"evt-{n}",
        "event_type": "PING",
        "data": {"n": n},
        "publisher": "http",
        "source": "http",
        "created_at": NOW - 10 + n / 1000,
    }
    return NewEvent(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    if request.param == "sqlite":
        store = Store(tmp_path / "intentd.db")
        yield SqliteJournal(store)
        store.close()
        return
    server = request.getfixturevalue("postgres_server")
    name = await create_database(server)
    pool = await open_pool(StorageConfig(url=server.url(name)))
    await migrate(pool, "test", "test")
    yield PostgresJournal(pool)
    await pool.close()
    await drop_database(server, name)


def test_every_operation_names_its_start_states_and_its_end_state() -> None:
    assert {op: (sorted(src), dst) for op, (src, dst) in TRANSITIONS.items()} == {
        "claim": ([EntryState.CLAIMED, EntryState.PENDING], EntryState.CLAIMED),
        "finish": ([EntryState.CLAIMED], EntryState.DONE),
        "fail": ([EntryState.CLAIMED], EntryState.PENDING),
        "park": ([EntryState.CLAIMED], EntryState.DEAD),
        "release": ([EntryState.CLAIMED], EntryState.PENDING),
        "recover": ([EntryState.CLAIMED], EntryState.PENDING),
        "retry": ([EntryState.DEAD], EntryState.PENDING),
    }


def test_a_done_entry_cannot_move_again() -> None:
    assert next_state(EntryState.CLAIMED, "finish") is EntryState.DONE
    for operation in TRANSITIONS:
        with pytest.raises(StoreError, match=f"{operation!r} is not allowed .* state 'done'"):
            next_state(EntryState.DONE, operation)


def test_derived_event_ids_are_stable_and_distinct() -> None:
    assert derived_event_id("a") == derived_event_id("a") != derived_event_id("b")


async def test_claim_takes_entries_in_append_order_and_counts_the_attempt(journal: Journal) -> None:
    await journal.append([make_event(n) for n in range(5)])
    first = await journal.claim("me", 3, LEASE, NOW)
    rest = await journal.claim("me", 10, LEASE, NOW)
    assert [e.event_id for e in first] == ["evt-0", "evt-1", "evt-2"]
    assert [e.event_id for e in rest] == ["evt-3", "evt-4"]
    assert {(e.state, e.attempts, e.owner, e.lease_until) for e in first + rest} == {
        (EntryState.CLAIMED, 1, "me", NOW + LEASE)
    }
    assert first[0].event.data == {"n": 0}
    assert await journal.claim("me", 10, LEASE, NOW) == []


async def test_an_append_with_a_known_key_stores_nothing_and_names_the_first_event(
    journal: Journal,
) -> None:
    [first] = await journal.append([make_event(1, key="k")])
    [again, other] = await journal.append([make_event(2, key="k"), make_event(3, key="j")])
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert again.event_id == "evt-1"
    assert [e.event_id for e in await journal.claim("me", 10, LEASE, NOW)] == ["evt-1", "evt-3"]


async def test_an_append_of_a_known_event_id_is_a_duplicate(journal: Journal) -> None:
    await journal.append([make_event(1)])
    [again] = await journal.append([make_event(1)])
    assert again.duplicate and (await journal.stats(NOW)).backlog == 1


async def test_data_json_cannot_write_is_stored_as_its_text(journal: Journal) -> None:
    at = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    await journal.append([make_event(1, data={"at": at, "n": [1.5, None]})])
    await journal.append([make_event(2, data={"plain": "é"})])
    first, second = await journal.get("evt-1"), await journal.get("evt-2")
    assert first is not None and second is not None
    assert (first.event.data, second.event.data) == (
        {"at": "2027-01-15 08:00:00+00:00", "n": [1.5, None]},
        {"plain": "é"},
    )


async def test_finish_needs_the_owner_and_a_claim(journal: Journal) -> None:
    await journal.append([make_event(1), make_event(2)])
    await journal.claim("me", 10, LEASE, NOW)
    assert await journal.finish("someone-else", ["evt-1"], NOW) == 0
    assert await journal.finish("me", ["evt-1"], NOW + 1) == 1
    assert await journal.finish("me", ["evt-1"], NOW + 2) == 0  # done already
    entry = await journal.get("evt-1")
    assert entry is not None and (entry.state, entry.finished_at) == (EntryState.DONE, NOW + 1)
    assert (await journal.stats(NOW)).backlog == 1


async def test_a_failed_entry_is_due_again_at_its_retry_time_with_the_next_attempt(
    journal: Journal,
) -> None:
    await journal.append([make_event(1)])
    await journal.claim("me", 10, LEASE, NOW)
    assert await journal.fail("me", "evt-1", "handler raised", NOW + 5)
    assert await journal.claim("me", 10, LEASE, NOW + 4.9) == []
    assert (await journal.stats(NOW)).next_due_at == NOW + 5
    [entry] = await journal.claim("me", 10, LEASE, NOW + 5)
    assert (entry.attempts, entry.last_error) == (2, "handler raised")


async def test_another_owner_takes_over_a_claim_only_after_its_lease_ran_out(
    journal: Journal,
) -> None:
    await journal.append([make_event(1)])
    await journal.claim("dead-process", 10, LEASE, NOW)
    assert await journal.claim("me", 10, LEASE, NOW + LEASE - 1) == []
    assert await journal.claim("dead-process", 10, LEASE, NOW + LEASE) == []  # not its own again
    [entry] = await journal.claim("me", 10, LEASE, NOW + LEASE)
    assert (entry.owner, entry.attempts) == ("me", 2)
    assert not await journal.fail("dead-process", "evt-1", "late", NOW)  # it lost the claim


async def test_release_puts_the_owners_claims_back_in_order(journal: Journal) -> None:
    await journal.append([make_event(n) for n in range(3)])
    await journal.claim("me", 2, LEASE, NOW)
    assert await journal.release("other") == 0
    assert await journal.release("me") == 2
    entries = await journal.claim("other", 10, LEASE, NOW)
    assert [(e.event_id, e.attempts) for e in entries] == [("evt-0", 2), ("evt-1", 2), ("evt-2", 1)]


async def test_sqlite_recover_puts_every_claim_back_at_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "intentd.db")
    journal = SqliteJournal(store)
    await journal.append([make_event(n) for n in range(3)])
    await journal.claim("old", 2, LEASE, NOW)
    assert await journal.recover(NOW) == 2  # one process: a claim found at start is a dead one's
    entries = await journal.claim("me", 10, LEASE, NOW)
    store.close()
    assert [(e.event_id, e.attempts) for e in entries] == [("evt-0", 2), ("evt-1", 2), ("evt-2", 1)]


async def test_postgres_recover_leaves_claims_to_their_leases(postgres_url: str) -> None:
    pool = await open_pool(StorageConfig(url=postgres_url))
    await migrate(pool, "test", "test")
    journal = PostgresJournal(pool)
    await journal.append([make_event(n) for n in range(2)])
    await journal.claim("alive-elsewhere", 1, LEASE, NOW)
    assert await journal.recover(NOW) == 0
    assert [e.event_id for e in await journal.claim("me", 10, LEASE, NOW)] == ["evt-1"]
    stats = await journal.stats(NOW)
    await pool.close()
    assert stats.next_due_at == NOW + LEASE  # when the other claim may be taken over


async def test_renew_extends_only_the_owners_claims(journal: Journal) -> None:
    await journal.append([make_event(1), make_event(2)])
    await journal.claim("me", 1, LEASE, NOW)
    await journal.claim("other", 1, LEASE, NOW)
    assert await journal.renew("me", ["evt-1", "evt-2"], NOW + 2 * LEASE) == 1
    taken = await journal.claim("thief", 10, LEASE, NOW + LEASE)
    assert [(e.event_id, e.attempts) for e in taken] == [("evt-2", 2)]


async def test_a_parked_entry_is_listed_dead_until_retried(journal: Journal) -> None:
    await journal.append([make_event(1), make_event(2)])
    await journal.claim("me", 10, LEASE, NOW)
    assert await journal.park("me", "evt-1", "gave up after 5 attempts", NOW)
    assert not await journal.park("me", "evt-1", "again", NOW)
    [dead] = await journal.dead()
    assert (dead.event_id, dead.state, dead.last_error) == (
        "evt-1",
        EntryState.DEAD,
        "gave up after 5 attempts",
    )
    stats = await journal.stats(NOW)
    assert (stats.backlog, stats.dead) == (1, 1)
    assert await journal.retry(["evt-1", "evt-2", "evt-9"], NOW + 1) == ["evt-1"]
    [again] = await journal.claim("me", 10, LEASE, NOW + 1)
    assert (again.event_id, again.attempts) == ("evt-1", 1)
    assert await journal.dead() == []


async def test_retry_without_ids_retries_every_dead_entry(journal: Journal) -> None:
    await journal.append([make_event(1), make_event(2)])
    await journal.claim("me", 10, LEASE, NOW)
    for event_id in ("evt-1", "evt-2"):
        await journal.park("me", event_id, "no", NOW)
    assert await journal.retry(None, NOW) == ["evt-1", "evt-2"]


async def test_stats_show_the_backlog_and_its_oldest_entry(journal: Journal) -> None:
    assert (await journal.stats(NOW)).oldest_at is None
    await journal.append([make_event(n) for n in range(3)])
    await journal.claim("me", 1, LEASE, NOW)
    await journal.finish("me", ["evt-0"], NOW)
    stats = await journal.stats(NOW)
    assert (stats.backlog, stats.oldest_at, stats.dead) == (2, make_event(1).created_at, 0)


async def test_prune_drops_old_done_entries_and_frees_their_keys(journal: Journal) -> None:
    await journal.append([make_event(1, key="k"), make_event(2, key="j")])
    await journal.claim("me", 10, LEASE, NOW)
    await journal.finish("me", ["evt-1"], NOW)
    await journal.finish("me", ["evt-2"], NOW + 100)
    assert await journal.prune(NOW + 50) == 1
    [reused, kept] = await journal.append([make_event(3, key="k"), make_event(4, key="j")])
    assert (reused.duplicate, kept.duplicate) == (False, True)


async def test_entries_survive_reopening_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "intentd.db")
    await SqliteJournal(store).append([make_event(1, channel_id="C1", parent_id="int-1")])
    store.close()
    store = Store(tmp_path / "intentd.db")
    try:
        [entry] = await SqliteJournal(store).claim("me", 10, LEASE, NOW)
    finally:
        store.close()
    assert entry.event == make_event(1, channel_id="C1", parent_id="int-1")


async def test_a_batch_mixing_new_known_and_keyed_events_answers_in_order(
    journal: Journal,
) -> None:
    await journal.append([make_event(1), make_event(2, key="k")])
    results = await journal.append(
        [make_event(3), make_event(1), make_event(4, key="k"), make_event(5, key="j")]
    )
    assert [(r.event_id, r.duplicate) for r in results] == [
        ("evt-3", False),
        ("evt-1", True),
        ("evt-2", True),
        ("evt-5", False),
    ]
    assert (await journal.stats(NOW)).backlog == 4


async def test_append_names_each_entry_by_its_seq_in_append_order(journal: Journal) -> None:
    first = await journal.append([make_event(1), make_event(2, key="k")])
    again = await journal.append([make_event(3), make_event(4, key="k")])
    seqs = [result.seq for result in first + again[:1]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert again[1].seq == first[1].seq  # the duplicate names the first event's entry
    claimed = await journal.claim("me", 10, LEASE, NOW)
    assert [entry.seq for entry in claimed] == seqs


async def test_an_append_for_an_owner_stores_its_new_events_claimed_by_it(
    journal: Journal,
) -> None:
    await journal.append([make_event(1, key="k")])
    results = await journal.append(
        [make_event(2), make_event(3, key="k"), make_event(4)], owner="me", lease_until=NOW + 9
    )
    assert [(r.event_id, r.duplicate, r.claimed) for r in results] == [
        ("evt-2", False, True),
        ("evt-1", True, False),  # the first event's entry is left as it was
        ("evt-4", False, True),
    ]
    entry = await journal.get("evt-2")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.owner, entry.lease_until) == (
        EntryState.CLAIMED,
        1,
        "me",
        NOW + 9,
    )
    assert [e.event_id for e in await journal.claim("me", 10, LEASE, NOW)] == ["evt-1"]
    assert await journal.finish("me", ["evt-2", "evt-4"], NOW) == 2
    assert (await journal.stats(NOW)).backlog == 1


async def test_events_appended_claimed_by_a_dead_owner_are_replayed_at_attempt_two(
    journal: Journal,
) -> None:
    await journal.append([make_event(1)], owner="dead-process", lease_until=NOW + LEASE)
    assert await journal.claim("me", 10, LEASE, NOW) == []
    [entry] = await journal.claim("me", 10, LEASE, NOW + LEASE)  # once the dead owner's lease ends
    assert (entry.event_id, entry.attempts) == ("evt-1", 2)


async def test_finish_of_a_large_batch_marks_only_the_owners_claims(journal: Journal) -> None:
    events = [make_event(n) for n in range(1500)]
    await journal.append(events[:1400], owner="me", lease_until=NOW + LEASE)
    await journal.append(events[1400:], owner="other", lease_until=NOW + LEASE)
    ids = [event.event_id for event in events]
    assert await journal.finish("me", ids, NOW) == 1400
    assert await journal.finish("me", ids, NOW) == 0
    assert (await journal.stats(NOW)).backlog == 100


async def test_postgres_claims_made_at_once_never_take_the_same_entry(postgres_url: str) -> None:
    pool = await open_pool(StorageConfig(url=postgres_url, pool_size=8))
    await migrate(pool, "test", "test")
    journal = PostgresJournal(pool)
    await journal.append([make_event(n) for n in range(200)])
    batches = await asyncio.gather(
        *(journal.claim(f"owner-{n}", 10, LEASE, NOW) for n in range(8)),
        *(journal.claim(f"owner-{n}", 10, LEASE, NOW) for n in range(8)),
    )
    await pool.close()
    claimed = [entry.event_id for batch in batches for entry in batch]
    assert (len(claimed), len(set(claimed))) == (160, 160)


async def test_finish_and_append_marks_the_owners_entries_done_and_stores_new_ones_claimed(
    journal: Journal,
) -> None:
    await journal.append([make_event(1), make_event(2)], owner="me", lease_until=NOW + LEASE)
    await journal.append([make_event(3)], owner="other", lease_until=NOW + LEASE)
    await journal.append([make_event(4, key="k")])
    finished, results = await journal.finish_and_append(
        "me",
        ["evt-1", "evt-2", "evt-3"],  # evt-3 is another owner's: left as it is
        NOW,
        [make_event(5), make_event(6, key="k")],
        NOW + 9,
    )
    assert finished == 2
    assert [(r.event_id, r.duplicate, r.claimed) for r in results] == [
        ("evt-5", False, True),
        ("evt-4", True, False),
    ]
    entries = {n: await journal.get(f"evt-{n}") for n in (1, 2, 3, 5)}
    assert {
        n: (e.state, e.owner, e.attempts, e.finished_at, e.lease_until)
        for n, e in entries.items()
        if e is not None
    } == {
        1: (EntryState.DONE, None, 1, NOW, None),
        2: (EntryState.DONE, None, 1, NOW, None),
        3: (EntryState.CLAIMED, "other", 1, None, NOW + LEASE),
        5: (EntryState.CLAIMED, "me", 1, None, NOW + 9),
    }


async def test_finish_and_append_commits_nothing_when_the_append_fails(journal: Journal) -> None:
    await journal.append([make_event(1)], owner="me", lease_until=NOW + LEASE)
    with pytest.raises(StoreError):
        await journal.finish_and_append(
            "me", ["evt-1"], NOW, [make_event(2), make_event(3, event_type=None)], NOW + 9
        )
    entry = await journal.get("evt-1")
    assert entry is not None and entry.state == EntryState.CLAIMED
    assert await journal.get("evt-2") is None
