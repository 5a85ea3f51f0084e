"""Intents: requests, in data, for something the infrastructure should do.

Rules kept here:
- An intent is a dataclass; its ``validate()`` says whether it can be carried out.
- The base class's own fields are keyword-only, so a role's intent may declare required fields.
- ``intent_id``, ``parent_id`` and ``created_at`` are bookkeeping: filled in automatically and left
  out of equality, so a test can compare a handler's output with one ``==``.
- Every intent turns into plain JSON (type name + fields) and back, to be stored and replayed.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from common.errors import EventNameError
from common.events import check_event_type
from common.ids import new_id

PRIORITIES = ("low", "medium", "high")


def _now() -> datetime:
    return datetime.now(UTC)


def _intent_id() -> str:
    return new_id("int")


@dataclass(kw_only=True)
class Intent(ABC):
    """Base of every intent; subclasses add fields and implement ``validate()``."""

    intent_id: str = field(default_factory=_intent_id, compare=False, repr=False)
    parent_id: str | None = field(default=None, compare=False, repr=False)
    created_at: datetime = field(default_factory=_now, compare=False, repr=False)

    BOOKKEEPING: ClassVar[tuple[str, ...]] = ("intent_id", "parent_id", "created_at")

    @abstractmethod
    def validate(self) -> bool:
        """Return True when this intent can be carried out."""

    def problems(self) -> list[str]:
        """Return what is wrong with this intent, one sentence each (empty when valid)."""
        if self.validate():
            return []
        return [f"{type(self).__name__}.validate() returned False for {self.payload()!r}"]

    @classmethod
    def type_name(cls) -> str:
        """Return the name this intent type is stored and dispatched under."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def payload(self) -> dict[str, Any]:
        """Return the intent's own fields (no bookkeeping) as a dict."""
        skip = self.BOOKKEEPING
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass
class NotificationIntent(Intent):
    """Send ``message`` to ``channel`` (an alias, ``console``, ``log`` or ``slack:<target>``)."""

    message: str
    channel: str
    user_id: str | None = None
    priority: str = "medium"

    def validate(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.message, str) or not self.message.strip():
            found.append(f"NotificationIntent.message must be non-empty text, got {self.message!r}")
        if not isinstance(self.channel, str) or not self.channel.strip():
            found.append(f"NotificationIntent.channel must be non-empty text, got {self.channel!r}")
        if self.priority not in PRIORITIES:
            found.append(
                f"NotificationIntent.priority must be one of {PRIORITIES}, got {self.priority!r}"
            )
        return found


@dataclass
class AuditIntent(Intent):
    """Append a record of ``action`` with ``details`` to the audit log."""

    action: str
    details: dict[str, Any]
    user_id: str | None = None

    def validate(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.action, str) or not self.action.strip():
            found.append(f"AuditIntent.action must be non-empty text, got {self.action!r}")
        if not isinstance(self.details, dict):
            found.append(f"AuditIntent.details must be a dict, got {self.details!r}")
        return found


@dataclass
class WorkflowIntent(Intent):
    """Run an LLM workflow of ``workflow_type`` with ``parameters``."""

    workflow_type: str
    parameters: dict[str, Any]
    priority: int = 1

    def validate(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.workflow_type, str) or not self.workflow_type.strip():
            found.append(
                f"WorkflowIntent.workflow_type must be non-empty text, got {self.workflow_type!r}"
            )
        if not isinstance(self.parameters, dict):
            found.append(f"WorkflowIntent.parameters must be a dict, got {self.parameters!r}")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            found.append(f"WorkflowIntent.priority must be an integer, got {self.priority!r}")
        return found


@dataclass
class EventIntent(Intent):
    """Publish a follow-up event: how roles chain without doing I/O themselves."""

    event_type: str
    data: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        try:
            check_event_type(self.event_type, "EventIntent.event_type")
        except EventNameError as err:
            found.append(str(err))
        if not isinstance(self.data, dict):
            found.append(f"EventIntent.data must be a dict, got {self.data!r}")
        return found


def is_intent(value: object) -> bool:
    """Return True for an Intent instance (a cheaper ``isinstance`` for the hot path)."""
    return Intent in type(value).__mro__


CORE_INTENTS: tuple[type[Intent], ...] = (
    NotificationIntent,
    AuditIntent,
    WorkflowIntent,
    EventIntent,
)
