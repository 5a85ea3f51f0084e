"""The timer service: durable deadlines that fire from the loop's scheduler, never from polling.

Rules kept here:
- A timer is stored (an absolute UTC deadline) before ``create`` returns its id.
- The armed timers wait in ``Deadlines`` (one heap, one ``clock.call_at`` handle), which wakes
  the service ``claim_ahead`` (20 ms) before the earliest. That wake-up claims every timer due in
  the next two ``claim_ahead`` in store steps of at most ``step_size`` timers (its attempt counted
  on disk), and each claimed timer gets its ``TIMER_EXPIRED`` from its own handle at its time, so
  the store's work is done before the deadline, not after it. Within ``claim_ahead`` of its
  deadline a timer counts as firing (``cancel`` refuses it). A timer is marked fired only once
  the bus reports that at least one handler ran and every intent produced for that event was
  carried out. Fired marks go in the step of the next wake-up when it is due within
  ``marks_wait`` (20 ms), else at once.
  A crash in between leaves it pending, so the next start fires it again with the next attempt
  number; its intents keep the same ids (``idempotency_key``), so the outbox and the audit log
  keep one copy.
- A delivery that failed (no handler, a handler error, a failed intent) is logged and retried,
  the delay doubling from ``timers.retry_initial`` to ``timers.retry_max``; after
  ``timers.alert_after_attempts`` attempts ``TIMER_DELIVERY_FAILING`` tells the admin channel,
  once, and the retries go on. A timer is never dropped.
- Timers fire by the wall clock: a wake-up before the earliest deadline (the clock was set back)
  only re-arms the handle, and ``reconcile`` fires armed timers more than ``late_tolerance`` past
  their time (the machine was suspended).
- At start every pending timer is re-armed; one that fell due while the daemon was down fires
  once, at once, with its real ``late_by_s``.
- ``reconcile`` compares the armed handles with the store: a safety net, not the firing path.
- Several instances may share one store: each arms every pending timer, and a firing
  first claims the timer in the store (``attempts`` + 1, a lease of ``cluster.lease`` seconds,
  renewed while the event is processed). Only the claimant publishes; the others look again when
  the lease would end, so an instance that dies mid-delivery is taken over, never duplicated.
- Store work runs in tasks of ``run()``'s TaskGroup; a step that fails (the database is away)
  is logged and the timer is tried again a moment later.
"""

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Iterable, Sequence
from enum import StrEnum
from functools import partial
from typing import Any

import structlog

from common.backoff import backoff_delay
from common.clock import Cancellable, Clock, utc_iso
from common.errors import BusClosedError, BusFullError, TimerError
from common.events import TIMER_DELIVERY_FAILING, TIMER_EXPIRED
from common.ids import new_id
from common.message_bus import EventOutcome, MessageBus
from common.role_api import MAX_TIMER_SECONDS
from common.states import Transitions
from supervisor.config import TimersConfig
from supervisor.scheduling.bus_retry import RETRY_DELAY, try_publish
from supervisor.scheduling.deadlines import Deadlines
from supervisor.store.base import Timer, TimerBackend

log = structlog.get_logger("intentd.timers")

__all__ = ["TIMER_STATES", "Timer", "TimerService", "TimerState"]


class TimerState(StrEnum):
    """A stored timer's states (the values the ``timers.state`` column holds)."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


TIMER_STATES = Transitions(
    "timer",
    {
        TimerState.PENDING: frozenset({TimerState.FIRED, TimerState.CANCELLED}),
        TimerState.FIRED: frozenset(),
        TimerState.CANCELLED: frozenset(),
    },
)


Delivery = tuple[Timer, float, EventOutcome]  # a claimed timer, when it fired, what the bus said


def _no_jitter() -> float:  # timer retries wait the full doubled delay
    return 1.0


class TimerService:
    """Create, cancel, list and fire durable timers on the daemon's loop."""

    max_duration = MAX_TIMER_SECONDS
    late_tolerance = 1.0  # seconds past due_at before reconcile fires an armed timer itself
    claim_ahead = 0.02  # seconds before its deadline a timer is claimed, to fire on time
    marks_wait = 0.02  # seconds a fired mark may wait to go with the next wake-up's claim
    step_size = 16  # claims and marks per store step (each step holds the loop)

    def __init__(
        self,
        backend: TimerBackend,
        bus: MessageBus,
        clock: Clock,
        config: TimersConfig | None = None,
        *,
        on_fired: Callable[[float], None] | None = None,
        arms: bool = True,
        instance: str = "local",
        lease: float = 5.0,
    ) -> None:
        """``arms=False`` only stores timers, for a process that does not run them (the CLI)."""
        self.backend = backend
        self.bus = bus
        self.clock = clock
        self.on_fired = on_fired  # called with each published expiry's lateness in seconds
        self.config = config or TimersConfig()
        self.instance = instance
        self.lease = lease
        self.pending = 0  # pending timers in the store, as last counted
        self._armed = Deadlines(clock, self._woken, lead=self.claim_ahead)
        self._held: dict[str, Cancellable] = {}  # claimed ahead: each one's handle at its deadline
        self._arming: list[set[str]] = []  # ids armed while a reconcile reads the store
        self._creating: set[str] = set()
        self._in_flight: dict[str, float] = {}  # each claimed timer and when its lease ends
        self._due: dict[str, float] = {}  # woken timers the next step claims, and when they fire
        self._deliveries: list[Delivery] = []  # finished deliveries the next step records
        self._advancing = False  # a step runs; it takes what is added meanwhile
        self._stopped = False
        self._watching = False
        self._group: asyncio.TaskGroup | None = None
        self._waiting: list[Coroutine[Any, Any, None]] = []  # steps due before run() started
        self._steps = 0  # store steps waiting or running
        self._settled_waiters: list[asyncio.Future[None]] = []
        self._holding = asyncio.Event()  # set while timers are in flight: their leases need renewal
        self.arms = arms

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> int:
        """Arm every pending timer; return how many."""
        self._stopped = False
        if self.arms:
            await self.backend.recover()
        if self.arms and not self._watching:
            self.backend.watch(self._added_elsewhere, self.sweep)
            self._watching = True
        pending = await self.backend.pending()
        if self.arms:
            self._armed.arm_all(pending)
        self.pending = len(pending)
        log.info("timers_armed", count=len(self._armed))
        return len(self._armed)

    def stop(self) -> None:
        """Disarm every timer (they stay pending on disk)."""
        self._stopped = True
        self._armed.clear()
        for handle in self._held.values():
            handle.cancel()  # claimed, not yet published: the claims end with their leases
        self._held.clear()
        self._wake_moved()
        for step in self._waiting:
            step.close()  # never started: it counts as done
        self._step_done(len(self._waiting))
        self._waiting.clear()

    async def settled(self) -> None:
        """Return once no store step (a firing, a delivery record) waits or runs."""
        if self._deliveries:
            self._kick()  # marks waiting for the next claim go now
        loop = asyncio.get_running_loop()
        while self._steps:
            waiter = loop.create_future()
            self._settled_waiters.append(waiter)
            await waiter

    async def run(self) -> None:
        """Carry out firings until cancelled, renewing the leases of the timers in flight."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for step in self._waiting:
                    group.create_task(step)
                self._waiting.clear()
                while True:
                    await self._holding.wait()
                    await self.clock.sleep_until(self.clock.time() + self.lease / 3)
                    if self._in_flight:
                        self._renew_ending(group)
                    else:
                        self._holding.clear()
        finally:
            self._group = None

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        self._steps += 1
        counted = self._counted(step)
        if self._group is not None:
            self._group.create_task(counted)
        else:
            self._waiting.append(counted)

    async def _counted(self, step: Coroutine[Any, Any, None]) -> None:
        try:
            await step
        finally:
            self._step_done(1)

    def _step_done(self, count: int) -> None:
        self._steps -= count
        if not self._steps:
            waiters, self._settled_waiters = self._settled_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _renew_ending(self, group: asyncio.TaskGroup) -> None:
        """Renew the leases taken more than a sixth of a lease ago; a newer one still has over
        half a lease left at the next renewal."""
        now = self.clock.time()
        older = now + self.lease - self.lease / 6
        ending = sorted(tid for tid, ends in self._in_flight.items() if ends <= older)
        if ending:
            until = now + self.lease
            for timer_id in ending:
                self._in_flight[timer_id] = until
            group.create_task(self._renew(ending, until))

    async def _renew(self, timer_ids: list[str], until: float) -> None:
        try:
            await self.backend.renew(timer_ids, self.instance, until)
        except Exception as err:  # the next renewal (or a takeover) follows
            log.warning("timer_lease_renew_failed", count=len(timer_ids), error=str(err))

    # -- the service roles use --------------------------------------------------------------

    async def create(
        self,
        *,
        deadline: float | None = None,
        duration: float | None = None,
        label: str = "",
        channel_id: str | None = None,
        user_id: str | None = None,
        data: dict[str, Any] | None = None,
        original_request: str | None = None,
        role: str | None = None,
    ) -> str:
        """Store a timer due at ``deadline`` or after ``duration`` seconds; return its id."""
        now = self.clock.time()
        if (deadline is None) == (duration is None):
            raise TimerError(
                f"timer {label!r}: give exactly one of deadline or duration, got "
                f"deadline={deadline!r} and duration={duration!r}"
            )
        due_at = deadline if deadline is not None else now + duration  # type: ignore[operator]
        if not now < due_at <= now + self.max_duration:
            raise TimerError(
                f"timer {label!r} would be due at {utc_iso(due_at)}; a timer must be due after now "
                f"({utc_iso(now)}) and within {int(self.max_duration // 86400)} days"
            )
        timer_id = new_id("tmr")
        timer = Timer(
            timer_id=timer_id,
            label=label,
            due_at=due_at,
            created_at=now,
            channel_id=channel_id,
            user_id=user_id,
            role=role,
            original_request=original_request,
            data=data or {},
            state="pending",
            attempts=0,
            fired_at=None,
            cancelled_at=None,
        )
        self._creating.add(timer_id)  # its notification may come back before add() returns
        try:
            await self.backend.add(timer)
        finally:
            self._creating.discard(timer_id)
        self.pending += 1
        self._arm(timer_id, due_at)
        return timer_id

    async def cancel(self, timer_id: str) -> Timer:
        """Cancel a pending timer and return it; an unknown, fired or cancelled one is an error."""
        timer = await self.get(timer_id)
        if timer is None:
            raise TimerError(
                f"no timer has id {timer_id!r}; list the pending ones with list_timers"
            )
        why = {
            TimerState.PENDING: "it is firing now (its deadline is at most moments away)",
            TimerState.FIRED: "it has already fired",
            TimerState.CANCELLED: "it has already been cancelled",
        }[TimerState(timer.state)]
        already = f"timer {timer_id!r} ({timer.label!r}) cannot be cancelled: {why}"
        if not TIMER_STATES.allows(timer.state, TimerState.CANCELLED) or (
            timer_id in self._in_flight
        ):
            raise TimerError(already)
        if not await self.backend.cancel(timer_id, self.clock.time()):
            raise TimerError(  # another instance is firing it now, or it changed meanwhile
                f"timer {timer_id!r} ({timer.label!r}) cannot be cancelled: it is firing now "
                "or has fired; list_timers shows what is still pending"
            )
        self.pending -= 1
        if timer_id in self._armed:
            self._armed.disarm([timer_id])
            self._wake_moved()
        log.info("timer_cancelled", timer_id=timer_id)
        return await self.get(timer_id)  # type: ignore[return-value]

    async def get(self, timer_id: str) -> Timer | None:
        """Return the timer with ``timer_id``, or None."""
        return await self.backend.get(timer_id)

    async def list(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> list[Timer]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        return await self.backend.query(
            include_done=include_done, channel_id=channel_id, user_id=user_id
        )

    def pending_count(self) -> int:
        """Return how many timers were pending in the store when last counted."""
        return self.pending

    async def reconcile(self) -> dict[str, int]:
        """Fire armed timers overdue by the wall clock, arm lost ones, drop stale handles."""
        armed_meanwhile: set[str] = set()  # newer than what is read below: not stale
        self._arming.append(armed_meanwhile)
        try:
            rows = await self.backend.pending()
        finally:
            self._arming.remove(armed_meanwhile)
        added_meanwhile = sum(1 for tid in armed_meanwhile if tid not in rows)
        self.pending = pending = len(rows) + added_meanwhile
        if not self.arms:  # the daemon that runs the timers arms them
            return {"pending": pending, "rearmed": 0, "dropped": 0, "overdue": 0}
        overdue = self._fire_overdue(rows)
        if pending == len(self._armed) + len(self._in_flight):
            return {"pending": pending, "rearmed": 0, "dropped": 0, "overdue": overdue}
        missing = [tid for tid in rows if tid not in self._armed and tid not in self._in_flight]
        stale = [tid for tid in self._armed if tid not in rows and tid not in armed_meanwhile]
        for timer_id in missing:
            self._arm(timer_id, rows[timer_id])
        self._armed.disarm(stale)
        self._wake_moved()
        log.warning("timers_reconciled", rearmed=len(missing), dropped=len(stale))
        return {
            "pending": pending, "rearmed": len(missing), "dropped": len(stale), "overdue": overdue
        }  # fmt: skip

    def _fire_overdue(self, rows: dict[str, float]) -> int:
        """Fire armed timers whose handle should have fired by the wall clock; return how many."""
        late = self.clock.time() - self.late_tolerance
        armed = self._armed
        overdue = {
            tid: when
            for tid, when in rows.items()
            if when <= late and (armed_at := armed.get(tid)) is not None and armed_at <= late
        }
        if overdue:
            self._armed.disarm(overdue)
            self._fire(overdue)
            log.warning("timers_overdue_fired", count=len(overdue))
        return len(overdue)

    # -- firing -----------------------------------------------------------------------------

    def _added_elsewhere(self, timer_id: str, due_at: float) -> None:
        known = timer_id in self._creating or timer_id in self._armed or timer_id in self._in_flight
        if self._stopped or known:
            return  # our own timer (its notification comes back to us too), or stopping
        self.pending += 1
        self._arm(timer_id, due_at)

    def sweep(self) -> None:
        """Reconcile in a step of ``run()``: the safety net a clock callback can call."""
        if not self._stopped:
            self._spawn(self._reconcile_step())

    async def _reconcile_step(self) -> None:
        try:
            await self.reconcile()
        except Exception as err:  # the next sweep tries again
            log.warning("timers_reconcile_failed", error=str(err))

    def _arm(self, timer_id: str, when: float) -> None:
        if not self.arms:
            return
        self._armed.arm(timer_id, when)
        for armed_meanwhile in self._arming:
            armed_meanwhile.add(timer_id)

    def _woken(self, due: dict[str, float]) -> None:
        if due:
            self._fire(due)
        else:  # a wake-up before the deadline (the clock went back) re-armed only
            self._wake_moved()

    def _wake_moved(self) -> None:
        """The next wake-up is later or gone: fired marks waiting for it go now."""
        if self._deliveries and not self._soon():
            self._kick()

    def _fire(self, due: dict[str, float]) -> None:
        """Claim each timer in ``due`` now, to publish it at its time (the value)."""
        ends = self.clock.time() + self.lease  # no later than the claim's own lease end
        self._in_flight.update(dict.fromkeys(due, ends))  # so reconcile does not arm them
        self._holding.set()
        self._due.update(due)
        self._kick()

    def _landed(self, timer_ids: Iterable[str]) -> None:
        """No longer in flight: delivered and recorded, given up, or left to be armed again."""
        for timer_id in timer_ids:
            self._in_flight.pop(timer_id, None)

    def _retry(self, timer_ids: Sequence[str], when: float) -> None:
        self._landed(timer_ids)
        if not self._stopped:
            for timer_id in timer_ids:
                self._arm(timer_id, when)

    def _soon(self) -> bool:
        """Whether the next wake-up is within ``marks_wait`` seconds of now, either way (one
        overdue by more is not coming soon: the clock was changed)."""
        wake = self._armed.next_wake()
        return wake is not None and abs(wake - self.clock.time()) <= self.marks_wait

    def _kick(self) -> None:
        if not self._advancing:
            self._advancing = True
            self._spawn(self._advance_steps())

    async def _advance_steps(self) -> None:
        """Claim the woken timers and record the finished deliveries, at most ``step_size`` of
        each per store step, until none are left; the loop runs between steps, so a held timer
        due meanwhile fires on time."""
        size = self.step_size
        try:
            while self._due or self._deliveries:
                due = dict(itertools.islice(self._due.items(), size))
                for timer_id in due:
                    del self._due[timer_id]
                finished, self._deliveries = self._deliveries[:size], self._deliveries[size:]
                await self._advance(due, finished)
                if self._due or self._deliveries:
                    await asyncio.sleep(0)
        finally:
            self._advancing = False

    async def _advance(self, woken: dict[str, float], finished: Sequence[Delivery]) -> None:
        now = self.clock.time()
        due = self._room_for(list(woken), now)
        fired = [(timer.timer_id, fired_at) for timer, fired_at, outcome in finished if outcome.ok]
        try:
            try:
                for timer, _, outcome in finished:
                    if outcome.ok:
                        TIMER_STATES.check(timer.timer_id, timer.state, TimerState.FIRED)
                marked, claimed, waiting = await self.backend.advance(
                    fired, due, self.instance, self._armed.horizon(now), now + self.lease
                )
            except Exception as err:  # the store is away or failing
                self._not_advanced(due, fired, err)
                marked, claimed, waiting = 0, [], {}
            self.pending -= marked
            if len(claimed) < len(due):
                self._not_claimed(due, claimed, waiting, self._armed.horizon(now))
            for timer in claimed:
                self._hold(timer, woken[timer.timer_id])
            for timer, _, outcome in finished:
                if not outcome.ok:
                    try:
                        await self._retry_failed(timer, outcome)
                    except Exception as err:  # its lease ends and it fires again
                        log.error("timer_delivery_not_recorded", timer_ids=[timer.timer_id],
                                  error=str(err))  # fmt: skip
        finally:
            self._landed(timer.timer_id for timer, _, _ in finished)

    def _room_for(self, due: Sequence[str], now: float) -> Sequence[str]:
        """Return what of ``due`` the bus can take now; the rest is tried again in a moment."""
        room = max(0, self.bus.max_queue - self.bus.queue_depth)
        if room < len(due):
            deferred, due = due[room:], due[:room]
            log.warning("publish_deferred", count=len(deferred), retry_in_s=RETRY_DELAY)
            self._retry(deferred, now + RETRY_DELAY)
        return due

    def _not_advanced(
        self, due: Sequence[str], fired: Sequence[tuple[str, float]], err: Exception
    ) -> None:
        if due:  # try the claims again in a moment
            log.error("timer_fire_failed", timer_ids=due, error=str(err), retry_in_s=RETRY_DELAY)
            self._retry(due, self.clock.time() + RETRY_DELAY)
        if fired:  # the leases end and the timers fire again, effects kept once
            log.error("timer_delivery_not_recorded", timer_ids=[tid for tid, _ in fired],
                      error=str(err))  # fmt: skip

    def _not_claimed(
        self,
        timer_ids: Sequence[str],
        claimed: Sequence[Timer],
        waiting: dict[str, float],
        now: float,
    ) -> None:
        """Arm again the timers another instance holds or that are not due by the store's
        deadline; forget the ones no longer pending."""
        taken = {timer.timer_id for timer in claimed}
        for timer_id in timer_ids:
            if timer_id in taken:
                continue
            self._landed([timer_id])
            when = waiting.get(timer_id)
            if when is not None and not self._stopped:
                self._arm(timer_id, when if when > now else now + RETRY_DELAY)

    def _hold(self, timer: Timer, when: float) -> None:
        """Publish a claimed timer at ``when``, the time it was armed for (at once if past)."""
        now = self.clock.time()
        if when <= now:
            self._publish_or_release(timer, now)
        else:
            self._held[timer.timer_id] = self.clock.call_at(when, partial(self._held_due, timer))

    def _held_due(self, timer: Timer) -> None:
        del self._held[timer.timer_id]
        self._publish_or_release(timer, self.clock.time())

    def _publish_or_release(self, timer: Timer, fired_at: float) -> None:
        if not self._publish(timer, fired_at):
            self._retry([timer.timer_id], fired_at + RETRY_DELAY)
            self._spawn(self._release(timer.timer_id, fired_at))

    async def _release(self, timer_id: str, not_before: float) -> None:
        try:
            await self.backend.release(timer_id, self.instance, not_before)
        except Exception as err:  # its lease ends on its own; the retry waits for that
            log.warning("timer_release_failed", timer_id=timer_id, error=str(err))

    def _publish(self, timer: Timer, fired_at: float) -> bool:
        attempt = timer.attempts
        late_by = max(0.0, fired_at - timer.due_at)
        data = {
            "timer_id": timer.timer_id,
            "label": timer.label,
            "original_request": timer.original_request,
            "channel_id": timer.channel_id,
            "user_id": timer.user_id,
            "due_at": timer.due_at,
            "fired_at": fired_at,
            "late_by_s": late_by,
            "attempt": attempt,
            "data": timer.data,
        }
        publish = partial(
            self.bus.publish,
            "timers",
            TIMER_EXPIRED,
            data,
            source="timers",
            attempt=attempt,
            idempotency_key=f"timer:{timer.timer_id}",
            on_done=partial(self._delivered, timer, fired_at),
        )
        try:
            published = try_publish(publish, timer_id=timer.timer_id)
        except BusClosedError:
            published = False  # the daemon is stopping; the timer stays pending for the next start
        if published and self.on_fired is not None:
            self.on_fired(late_by)
        return published

    def _delivered(self, timer: Timer, fired_at: float, outcome: EventOutcome) -> None:
        self._deliveries.append((timer, fired_at, outcome))
        if not self._soon():  # else the marks go with that wake-up's claim
            self._kick()

    async def _retry_failed(self, timer: Timer, outcome: EventOutcome) -> None:
        attempt = timer.attempts
        retry_in = backoff_delay(
            attempt, self.config.retry_initial, self.config.retry_max, random=_no_jitter
        )
        log.warning(
            "timer_delivery_failed",
            timer_id=timer.timer_id,
            label=timer.label,
            attempt=attempt,
            handlers=outcome.handlers,
            failures=outcome.failures,
            retry_in_s=retry_in,
        )
        retry_at = self.clock.time() + retry_in
        await self.backend.release(timer.timer_id, self.instance, retry_at)
        if attempt == self.config.alert_after_attempts:
            self._alert(timer, attempt)
        if not self._stopped:
            self._arm(timer.timer_id, retry_at)

    def _alert(self, timer: Timer, attempts: int) -> None:
        data = {
            "timer_id": timer.timer_id,
            "label": timer.label,
            "due": utc_iso(timer.due_at),
            "attempts": attempts,
        }
        try:
            self.bus.publish("timers", TIMER_DELIVERY_FAILING, data, source="timers")
        except (BusClosedError, BusFullError) as err:
            log.error("timer_alert_not_sent", timer_id=timer.timer_id, error=str(err))
