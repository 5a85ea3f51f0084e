"""The event intake's turns: events taken in the append's own transaction, order, retries."""

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from common.clock import SystemClock
from common.message_bus import MessageBus
from supervisor.config import JournalConfig
from supervisor.event_intake import MAX_IN_FLIGHT, EventIntake
from supervisor.store.journal import EntryState, JournalEntry, NewEvent, SqliteJournal
from supervisor.store.sqlite import Store
from tests.factories import make_bus, running_intake
from tests.fakes.clock import FakeClock

OLDER = MAX_IN_FLIGHT + 88  # more than the intake keeps in flight at once


class ClaimCountingJournal(SqliteJournal):
    """The SQLite journal, counting the claims asked of it."""

    claims = 0

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[JournalEntry]:
        self.claims += 1
        return await super().claim(owner, limit, lease, now)


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
