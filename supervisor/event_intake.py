"""The event intake: events from outside are journaled first, then fed to the bus in order.

Rules kept here:
- ``accept`` returns only once the event is committed to the journal; that is when HTTP answers
  202, Socket Mode acks and a schedule marks its run. Every event submitted during one loop turn
  shares one transaction (a group commit), and so do the done marks; a turn that has both
  commits them together (``journal.finish_and_append``).
- One task, ``run()``, does the journal's work in turns: commit what was submitted, commit the
  done marks and failures, claim what is due (at most ``MAX_IN_FLIGHT`` events in the bus at
  once, ``SHARED_IN_FLIGHT`` on a shared store, so a busy process still has room to take over a
  dead one's entries and leaves new ones to idle processes) and publish it with the journal's
  event id, timestamp and attempt number. When no older entry is due, the submitted events are
  stored claimed by this intake in their append's own transaction (``append(owner=...)``) and
  published at once: no claim statement, no read back.
- An entry is finished only after the bus reports that its handlers ran and every intent they
  returned was carried out, with no failure. Its intents get the ids ``f"{event_id}:{role}:{n}"``,
  so a replay after a crash finds the audit record, the outbox entry and the chained event
  (keyed by that intent id) already there.
- A delivery that failed is retried, the wait doubling from ``journal.retry_initial`` to
  ``journal.retry_max``; after ``journal.max_attempts`` the entry is parked dead and the admin
  channel is told once. ``intentd events retry`` replays it.
- A claim holds its entries for ``journal.lease`` seconds and is renewed every third of that
  while they run, so another process sharing the journal takes an entry over only when this one
  died. A turn that fails (the database is away) is logged and tried again a second later.
- ``accept(..., bounded=True)`` (HTTP) refuses an event with JournalFullError once the backlog
  reaches ``journal.max_backlog``; events chained by intents are never refused.
- Stopping: with the outside sources stopped, ``drain()`` delivers the backlog (chained events
  included) until ``supervisor.shutdown_timeout``; ``close()`` then refuses events and claims no
  more, and once the run task is cancelled ``shutdown()`` commits the last marks and returns
  unfinished claims to pending: what was not handled is replayed at the next start.
"""

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog

from common.backoff import backoff_delay
from common.clock import Clock
from common.errors import BusClosedError, BusFullError, JournalFullError, StoreError
from common.events import check_event_type, seen_valid
from common.ids import new_id
from common.message_bus import EventOutcome, MessageBus
from supervisor.config import JournalConfig
from supervisor.store.journal import (
    Appended,
    EntryState,
    Journal,
    JournalEntry,
    JournalStats,
    NewEvent,
)

log = structlog.get_logger("intentd.journal")

MAX_IN_FLIGHT = 2048  # claimed events waiting in the bus at once
SHARED_IN_FLIGHT = 64  # the same on a shared store: a busy process leaves work for the others
PRUNE_EVERY = 3600.0  # seconds between deletions of old done entries
FULL_BUS_RETRY = 1.0  # seconds before claimed events a full bus refused are offered again
TURN_RETRY = 1.0  # seconds before a turn that failed (the store is away) is tried again
_Submitted = tuple[NewEvent, "asyncio.Future[Appended]"]  # an event and who waits for its commit


class EventIntake:
    """Journal events from outside the process and deliver each until it is done or dead."""

    def __init__(
        self,
        journal: Journal,
        bus: MessageBus,
        clock: Clock,
        config: JournalConfig | None = None,
        *,
        alert: Callable[[str], Awaitable[Any]] | None = None,
        owner: str | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        """``owner`` names this process's claims (unique per run; a new id by default);
        at most ``max_in_flight`` claimed events wait in the bus at once."""
        self.journal = journal
        self.bus = bus
        self.clock = clock
        self.config = config or JournalConfig()
        self.alert = alert
        self.owner = owner or new_id("owner")
        self.max_in_flight = max_in_flight
        self.stats = JournalStats()  # refreshed by ``refresh()``; backlog kept current by turns
        self.accepted = 0
        self.replayed = 0  # deliveries with an attempt number above 1
        self._appends: list[_Submitted] = []
        self._done: list[str] = []
        self._failed: list[tuple[JournalEntry, str]] = []
        self._in_flight: set[str] = set()
        self._unpublished: deque[JournalEntry] = deque()  # claimed, refused by a full bus
        self._accepting = False
        self._claiming = False
        self._more = True  # the journal may hold due entries not claimed yet
        self._due_at: float | None = None
        self._pruned_at = 0.0
        self._renew_at = 0.0
        self._watching = False
        self._wakeup: asyncio.Future[None] | None = None
        self._idle: list[asyncio.Future[None]] = []

    @property
    def backlog(self) -> int:
        """Return how many accepted events are not done or dead."""
        return self.stats.backlog

    @property
    def uncommitted(self) -> int:
        """Return how many submitted events wait for the next group commit."""
        return len(self._appends)

    # -- accepting --------------------------------------------------------------------------

    def submit(
        self,
        publisher: str,
        event_type: str,
        data: Any = None,
        *,
        source: str | None = None,
        channel_id: str | None = None,
        user_id: str | None = None,
        parent_id: str | None = None,
        key: str | None = None,
        event_id: str | None = None,
        bounded: bool = False,
    ) -> asyncio.Future[Appended]:
        """Queue an event for the next group commit; the future resolves once it is stored."""
        if not seen_valid(event_type):
            check_event_type(event_type, f"{publisher!r} published event type")
        if not self._accepting:
            raise BusClosedError(
                f"the daemon is not accepting events now (starting or stopping); event "
                f"{event_type!r} from {publisher!r} was not stored"
            )
        if bounded and self.backlog + len(self._appends) >= self.config.max_backlog:
            raise JournalFullError(
                f"the event journal holds {self.backlog} unfinished events, its "
                f"journal.max_backlog; event {event_type!r} was not accepted; retry later or "
                "raise journal.max_backlog"
            )
        if isinstance(data, dict):
            channel_id = channel_id or data.get("channel_id")
            user_id = user_id or data.get("user_id")
        event = NewEvent(
            event_id=event_id or new_id("evt"),
            event_type=event_type,
            data=data,
            publisher=publisher,
            source=source or publisher,
            created_at=self.clock.time(),
            channel_id=channel_id,
            user_id=user_id,
            parent_id=parent_id,
            key=key,
        )
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._appends.append((event, future))
        self._wake()
        return future

    async def accept(
        self, publisher: str, event_type: str, data: Any = None, **options: Any
    ) -> Appended:
        """Store an event (see ``submit`` for the options); return once it is committed."""
        return await self.submit(publisher, event_type, data, **options)

    def close(self) -> None:
        """Refuse new events and claim no more (stopping); stored events wait for the next start."""
        self._accepting = self._claiming = False

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Return dead processes' claims to pending and accept events (before ``run``)."""
        if not self._watching:
            self.journal.watch(self._due)
            self._watching = True
        recovered = await self.journal.recover(self.clock.time())
        await self.refresh()
        if recovered or self.backlog:
            log.info("journal_replaying", backlog=self.backlog, recovered=recovered)
        self._accepting = True
        self._claiming = True
        self._more = True

    async def run(self) -> None:
        """Commit, claim and publish in turns until cancelled; the supervisor owns this task."""
        while True:
            try:
                await self._turn()
            except Exception as err:  # the store is away: keep what is queued, try again soon
                log.error("journal_turn_failed", error=str(err), retry_in_s=TURN_RETRY)
                self._due_at = self.clock.time() + TURN_RETRY
                await self._sleep()
                continue
            if self._appends or self._done or self._failed or self._can_claim():
                await asyncio.sleep(0)  # let handlers and requests run between turns
                continue
            self._wake_idle()
            await self._sleep()

    async def drain(self) -> None:
        """Return once nothing due is left: every stored event handled, failed or dead."""
        while self._appends or self._done or self._failed or self._in_flight or self._more:
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    async def shutdown(self) -> None:
        """Commit the last marks and put unfinished claims back (after ``run`` is cancelled)."""
        self._accepting = self._claiming = False
        for _, future in self._appends:
            future.cancel()  # not stored: nobody was told it was accepted
        self._appends.clear()
        await self._commit_marks()
        released = await self.journal.release(self.owner)
        self._in_flight.clear()
        self._unpublished.clear()
        if released:
            log.info("journal_left_for_next_start", released=released, backlog=self.backlog)

    async def refresh(self) -> JournalStats:
        """Read the journal's stats (backlog, oldest entry, dead count) from the store."""
        self.stats = await self.journal.stats(self.clock.time())
        return self.stats

    # -- one turn ---------------------------------------------------------------------------

    async def _turn(self) -> None:
        now = self.clock.time()
        if self._done and self._appends and self._nothing_due(now):
            await self._commit_done_and_appends(now)  # a busy turn: one transaction for both
        await self._commit_marks()  # first: the events they finish make room for new ones
        if self._in_flight and now >= self._renew_at:
            self._renew_at = now + self.config.lease / 3
            await self.journal.renew(self.owner, sorted(self._in_flight), now + self.config.lease)
        appends, self._appends = self._appends, []
        if appends:
            # Taken at once only the room in flight allows, and only with nothing older due,
            # so events still reach the bus in append order.
            room = self.max_in_flight - len(self._in_flight) if self._nothing_due(now) else 0
            if room > 0:
                await self._commit_appends(appends[:room], now)
            if len(appends) > room:
                await self._commit_appends(appends[max(room, 0) :], None)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            pruned = await self.journal.prune(now - self.config.retention)
            if pruned:
                log.info("journal_pruned", entries=pruned)
        while self._unpublished and self._publish(self._unpublished[0]):
            self._unpublished.popleft()
        if self._can_claim():
            room = self.max_in_flight - len(self._in_flight)
            claimed = await self.journal.claim(self.owner, room, self.config.lease, now)
            self._more = len(claimed) == room
            if not self._more:
                self._due_at = (await self.refresh()).next_due_at
            self._take(claimed)

    def _take(self, entries: list[JournalEntry]) -> None:
        if entries and not self._in_flight:  # the first claim held: renew its lease from now on
            self._renew_at = self.clock.time() + self.config.lease / 3
        for entry in entries:
            self._in_flight.add(entry.event_id)
            if self._unpublished or not self._publish(entry):
                self._unpublished.append(entry)

    def _can_claim(self) -> bool:
        if not self._claiming or len(self._in_flight) >= self.max_in_flight or self._unpublished:
            return False
        return self._more or (self._due_at is not None and self._due_at <= self.clock.time())

    def _nothing_due(self, now: float) -> bool:
        """Return whether no stored entry is due before events submitted now."""
        if not self._claiming or self._more or self._unpublished:
            return False
        return self._due_at is None or self._due_at > now

    async def _commit_appends(self, appends: list[_Submitted], claim_at: float | None) -> None:
        """Store ``appends`` in one transaction; claimed and published if ``claim_at`` is set."""
        events = [event for event, _ in appends]
        lease_until = None if claim_at is None else claim_at + self.config.lease
        try:
            if lease_until is None:
                results = await self.journal.append(events)
            else:
                results = await self.journal.append(
                    events, owner=self.owner, lease_until=lease_until
                )
        except StoreError as err:
            self._append_failed(appends, err)
            return
        self._appended(appends, results, lease_until)

    async def _commit_done_and_appends(self, now: float) -> None:
        """Commit the done marks and the submitted events (claimed) in one transaction."""
        done = self._done
        room = self.max_in_flight - len(self._in_flight.difference(done))
        if room <= 0:
            return  # left to the turn's separate steps
        appends, self._appends = self._appends[:room], self._appends[room:]
        self._done = []
        lease_until = now + self.config.lease
        try:
            finished, results = await self.journal.finish_and_append(
                self.owner, done, now, [event for event, _ in appends], lease_until
            )
        except StoreError as err:
            self._done[:0] = done  # marked at the next turn
            self._append_failed(appends, err)
            raise
        except BaseException:
            self._done[:0] = done
            self._appends[:0] = appends  # stopping: shutdown() cancels their futures
            raise
        self._finished(done, finished)
        self._appended(appends, results, lease_until)

    def _append_failed(self, appends: list[_Submitted], err: StoreError) -> None:
        log.error("journal_append_failed", events=len(appends), error=str(err))
        for _, future in appends:
            if not future.done():
                future.set_exception(err)

    def _appended(
        self, appends: list[_Submitted], results: list[Appended], lease_until: float | None
    ) -> None:
        added = pending = 0
        taken: list[JournalEntry] = []
        for (event, future), result in zip(appends, results, strict=True):
            added += not result.duplicate
            if result.claimed:
                taken.append(self._claimed_entry(event, result, lease_until))
            else:
                pending += not result.duplicate
            if not future.done():
                future.set_result(result)
        self.accepted += added
        self._set_backlog(self.backlog + added)
        self._more = self._more or pending > 0
        self._take(taken)

    def _claimed_entry(
        self, event: NewEvent, result: Appended, lease_until: float | None
    ) -> JournalEntry:
        return JournalEntry(
            seq=result.seq,
            event=event,
            state=EntryState.CLAIMED,
            attempts=1,
            next_attempt_at=event.created_at,
            owner=self.owner,
            lease_until=lease_until,
        )

    async def _commit_marks(self) -> None:
        now = self.clock.time()
        done, self._done = self._done, []
        if done:
            try:
                finished = await self.journal.finish(self.owner, done, now)
            except BaseException:
                self._done[:0] = done  # marked at the next turn
                raise
            self._finished(done, finished)
        failed, self._failed = self._failed, []
        for index, (entry, error) in enumerate(failed):
            try:
                if entry.attempts >= self.config.max_attempts:
                    await self._park(entry, error, now)
                    self._in_flight.discard(entry.event_id)
                    continue
                delay = backoff_delay(
                    entry.attempts, self.config.retry_initial, self.config.retry_max, random.random
                )
                await self.journal.fail(self.owner, entry.event_id, error, now + delay)
            except BaseException:
                self._failed[:0] = failed[index:]  # recorded at the next turn
                raise
            self._in_flight.discard(entry.event_id)
            log.warning(
                "event_delivery_failed",
                event_id=entry.event_id,
                event_type=entry.event.event_type,
                attempt=entry.attempts,
                retry_in_s=round(delay, 3),
            )
            self._due_at = min(self._due_at or now + delay, now + delay)

    def _finished(self, done: list[str], finished: int) -> None:
        self._in_flight.difference_update(done)
        self._set_backlog(self.backlog - finished)

    async def _park(self, entry: JournalEntry, error: str, now: float) -> None:
        if not await self.journal.park(self.owner, entry.event_id, error, now):
            return
        self._set_backlog(self.backlog - 1, dead=self.stats.dead + 1)
        log.error(
            "event_dead",
            event_id=entry.event_id,
            event_type=entry.event.event_type,
            attempts=entry.attempts,
            error=error,
        )
        if self.alert is not None:
            try:
                await self.alert(
                    f"event {entry.event.event_type} {entry.event_id} failed {entry.attempts} "
                    f"times and was parked ({error}); see 'intentd events list'"
                )
            except Exception as err:  # an alert that cannot be sent must not stop the journal
                log.error("event_dead_alert_failed", event_id=entry.event_id, error=str(err))

    def _set_backlog(self, backlog: int, dead: int | None = None) -> None:
        stats = self.stats
        self.stats = JournalStats(
            backlog=max(0, backlog),
            oldest_at=stats.oldest_at,
            dead=stats.dead if dead is None else dead,
            next_due_at=stats.next_due_at,
        )

    def _publish(self, entry: JournalEntry) -> bool:
        event = entry.event
        try:
            self.bus.publish(
                event.publisher,
                event.event_type,
                event.data,
                channel_id=event.channel_id,
                user_id=event.user_id,
                parent_id=event.parent_id,
                source=event.source,
                attempt=entry.attempts,
                idempotency_key=event.event_id,
                on_done=partial(self._delivered, entry),
                event_id=event.event_id,
                timestamp=event.created_at,
            )
        except BusFullError:
            self._due_at = self.clock.time() + FULL_BUS_RETRY
            return False
        except BusClosedError:
            self._claiming = False
            return True  # stopping: the claim is released at shutdown
        if entry.attempts > 1:
            self.replayed += 1
        return True

    def _delivered(self, entry: JournalEntry, outcome: EventOutcome) -> None:
        if outcome.failures == 0:
            self._done.append(entry.event_id)
        else:
            self._failed.append(
                (
                    entry,
                    f"{outcome.failures} handler or intent failure(s) on attempt {entry.attempts}; "
                    "see handler_failed and intent_failed in the log",
                )
            )
        self._wake()

    # -- waiting ----------------------------------------------------------------------------

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _wake_idle(self) -> None:
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _sleep(self) -> None:
        now = self.clock.time()
        until = now + self.config.recheck_interval
        if self._due_at is not None:
            until = min(until, self._due_at)
        if self._in_flight:
            until = min(until, self._renew_at)
        self._wakeup = wakeup = asyncio.get_running_loop().create_future()
        handle = self.clock.call_at(until, self._due)
        try:
            await wakeup
        finally:
            handle.cancel()
            self._wakeup = None

    def _due(self) -> None:
        self._more = True  # look again: something is due, or the CLI retried a dead event
        self._wake()
