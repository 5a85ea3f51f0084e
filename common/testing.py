"""The test kit for role authors: drive one role file by hand, with services that record.

``RoleHarness(path)`` loads a role file as the daemon does (module ``roles.<stem>``, once), feeds
it events through its own ``register_role()`` wiring and returns the intents its handler asked
for; ``carry_out(intent)`` runs the role's intent handler with ``RecordingServices``: a real
key-value store in memory (``MemoryKV``, the same key and value rules as the daemon's), a timer
service that records what was set (``RecordingTimers``) and the role's settings. Nothing here
starts a task or touches the network; it works with plain ``pytest`` and ``pytest-asyncio`` from
any folder. ``llm_provider.scripted_model.ScriptedModel`` drives a role's agent in tests.
"""

import inspect
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from common.clock import utc_iso
from common.context import EventContext
from common.errors import TimerError
from common.events import check_event_type
from common.intents import Intent, is_intent
from common.kv import check_key, encode_value
from common.role_api import RoleKV, RoleLogger, RoleServices, TimerRecord, Timers
from common.role_import import import_role_module
from common.types import intent_handler_arity

_ids = itertools.count(1)


def make_context(event_type: str = "TEST_EVENT", **fields: Any) -> EventContext:
    """Return the context a handler receives, with test defaults for what ``fields`` omits."""
    defaults: dict[str, Any] = {"event_id": f"evt-test-{next(_ids)}", "source": "test"}
    return EventContext(**{"timestamp": 0.0, **defaults, **fields, "event_type": event_type})


class MemoryKV:
    """One role's key-value store in memory: ``await get``, ``set``, ``delete``, ``keys``."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._values: dict[str, str] = {}

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        text = self._values.get(check_key(self.role, key))
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under ``key``."""
        checked = check_key(self.role, key)
        self._values[checked] = encode_value(self.role, checked, value)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        return self._values.pop(check_key(self.role, key), None) is not None

    async def keys(self) -> list[str]:
        """Return this role's keys, sorted."""
        return sorted(self._values)


@dataclass
class RecordedTimer:
    """A timer set through ``RecordingTimers``; times are UTC epoch seconds."""

    timer_id: str
    label: str
    due_at: float
    channel_id: str | None = None
    user_id: str | None = None
    role: str | None = None
    original_request: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"

    def to_dict(self) -> dict[str, Any]:
        """Return the timer as data, with its due time as ISO 8601 (``due``) too."""
        return {**asdict(self), "due": utc_iso(self.due_at)}


class RecordingTimers:
    """The timer service's API (``services.timers``), keeping timers without ever firing them."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.timers: dict[str, RecordedTimer] = {}

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
        """Keep a timer due at ``deadline`` or ``duration`` seconds after ``now``; return its id."""
        if (deadline is None) == (duration is None):
            raise TimerError(
                f"timer {label!r}: give exactly one of deadline or duration, got "
                f"deadline={deadline!r} and duration={duration!r}"
            )
        due_at = deadline if deadline is not None else self.now + duration  # type: ignore[operator]
        if due_at <= self.now:
            raise TimerError(f"timer {label!r} would be due at {due_at!r}, not after now")
        timer_id = f"tmr-test-{len(self.timers) + 1}"
        self.timers[timer_id] = RecordedTimer(
            timer_id, label, due_at, channel_id, user_id, role, original_request, dict(data or {})
        )
        return timer_id

    async def cancel(self, timer_id: str) -> RecordedTimer:
        """Cancel a pending timer and return it; an unknown or cancelled one is an error."""
        timer = self.timers.get(timer_id)
        if timer is None or timer.state != "pending":
            raise TimerError(f"no pending timer has id {timer_id!r}")
        timer.state = "cancelled"
        return timer

    async def get(self, timer_id: str) -> RecordedTimer | None:
        """Return the timer with ``timer_id``, or None."""
        return self.timers.get(timer_id)

    async def list(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> list[RecordedTimer]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        return sorted(
            (
                timer
                for timer in self.timers.values()
                if (include_done or timer.state == "pending")
                and channel_id in (None, timer.channel_id)
                and user_id in (None, timer.user_id)
            ),
            key=lambda timer: timer.due_at,
        )

    async def reconcile(self) -> dict[str, int]:
        """Return the pending count as the real check does; nothing is armed, so nothing moves."""
        pending = len(await self.list())
        return {"pending": pending, "rearmed": 0, "dropped": 0, "overdue": 0}


class RecordingServices:
    """What an intent handler gets as ``services`` (``common.role_api.RoleServices``), recording.

    ``published`` holds each ``(event_type, data)`` published; ``timers.timers`` each timer set.
    """

    def __init__(
        self,
        role: str,
        *,
        settings: dict[str, Any] | None = None,
        timers: RecordingTimers | None = None,
        kv: MemoryKV | None = None,
        log: RoleLogger | None = None,
    ) -> None:
        self.role = role
        self.settings: dict[str, Any] = dict(settings or {})
        self.timers = timers if timers is not None else RecordingTimers()
        self.kv = kv if kv is not None else MemoryKV(role)
        self.log: RoleLogger = log or structlog.get_logger("intentd.role").bind(role=role)
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Record an event published by this role; return its id."""
        self.published.append((check_event_type(event_type), data or {}))
        return f"evt-test-{next(_ids)}"


class RoleHarness:
    """One role file, loaded as the daemon loads it and driven by hand: events in, intents out."""

    def __init__(
        self, role_file: str | Path, *, settings: dict[str, Any] | None = None, now: float = 0.0
    ) -> None:
        self.path = Path(role_file).resolve()
        self.module = import_role_module(self.path)
        registration = self.module.register_role()
        self.name: str = registration["config"]["name"]
        self.event_handlers: dict[str, Any] = registration["event_handlers"]
        self.intent_handlers: dict[type, Any] = registration["intents"]
        self.now = now
        self.services = RecordingServices(self.name, settings=settings, timers=RecordingTimers(now))

    async def event(self, event_type: str, data: Any = None, **context: Any) -> list[Intent]:
        """Return the intents the role's handler for ``event_type`` asks for, given ``data``."""
        handler = self.event_handlers.get(event_type)
        if handler is None:
            raise AssertionError(
                f"role {self.name!r} does not subscribe to {event_type!r}; its register_role() "
                f"maps {sorted(self.event_handlers)}"
            )
        result = handler(data, make_context(event_type, **{"timestamp": self.now, **context}))
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, list) or not all(map(is_intent, result)):
            raise AssertionError(
                f"event handler {handler.__qualname__!r} returned {result!r:.80}; it must return "
                "a list of intents, [] when there is nothing to do"
            )
        return result

    async def carry_out(self, intent: Intent) -> Any:
        """Run the role's intent handler for ``intent`` with ``services``; return its result."""
        handler = self.intent_handlers.get(type(intent))
        if handler is None:
            raise AssertionError(
                f"role {self.name!r} has no intent handler for {type(intent).__name__!r}; core "
                "intents are carried out by intentd, compare them with == instead"
            )
        if not intent.validate():
            raise AssertionError("; ".join(intent.problems()))
        if intent_handler_arity(handler) == 2:
            return await handler(intent, self.services)
        return await handler(intent)


if TYPE_CHECKING:  # the stand-ins keep the role API's protocols (mypy checks these lines)
    _services: type[RoleServices] = RecordingServices
    _timers: type[Timers] = RecordingTimers
    _timer: type[TimerRecord] = RecordedTimer
    _kv: type[RoleKV] = MemoryKV
