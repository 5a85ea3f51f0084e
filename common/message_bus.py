"""The message bus: events in, handlers fanned out, intents to the IntentProcessor.

Rules kept here:
- ``publish`` never blocks and never runs a handler: it checks the name, enqueues and returns the
  event id. A full queue is an error (BusFullError), not unbounded growth.
- One dispatcher delivers events in publish order, to every subscriber in subscription order.
- A handler that raises, times out, or returns something other than a list of intents is logged
  with role, event type and event id, counted, and reported to the failure hooks; the other
  handlers and the valid intents still run. A handler raising EventDataError refuses data it
  cannot act on: one ``event_data_rejected`` warning, counted, never reported to the failure hooks
  (so bad data from a sender cannot quarantine a role).
- The bus belongs to one event loop: publishing from another thread is an error.
- ``await bus.drain()`` returns when the queue is empty and every intent it produced has been
  processed (events published by those intents included).
- ``publish(..., on_done=callback)`` calls ``callback(outcome)`` once every subscriber of that
  event has run and their intents have been processed; ``outcome.ok`` says whether at least one
  handler ran and nothing failed. An event lost in a crash never calls it.
- A handler that returns None is logged once (``handler_returned_none``, a warning with its
  file:line and the fix); an event no role subscribes to is counted by type
  (``stats.unsubscribed``) and, unless the daemon owns its type, logged once per type at INFO
  (``event_unsubscribed``).
- ``publish(..., idempotency_key=key)`` gives the intents produced for that event the ids
  ``f"{key}:{role}:{index}"``, so publishing it again after a crash yields the same intents (the
  outbox and the audit log keep one of each). The journal replays an event with its own
  ``event_id`` as the key; timers use ``timer:<id>``.
"""

import asyncio
import dataclasses
import inspect
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from common.context import EventContext
from common.errors import BusClosedError, BusFullError, EventDataError, WrongThreadError
from common.events import check_event_type, is_daemon_event, seen_valid
from common.guard import ROLE_ERRORS, reraise_if_ours
from common.ids import new_id
from common.intent_processor import IntentProcessor
from common.intents import Intent, is_intent
from common.types import EventHandler

log = structlog.get_logger("intentd.bus")


class IntentSink(Protocol):
    """What the bus hands intents to (the IntentProcessor)."""

    async def process_intents(
        self, intents: list[Intent], role: str | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """One role's handler for one event type."""

    role: str
    event_type: str
    handler: EventHandler
    name: str


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A handler that raised, timed out or returned garbage."""

    role: str
    event_type: str
    event_id: str
    handler: str
    error: str


@dataclass
class BusStats:
    """Counters the bus keeps; the metrics endpoint reads them when scraped."""

    published: Counter[str] = field(default_factory=Counter)
    handled: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    timed_out: Counter[tuple[str, str]] = field(default_factory=Counter)
    blocked: Counter[tuple[str, str]] = field(default_factory=Counter)
    unsubscribed: Counter[str] = field(default_factory=Counter)
    rejected_data: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected_full: int = 0


_FAILED = object()  # an async handler's result when it raised or overran its budget
_REFUSED = object()  # an async handler's result when it raised EventDataError


def _owned(intents: list[Intent], event_id: str, key: str | None, role: str) -> list[Intent]:
    """Return ``intents`` with ``parent_id`` set to ``event_id``.

    An intent object that already belongs to another event (a module-level constant returned
    every time, or the same object twice in one list) is copied with a fresh id, so each
    delivery is carried out and traced on its own. With an idempotency ``key`` each intent's id
    is ``f"{key}:{role}:{index}"`` instead.
    """
    if key is not None:
        return [
            dataclasses.replace(intent, intent_id=f"{key}:{role}:{index}", parent_id=event_id)
            for index, intent in enumerate(intents)
        ]
    owned = []
    for intent in intents:
        if intent.parent_id is None:
            intent.parent_id = event_id
        else:
            intent = dataclasses.replace(
                intent, intent_id=new_id("int"), parent_id=event_id, created_at=intent.created_at
            )
        owned.append(intent)
    return owned


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What delivering one event came to: how many handlers ran and how many things failed."""

    handlers: int
    failures: int

    @property
    def ok(self) -> bool:
        """Return True when at least one handler ran and nothing failed."""
        return self.handlers > 0 and self.failures == 0


HandlerObserver = Callable[[Subscription, EventContext, float, str | None], None]


class MessageBus:
    """Fan events out to role handlers on the daemon's one event loop."""

    def __init__(
        self,
        intent_processor: IntentSink | None = None,
        *,
        max_queue: int = 10_000,
        handler_timeout: float = 1.0,
        block_threshold: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.intent_processor: IntentSink = (
            intent_processor if intent_processor is not None else IntentProcessor(message_bus=self)
        )
        self.max_queue = max_queue
        self.handler_timeout = handler_timeout
        self.block_threshold = block_threshold
        self._clock = clock
        self._queue: deque[tuple[Any, EventContext, Callable[[EventOutcome], None] | None]] = (
            deque()
        )
        self._subs: dict[str, tuple[Subscription, ...]] = {}
        self._thread_id = threading.get_ident()
        self._wakeup: asyncio.Future[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._busy = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._dispatcher_running = False
        self.stats = BusStats()
        self.failure_hooks: list[Callable[[HandlerFailure], None]] = []
        self.last_called: tuple[Subscription, float] | None = None  # and its perf_counter start
        self.observers: list[HandlerObserver] = []
        self._returned_none: set[tuple[str, str, str]] = set()  # (role, event type, handler)

    # -- wiring -----------------------------------------------------------------------------

    def set_intent_processor(self, processor: IntentSink) -> None:
        """Send the intents handlers return to ``processor``."""
        self.intent_processor = processor

    def subscribe(self, role_name: str, event_type: str, handler: EventHandler) -> None:
        """Call ``handler(event_data, context)`` for every ``event_type`` event."""
        check_event_type(event_type, f"role {role_name!r} subscribed to event type")
        if not callable(handler):
            raise TypeError(
                f"role {role_name!r} subscribed {handler!r} to {event_type}, which is not callable"
            )
        name = getattr(handler, "__qualname__", repr(handler))
        sub = Subscription(role_name, event_type, handler, name)
        self._subs[event_type] = (*self._subs.get(event_type, ()), sub)

    def unsubscribe_role(self, role_name: str) -> int:
        """Remove every subscription of ``role_name``; return how many there were."""
        removed = 0
        for event_type, subs in list(self._subs.items()):
            kept = tuple(s for s in subs if s.role != role_name)
            removed += len(subs) - len(kept)
            if kept:
                self._subs[event_type] = kept
            else:
                del self._subs[event_type]
        return removed

    def subscriptions(self, event_type: str | None = None) -> list[Subscription]:
        """Return the current subscriptions, for one event type or all."""
        if event_type is not None:
            return list(self._subs.get(event_type, ()))
        return [sub for subs in self._subs.values() for sub in subs]

    # -- publishing -------------------------------------------------------------------------

    def publish(
        self,
        publisher: str,
        event_type: str,
        message: Any = None,
        *,
        channel_id: str | None = None,
        user_id: str | None = None,
        parent_id: str | None = None,
        source: str | None = None,
        attempt: int = 1,
        idempotency_key: str | None = None,
        on_done: Callable[["EventOutcome"], None] | None = None,
        event_id: str | None = None,
        timestamp: float | None = None,
    ) -> str:
        """Enqueue an event and return its id; handlers run later, on the dispatcher.

        ``event_id`` and ``timestamp`` keep a stored event's own (the journal replays with them).
        """
        if threading.get_ident() != self._thread_id:
            raise WrongThreadError(
                f"MessageBus.publish({event_type!r}) was called from thread "
                f"{threading.current_thread().name!r}, not the event loop's thread; "
                "use loop.call_soon_threadsafe(bus.publish, ...)"
            )
        if not seen_valid(event_type):
            check_event_type(event_type, f"{publisher!r} published event type")
        if self._closed:
            raise BusClosedError(
                f"the message bus is stopping; event {event_type!r} from {publisher!r} "
                "was not accepted"
            )
        if len(self._queue) >= self.max_queue:
            self.stats.rejected_full += 1
            raise BusFullError(
                f"the message bus queue is full ({self.max_queue} events); event {event_type!r} "
                f"from {publisher!r} was not accepted; raise bus.max_queue or publish less often"
            )
        if isinstance(message, dict):
            channel_id = channel_id or message.get("channel_id")
            user_id = user_id or message.get("user_id")
        if event_id is None:
            event_id = new_id("evt")
        context = EventContext(
            event_id,
            event_type,
            source or publisher,
            self._clock() if timestamp is None else timestamp,
            channel_id,
            user_id,
            parent_id,
            attempt,
            idempotency_key,
        )
        self._queue.append((message, context, on_done))
        self.stats.published[event_type] += 1
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return event_id

    @property
    def queue_depth(self) -> int:
        """Return how many events wait for the dispatcher."""
        return len(self._queue)

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Accept events and, inside a running loop, start the dispatcher (stop with ``stop()``)."""
        self._closed = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self.run(), name="message-bus")

    async def stop(self) -> None:
        """Drain what is queued, refuse new events, and stop the dispatcher started by start()."""
        await self.drain()
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
            self._task = None

    def close(self) -> None:
        """Refuse new events from now on."""
        self._closed = True

    async def run(self) -> None:
        """Deliver queued events until cancelled; the supervisor owns this task."""
        loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._closed = False
        self._dispatcher_running = True
        try:
            while True:
                await self._dispatch_pending()
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
        finally:
            self._dispatcher_running = False
            self._wakeup = None
            self._busy = False
            self._wake_idle()

    async def drain(self) -> None:
        """Return once the queue is empty and every intent it produced has been processed."""
        running = self._dispatcher_running or (self._task is not None and not self._task.done())
        if not running:
            await self._dispatch_pending()
            return
        loop = asyncio.get_running_loop()
        while self._queue or self._busy:
            waiter = loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _dispatch_pending(self) -> None:
        # The hot path: kept flat (no coroutine per handler call) because every event pays for
        # each layer. Async handlers take the slower branch through _await_handler.
        queue = self._queue
        perf_counter = time.perf_counter
        self._busy = True
        try:
            while queue:
                data, context, on_done = queue.popleft()
                subs = self._subs.get(context.event_type, ())
                if not subs:
                    self._report_unsubscribed(context)
                failures = 0
                for sub in subs:
                    started = perf_counter()
                    self.last_called = (sub, started)
                    try:
                        result = sub.handler(data, context)
                    except EventDataError as err:
                        self._reject_data(sub, context, err)
                        continue
                    except ROLE_ERRORS as err:
                        reraise_if_ours(err)
                        raised = f"handler raised {type(err).__name__}: {err}"
                        self._finish(sub, context, started, raised, err)
                        failures += 1
                        continue
                    if perf_counter() - started > self.block_threshold:
                        self._report_block(sub, context, perf_counter() - started)
                    if type(result) is not list and inspect.isawaitable(result):
                        result = await self._await_handler(sub, context, started, result)
                        if result is _FAILED:
                            failures += 1
                            continue
                        if result is _REFUSED:
                            continue
                    if result is None:
                        self._report_none(sub, context)
                    intents, error = self._intents_from(result)
                    self._finish(sub, context, started, error, None)
                    failures += error is not None
                    if intents:
                        outcome = await self.intent_processor.process_intents(
                            _owned(intents, context.event_id, context.idempotency_key, sub.role),
                            role=sub.role,
                        )
                        failures += outcome["failed"]
                if on_done is not None:
                    self._report_done(on_done, context, EventOutcome(len(subs), failures))
        finally:
            self._busy = False
            self._wake_idle()

    async def _await_handler(
        self, sub: Subscription, context: EventContext, started: float, pending: Any
    ) -> Any:
        try:
            async with asyncio.timeout(self.handler_timeout):
                return await pending
        except TimeoutError:
            self.stats.timed_out[sub.role, sub.event_type] += 1
            error = f"handler exceeded its {self.handler_timeout} s budget and was cancelled"
            self._finish(sub, context, started, error, None)
        except EventDataError as err:
            self._reject_data(sub, context, err)
            return _REFUSED
        except ROLE_ERRORS as err:
            reraise_if_ours(err)
            error = f"handler raised {type(err).__name__}: {err}"
            self._finish(sub, context, started, error, err)
        return _FAILED

    def _finish(
        self,
        sub: Subscription,
        context: EventContext,
        started: float,
        error: str | None,
        exc: BaseException | None,
    ) -> None:
        if self.observers:
            elapsed = time.perf_counter() - started
            for observer in self.observers:
                observer(sub, context, elapsed, error)
        if error is None:
            self.stats.handled[sub.role, sub.event_type] += 1
        else:
            self._report_failure(sub, context, error, exc)

    @staticmethod
    def _intents_from(result: Any) -> tuple[list[Intent], str | None]:
        if type(result) is list:
            for item in result:
                if not is_intent(item):
                    break
            else:
                return result, None
        elif result is None:
            return [], None
        elif not isinstance(result, (list, tuple)):
            return [], (
                f"handler returned {type(result).__name__} {result!r:.80}; "
                "expected a list of intents"
            )
        intents = [item for item in result if isinstance(item, Intent)]
        if len(intents) != len(result):
            bad = next(item for item in result if not isinstance(item, Intent))
            return (
                intents,
                f"handler returned {bad!r:.80} in its list; expected only Intent objects",
            )
        return intents, None

    @staticmethod
    def _report_done(
        on_done: Callable[["EventOutcome"], None], context: EventContext, outcome: "EventOutcome"
    ) -> None:
        try:
            on_done(outcome)
        except Exception as err:
            log.error(
                "on_done_failed",
                event_type=context.event_type,
                event_id=context.event_id,
                error=str(err),
                exc_info=err,
            )

    def _report_failure(
        self, sub: Subscription, context: EventContext, error: str, exc: BaseException | None
    ) -> None:
        self.stats.failed[sub.role, sub.event_type] += 1
        log.error(
            "handler_failed",
            role=sub.role,
            event_type=sub.event_type,
            event_id=context.event_id,
            handler=sub.name,
            error=error,
            exc_info=exc,
        )
        failure = HandlerFailure(sub.role, sub.event_type, context.event_id, sub.name, error)
        for hook in self.failure_hooks:
            hook(failure)

    def _report_none(self, sub: Subscription, context: EventContext) -> None:
        key = (sub.role, sub.event_type, sub.name)
        if key in self._returned_none:
            return
        self._returned_none.add(key)
        code = getattr(sub.handler, "__code__", None)
        log.warning(
            "handler_returned_none",
            role=sub.role,
            event_type=sub.event_type,
            event_id=context.event_id,
            handler=sub.name,
            where=f"{code.co_filename}:{code.co_firstlineno}" if code is not None else None,
            fix="return a list of intents, [] when there is nothing to do",
        )

    def _report_unsubscribed(self, context: EventContext) -> None:
        unheard = self.stats.unsubscribed
        unheard[context.event_type] += 1
        # a tick or announcement of the daemon's own that no role takes is normal, not a mistake
        if unheard[context.event_type] == 1 and not is_daemon_event(context.event_type):
            log.info(
                "event_unsubscribed",
                event_type=context.event_type,
                event_id=context.event_id,
                source=context.source,
            )

    def _reject_data(self, sub: Subscription, context: EventContext, err: EventDataError) -> None:
        self.stats.rejected_data[sub.role, sub.event_type] += 1
        log.warning(
            "event_data_rejected",
            role=sub.role,
            event_type=sub.event_type,
            event_id=context.event_id,
            handler=sub.name,
            error=str(err),
        )

    def _report_block(self, sub: Subscription, context: EventContext, seconds: float) -> None:
        self.stats.blocked[sub.role, sub.event_type] += 1
        log.warning(
            "handler_blocked_loop",
            role=sub.role,
            event_type=sub.event_type,
            event_id=context.event_id,
            handler=sub.name,
            blocked_ms=round(seconds * 1000, 1),
            threshold_ms=round(self.block_threshold * 1000, 1),
        )
