"""The event intake's turns: events taken in the append's own transaction, order, retries."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from common.clock import SystemClock
from common.errors import StoreError
from common.message_bus import MessageBus
from supervisor.config import JournalConfig
from supervisor.event_intake import MAX_IN_FLIGHT, EventIntake
from supervisor.store.journal import (
    Appended,
    EntryState,
    JournalEntry,
    NewEvent,
    SqliteJournal,
)
from supervisor.store.sqlite import Store
from tests.factories import RunningIntake, make_bus, running_intake
from tests.fakes.clock import FakeClock

OLDER = MAX_IN_FLIGHT + 88  # more than the intake keeps in flight at once


class ClaimCountingJournal(SqliteJournal):
    """The SQLite journal, counting the claims asked of it."""

    claims = 0

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[JournalEntry]:
        self.claims += 1
        return await super().claim(owner, limit, lease, now)


class CallRecordingJournal(SqliteJournal):
    """The SQLite journal, recording the writes asked of it and the event ids in each."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls: list[tuple[str, list[str], list[str]]] = []

    async def append(self, events: Sequence[NewEvent], **claim: Any) -> list[Appended]:
        self.calls.append(("append", [], [event.event_id for event in events]))
        return await super().append(events, **claim)

    async def finish(self, owner: str, event_ids: Sequence[str], now: float) -> int:
        self.calls.append(("finish", list(event_ids), []))
        return await super().finish(owner, event_ids, now)

    async def finish_and_append(
        self,
        owner: str,
        event_ids: Sequence[str],
        now: float,
        events: Sequence[NewEvent],
        lease_until: float,
    ) -> tuple[int, list[Appended]]:
        self.calls.append(("finish_and_append", list(event_ids), [e.event_id for e in events]))
        return await super().finish_and_append(owner, event_ids, now, events, lease_until)


class MergedCommitFailingOnceJournal(CallRecordingJournal):
    """The recording journal, whose first ``finish_and_append`` fails as a store gone away."""

    async def finish_and_append(
        self,
        owner: str,
        event_ids: Sequence[str],
        now: float,
        events: Sequence[NewEvent],
        lease_until: float,
    ) -> tuple[int, list[Appended]]:
        if not any(call[0] == "finish_and_append" for call in self.calls):
            self.calls.append(("finish_and_append failed", list(event_ids), []))
            raise StoreError("store.path 'intentd.db': cannot mark journal entries done (gone)")
        return await super().finish_and_append(owner, event_ids, now, events, lease_until)


def recording_bus(
    seen: list[tuple[str, int]], fail_first: int = 0, release: asyncio.Event | None = None
) -> MessageBus:
    bus, _ = make_bus()

    async def handle(data: dict[str, Any], context: Any) -> list[Any]:
        if release is not None:
            await release.wait()
        seen.append((data["name"], context.attempt))
        if len(seen) <= fail_first:
            raise RuntimeError("the first delivery fails")
        return []

    bus.subscribe("recorder", "PING", handle)
    bus.start()
    return bus


async def test_events_accepted_while_nothing_older_is_due_are_claimed_by_their_append(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "intentd.db")
    journal = ClaimCountingJournal(store)
    seen: list[tuple[str, int]] = []
    release = asyncio.Event()  # the handler holds the first event: none is finished yet
    bus = recording_bus(seen, release=release)
    intake = EventIntake(journal, bus, SystemClock(), JournalConfig())
    await intake.start()
    run = asyncio.get_running_loop().create_task(intake.run())
    try:
        await intake.drain()  # the start's claim found nothing
        claims_at_start = journal.claims
        stored = [await intake.accept("http", "PING", {"name": f"new-{n}"}) for n in range(3)]
        entries = [await journal.get(result.event_id) for result in stored]
        release.set()
        await intake.drain()
        await bus.drain()
        await intake.drain()
        done = [await journal.get(result.event_id) for result in stored]
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await intake.shutdown()
        await bus.stop()
        store.close()
    assert (claims_at_start, journal.claims) == (1, 1)
    assert [(e.state, e.attempts, e.owner) for e in entries if e is not None] == [
        (EntryState.CLAIMED, 1, intake.owner)
    ] * 3
    assert [e.state for e in done if e is not None] == [EntryState.DONE] * 3
    assert seen == [(f"new-{n}", 1) for n in range(3)]


async def test_events_accepted_behind_an_older_backlog_are_delivered_after_it_in_order(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "intentd.db")
    await SqliteJournal(store).append(
        [
            NewEvent(f"evt-old-{n}", "PING", {"name": f"old-{n}"}, "http", "http", float(n))
            for n in range(OLDER)
        ]
    )
    seen: list[tuple[str, int]] = []
    bus = recording_bus(seen)
    try:
        async with running_intake(store, bus) as intake:
            for n in range(3):
                await intake.accept("http", "PING", {"name": f"new-{n}"})
            while intake.backlog:
                await intake.drain()
                await bus.drain()
    finally:
        await bus.stop()
        store.close()
    expected = [f"old-{n}" for n in range(OLDER)] + [f"new-{n}" for n in range(3)]
    assert seen == [(name, 1) for name in expected]


async def test_a_failed_event_taken_with_its_append_is_delivered_again_as_attempt_two(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "intentd.db")
    clock = FakeClock()
    seen: list[tuple[str, int]] = []
    bus = recording_bus(seen, fail_first=1)
    try:
        async with running_intake(store, bus, clock, retry_initial=5, retry_max=5) as intake:
            await intake.drain()
            stored = await intake.accept("http", "PING", {"name": "flaky"})
            await bus.drain()
            await intake.drain()
            pending = await SqliteJournal(store).get(stored.event_id)
            await clock.advance(10)
            await bus.drain()
            await intake.drain()
            done = await SqliteJournal(store).get(stored.event_id)
    finally:
        await bus.stop()
        store.close()
    assert pending is not None and (pending.state, pending.attempts) == (EntryState.PENDING, 1)
    assert done is not None and (done.state, done.attempts) == (EntryState.DONE, 2)
    assert seen == [("flaky", 1), ("flaky", 2)]


@contextlib.asynccontextmanager
async def chained_intake(
    store: Store, journal: SqliteJournal, clock: Any
) -> AsyncIterator[tuple[EventIntake, MessageBus, list[asyncio.Future[Appended]]]]:
    """A running intake whose PING handler submits a second event while the first is handled,
    so the first's done mark and the second event meet in one turn."""
    bus, _ = make_bus()
    running = RunningIntake(store, bus, clock, JournalConfig(), journal)
    chained: list[asyncio.Future[Appended]] = []

    async def handle(data: dict[str, Any], context: Any) -> list[Any]:
        if data["name"] == "first":
            chained.append(running.intake.submit("test", "PING", {"name": "second"}))
        return []

    bus.subscribe("chain", "PING", handle)
    bus.start()
    try:
        yield await running.start(), bus, chained
    finally:
        await running.stop()
        await bus.stop()
        store.close()


async def test_a_turn_commits_its_done_marks_and_its_new_events_in_one_transaction(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "intentd.db")
    journal = CallRecordingJournal(store)
    async with chained_intake(store, journal, SystemClock()) as (intake, bus, chained):
        first = await intake.accept("test", "PING", {"name": "first"})
        while not chained:
            await bus.drain()
        second = await chained[0]
        while intake.backlog:
            await bus.drain()
            await intake.drain()
        states = [await journal.get(result.event_id) for result in (first, second)]
    assert journal.calls == [
        ("append", [], [first.event_id]),
        ("finish_and_append", [first.event_id], [second.event_id]),
        ("finish", [second.event_id], []),
    ]
    assert [entry.state for entry in states if entry is not None] == [EntryState.DONE] * 2


async def test_a_failed_turn_commit_refuses_its_new_events_and_marks_the_done_ones_later(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "intentd.db")
    journal = MergedCommitFailingOnceJournal(store)
    clock = FakeClock()
    async with chained_intake(store, journal, clock) as (intake, bus, chained):
        first = await intake.accept("test", "PING", {"name": "first"})
        while not chained:
            await bus.drain()
        with pytest.raises(StoreError):
            await chained[0]  # not stored: an HTTP client is told 503
        before_retry = await journal.get(first.event_id)
        await clock.advance(1)  # the failed turn is tried again a second later
        await intake.drain()
        after_retry = await journal.get(first.event_id)
        stored = (await journal.stats(clock.time())).backlog
    assert before_retry is not None and before_retry.state == EntryState.CLAIMED
    assert after_retry is not None and after_retry.state == EntryState.DONE
    assert stored == 0
    assert journal.calls == [
        ("append", [], [first.event_id]),
        ("finish_and_append failed", [first.event_id], []),
        ("finish", [first.event_id], []),
    ]
