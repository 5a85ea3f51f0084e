"""The durable outbox: notifications for remote channels are stored first, then delivered.

Rules kept here:
- ``enqueue`` commits the notification before it returns, so a NotificationIntent counts as
  processed only once its row is on disk. The intent id is the idempotency key: enqueuing the
  same intent twice stores it once.
- One lane per channel (``slack:C0123``, threads included) delivers that channel's entries in
  order, one part of a split message at a time, at most one post per ``per_channel_rate``
  seconds. Lanes of different channels run side by side, so a slow channel delays only itself.
- Before each request the row is marked ``unsure``; only a delivered part clears it. A row still
  unsure (the connection dropped mid-request, the daemon died, or the check itself failed) makes
  the channel check what was posted since the entry was stored before it posts again.
- Failures wait ``backoff_initial * 2**(attempt-1)`` seconds (capped at ``backoff_max``, with
  jitter) or Slack's ``Retry-After``; permanent errors, and transient ones after
  ``max_attempts``, become dead letters: kept, listed and retried by ``intentd dead-letters``,
  announced once by NOTIFICATION_DEAD_LETTERED and one alert (never an alert about an alert).
  An entry whose channel kind is no longer configured is dead-lettered at once.
- An attempt or alert that raises anything else is logged with the entry's id; the lane waits
  its backoff and carries on, so one bad entry never stops the daemon.
- Several instances may share the store: a lane is claimed (``cluster.lease`` seconds, renewed
  before each attempt) by one instance at a time, so a channel's posts keep their order; a lane
  another instance holds is looked at again when its lease would end.
"""

import asyncio
import random as random_module
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from common.backoff import backoff_delay
from common.clock import Clock
from common.errors import BusClosedError, BusFullError, DeliveryError, IntentdError
from common.events import NOTIFICATION_DEAD_LETTERED
from common.intents import NotificationIntent
from common.states import Transitions
from supervisor.config import OutboxConfig
from supervisor.store.base import NewNotification, OutboxBackend, OutboxEntry

__all__ = ["OUTBOX_STATES", "Outbox", "OutboxEntry", "OutboxState", "OutboxStats", "alert_text"]

log = structlog.get_logger("intentd.outbox")


class DurableChannel(Protocol):
    """A channel whose notifications go through the outbox (Slack)."""

    durable: bool

    def split(self, text: str) -> list[str]:
        """Return ``text`` as the parts to post, each within the channel's limit."""
        ...

    async def post(self, target: str, text: str, key: str, *, check_since: float | None) -> str:
        """Post one part; raise DeliveryError.

        With ``check_since`` (a time before the part's first attempt) first look for a message
        posted since then under ``key`` and return it instead of posting again.
        """
        ...


@dataclass
class OutboxStats:
    """Counters the ops endpoints read: entries waiting, delivered, retried and dead-lettered."""

    depth: int = 0
    delivered: int = 0
    retries: int = 0
    dead_letters: int = 0


def alert_text(entry: OutboxEntry) -> str:
    """Return the admin alert for a dead letter: what, where, why, and how to replay it."""
    return (
        f"intentd could not deliver notification {entry.id} to {entry.address} after "
        f"{entry.attempts} attempt(s): {entry.last_error}. Replay it with "
        f"`intentd dead-letters retry {entry.id}`."
    )


class OutboxState(StrEnum):
    """A stored notification's states (the values the ``outbox.state`` column holds)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


OUTBOX_STATES = Transitions(
    "notification",
    {
        OutboxState.PENDING: frozenset({OutboxState.DELIVERED, OutboxState.DEAD}),
        OutboxState.DELIVERED: frozenset(),
        OutboxState.DEAD: frozenset({OutboxState.PENDING}),  # retried from the CLI
    },
)


class Outbox:
    """Store notifications for durable channels and deliver them from per-channel lanes."""

    def __init__(
        self,
        backend: OutboxBackend,
        channels: Mapping[str, Any],
        clock: Clock,
        config: OutboxConfig | None = None,
        *,
        bus: Any = None,
        alert: Callable[[OutboxEntry], Awaitable[Any]] | None = None,
        random: Callable[[], float] = random_module.random,
        owner: str = "local",
        lease: float = 5.0,
    ) -> None:
        """``owner`` names this process's lane claims, held for ``lease`` seconds."""
        self.backend = backend
        self.channels = channels
        self.clock = clock
        self.config = config or OutboxConfig()
        self.bus = bus
        self.alert = alert
        self.random = random
        self.stats = OutboxStats()
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._next_slot: dict[str, float] = {}
        self._sleeping = 0
        self._wakeup: asyncio.Event | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.owner = owner
        self.lease = lease
        self._dead = 0  # dead letters kept, as last counted
        backend.watch(self.wake)

    # -- storing ----------------------------------------------------------------------------

    async def enqueue(
        self, kind: str, target: str, text: str, intent: NotificationIntent, *, alert: bool = False
    ) -> int:
        """Store a notification for ``kind:target`` (committed on return); return its id."""
        note = NewNotification(
            key=intent.intent_id,
            kind=kind,
            target=target,
            lane=f"{kind}:{target.partition('/')[0]}",
            text=text,
            priority=intent.priority,
            user_id=intent.user_id,
            parent_id=intent.parent_id,
            alert=alert,
            created_at=self.clock.time(),
        )
        entry_id, inserted = await self.backend.enqueue(note)
        if inserted:
            self.stats.depth += 1
            log.info("notification_queued", outbox_id=entry_id, channel=f"{kind}:{target}")
            self.wake()
        return int(entry_id)

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """Return the entry with ``entry_id``, or None."""
        return await self.backend.get(entry_id)

    async def retry(self, ids: list[int] | None = None) -> list[int]:
        """Put dead letters (all, or ``ids``) back in line and wake the worker."""
        found = await self.backend.retry_dead(ids, self.clock.time())
        self.stats.depth = await self.backend.count("pending")
        self._dead = await self.backend.count("dead")
        self.wake()
        return found

    def wake(self) -> None:
        """Make the worker look for pending entries now."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- delivering -------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver pending entries until cancelled (resuming what a previous run left)."""
        self._wakeup = wakeup = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as lanes:
                while True:
                    wakeup.clear()
                    try:
                        self.stats.depth = await self.backend.count("pending")
                        self._dead = await self.backend.count("dead")
                        pending = await self.backend.pending_lanes()
                    except Exception as err:  # the store is away: look again at the recheck
                        log.error("outbox_scan_failed", error=str(err))
                        pending = []
                    for lane in pending:
                        if lane not in self._lanes:
                            self._lanes[lane] = lanes.create_task(
                                self._run_lane(lane), name=f"outbox {lane}"
                            )
                    recheck = self.clock.call_at(
                        self.clock.time() + self.config.recheck_interval, wakeup.set
                    )
                    self._notify()
                    try:
                        await wakeup.wait()
                    finally:
                        recheck.cancel()
        finally:
            self._wakeup = None
            self._notify()

    async def wait_idle(self) -> None:
        """Return once every lane waits for a later time or is done (for tests and benches)."""
        loop = asyncio.get_running_loop()
        while not self._idle():
            waiter = loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def _idle(self) -> bool:
        wakeup = self._wakeup
        return wakeup is not None and not wakeup.is_set() and self._sleeping == len(self._lanes)

    def _notify(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run_lane(self, lane: str) -> None:
        try:
            while True:
                now = self.clock.time()
                try:
                    mine = await self.backend.claim_lane(lane, self.owner, now, now + self.lease)
                    entry = await self.backend.head(lane) if mine else None
                except Exception as err:  # the store is away: try again after a backoff
                    log.error("outbox_lane_read_failed", lane=lane, error=str(err))
                    mine, entry = False, None
                if not mine:
                    # Another instance delivers this lane (or the store is away): look again
                    # when its lease would end.
                    self._sleeping += 1
                    self._notify()
                    try:
                        await self.clock.sleep_until(now + self.lease)
                    finally:
                        self._sleeping -= 1
                    continue
                if entry is None:
                    break
                when = max(entry.next_attempt_at, self._next_slot.get(lane, 0.0))
                if when > self.clock.time():
                    self._sleeping += 1
                    self._notify()
                    try:
                        await self.clock.sleep_until(when)
                    finally:
                        self._sleeping -= 1
                    continue  # the head may have changed while this lane slept
                try:
                    await self._attempt(entry)
                except Exception as err:  # one bad entry or a store hiccup must not end the lane
                    delay = self.backoff(entry.attempts + 1)
                    # Held in memory: the store itself may be what failed.
                    self._next_slot[lane] = self.clock.time() + delay
                    log.error(
                        "notification_attempt_crashed",
                        outbox_id=entry.id,
                        channel=entry.address,
                        delay_s=round(delay, 3),
                        exc_info=err,
                    )
            await self.backend.release_lane(lane, self.owner)
        finally:
            del self._lanes[lane]
            self._notify()

    async def _attempt(self, entry: OutboxEntry) -> None:
        now = self.clock.time()
        channel = self.channels.get(entry.kind)
        if channel is None:
            reason = (
                f"no channel of kind {entry.kind!r} is configured; configure it "
                f"({entry.kind}.enabled: true) and run `intentd dead-letters retry {entry.id}`"
            )
            await self._failed(entry, entry.attempts, DeliveryError(reason, permanent=True))
            return
        parts = channel.split(entry.text)
        attempt = entry.attempts + 1
        # On disk before the request: if we never see the answer, the next try checks first.
        await self._update(entry.id, attempts=attempt, unsure=1)
        self._next_slot[entry.lane] = now + self.config.per_channel_rate
        index = entry.parts_sent
        try:
            await channel.post(
                entry.target,
                parts[index],
                f"{entry.key}#{index}",
                check_since=entry.created_at if entry.unsure else None,
            )
        except DeliveryError as err:
            await self._failed(entry, attempt, err)
            return
        except Exception as err:  # a bug in a channel must not stop the lane
            log.error("notification_delivery_crashed", outbox_id=entry.id, exc_info=err)
            await self._failed(entry, attempt, DeliveryError(repr(err), unknown=True))
            return
        done = index + 1 == len(parts)
        await self._update(
            entry.id,
            parts_sent=index + 1,
            attempts=0,
            unsure=0,
            last_error=None,
            **(
                {
                    "state": OUTBOX_STATES.check(entry.id, entry.state, OutboxState.DELIVERED),
                    "finished_at": self.clock.time(),
                }
                if done
                else {}
            ),
        )
        if done:
            self.stats.depth -= 1
            self.stats.delivered += 1
            log.info(
                "notification_delivered",
                outbox_id=entry.id,
                channel=entry.address,
                parts=len(parts),
                attempts=attempt,
            )

    async def _failed(self, entry: OutboxEntry, attempt: int, err: DeliveryError) -> None:
        now = self.clock.time()
        # Still unsure unless this attempt's check completed: a failed check (429, 5xx) leaves an
        # earlier post's outcome unknown, and the next attempt must check again before posting.
        unsure = int(err.unknown or entry.unsure)
        if err.permanent or attempt >= self.config.max_attempts:
            await self._update(
                entry.id,
                state=OUTBOX_STATES.check(entry.id, entry.state, OutboxState.DEAD),
                finished_at=now,
                last_error=str(err),
                unsure=unsure,
            )
            await self._dead_lettered(await self.get(entry.id) or entry)
            return
        if err.retry_after is not None:
            delay = err.retry_after
            self._next_slot[entry.lane] = max(self._next_slot.get(entry.lane, 0.0), now + delay)
        else:
            delay = self.backoff(attempt)
        await self._update(
            entry.id, next_attempt_at=now + delay, last_error=str(err), unsure=unsure
        )
        self.stats.retries += 1
        log.warning(
            "notification_retry",
            outbox_id=entry.id,
            channel=entry.address,
            attempt=attempt,
            delay_s=round(delay, 3),
            error=str(err),
        )

    def backoff(self, attempt: int) -> float:
        """Return the wait after failed ``attempt``: doubling, capped, jittered to 50-100 %."""
        cfg = self.config
        return backoff_delay(attempt, cfg.backoff_initial, cfg.backoff_max, self.random)

    async def _dead_lettered(self, entry: OutboxEntry) -> None:
        self.stats.depth -= 1
        self.stats.dead_letters += 1
        self._dead += 1
        log.error(
            "notification_dead_lettered",
            outbox_id=entry.id,
            channel=entry.address,
            attempts=entry.attempts,
            error=entry.last_error,
            alert=entry.alert,
        )
        if self.bus is not None:
            data = {
                "outbox_id": entry.id,
                "channel": entry.address,
                "error": entry.last_error,
                "text": entry.text,
                "user_id": entry.user_id,
            }
            try:
                self.bus.publish(
                    "outbox",
                    NOTIFICATION_DEAD_LETTERED,
                    data,
                    source="outbox",
                    parent_id=entry.parent_id,
                )
            except (BusClosedError, BusFullError) as err:
                log.warning("dead_letter_event_dropped", outbox_id=entry.id, error=str(err))
        if entry.alert or self.alert is None:
            return  # an alert that cannot be delivered raises no alert of its own
        try:
            await self.alert(entry)
        except Exception as err:  # a broken alert path must not stop the lane
            log.error(
                "dead_letter_alert_failed",
                outbox_id=entry.id,
                error=str(err),
                exc_info=not isinstance(err, IntentdError),
            )

    # -- the table --------------------------------------------------------------------------

    def dead_letter_count(self) -> int:
        """Return how many dead letters are kept (inspectable and replayable), as last counted."""
        return self._dead

    async def _update(self, entry_id: int, **values: Any) -> None:
        await self.backend.update(entry_id, values)
