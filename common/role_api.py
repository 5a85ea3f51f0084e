"""What a role author touches, stated once: the context handlers get and the services they use.

An event handler is ``def handle_x(event_data: dict, context: EventContext) -> list[Intent]``
(``EventContext`` lives in ``common/context.py``). An intent handler is
``async def process_x(intent, services: RoleServices)``; ``services`` is the only way a role
reaches the daemon's infrastructure. The daemon's implementation is
``supervisor/services.py``; tests may pass any object with these members.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from common.context import EventContext

__all__ = [
    "MAX_TIMER_SECONDS",
    "Context",
    "EventContext",
    "RoleKV",
    "RoleLogger",
    "RoleServices",
    "TimerRecord",
    "Timers",
]

Context = EventContext | Mapping[str, Any]
"""What a handler's ``context`` may be: the daemon passes an EventContext; tests may pass a dict."""

MAX_TIMER_SECONDS = 365 * 24 * 3600.0
"""The longest a timer may run: a deadline further away than this is refused."""


class TimerRecord(Protocol):
    """One stored timer as ``services.timers`` returns it; times are UTC epoch seconds."""

    @property
    def timer_id(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def due_at(self) -> float: ...
    @property
    def state(self) -> str: ...  # "pending", "fired" or "cancelled"
    @property
    def channel_id(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]:
        """Return the timer as JSON-ready data, its times as ISO-8601 UTC text."""
        ...


class Timers(Protocol):
    """Durable timers: stored before ``create`` returns, fired once as ``TIMER_EXPIRED``."""

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
        """Store a timer due at ``deadline`` (epoch s) or after ``duration`` s; return its id.

        Give exactly one of ``deadline`` and ``duration``; the deadline must lie after now and
        within MAX_TIMER_SECONDS (365 days). ``data`` comes back in the ``TIMER_EXPIRED`` event.
        """
        ...

    async def cancel(self, timer_id: str) -> TimerRecord:
        """Cancel a pending timer and return it; an unknown or finished one is a TimerError."""
        ...

    async def get(self, timer_id: str) -> TimerRecord | None:
        """Return the timer with ``timer_id``, or None."""
        ...

    async def list(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> Sequence[TimerRecord]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        ...


class RoleKV(Protocol):
    """A role's own durable key-value store; values are JSON data, keys are text; every method
    is awaited (``await services.kv.get(key)``), as the store may be a database server."""

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        ...

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``, committed before this returns."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        ...

    async def keys(self) -> list[str]:
        """Return the role's keys, sorted."""
        ...


class RoleLogger(Protocol):
    """A structlog logger bound with the role's name: log events with fields, not sentences."""

    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...


class RoleServices(Protocol):
    """The infrastructure one role's intent handlers may use."""

    @property
    def role(self) -> str:
        """The role's name."""
        ...

    @property
    def settings(self) -> Mapping[str, Any]:
        """The role's ``roles.settings.<name>`` section of config.yaml."""
        ...

    @property
    def timers(self) -> Timers:
        """The daemon's durable timers."""
        ...

    @property
    def kv(self) -> RoleKV:
        """This role's key-value store."""
        ...

    @property
    def log(self) -> RoleLogger:
        """A logger bound with ``role``."""
        ...

    def publish(self, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Publish an event caused by the intent being handled; return its id."""
        ...
