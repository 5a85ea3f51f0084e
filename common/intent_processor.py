"""The IntentProcessor: carries out intents, core and role-defined, and never raises for one.

Rules kept here:
- Each intent is checked with ``validate()`` first; an invalid intent is counted as failed with a
  readable error and nothing is done for it.
- Dispatch is by intent type name (``module.QualName``), walking the class's bases, so a
  subclass of a core intent is handled as that intent and a role module loaded twice cannot
  split one intent type into two.
- A role intent type belongs to the role that registered it; another role is refused, and the
  same role registering it again (a reload) replaces the handler.
- A handler that raises or overruns its budget fails that intent only; the rest still run.
- With an ``event_journal`` an EventIntent's event is stored under the intent's id (its event id
  derived from it) before the intent counts as carried out, so carrying the intent out again
  after a crash chains the event once.
"""

import functools
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import structlog

from common.audit import AuditRecord, AuditSink, MemoryAuditSink
from common.budget import resume_within
from common.context import cause_sequence, current_cause
from common.errors import IntentHandlingError, RoleContractError
from common.guard import ROLE_ERRORS, reraise_if_ours
from common.ids import derived_event_id
from common.intents import (
    AuditIntent,
    EventIntent,
    Intent,
    NotificationIntent,
    WorkflowIntent,
    is_intent,
)
from common.types import IntentHandler, ServicesFactory, intent_handler_arity

log = structlog.get_logger("intentd.intents")


def _log_context_vars() -> tuple[ContextVar[Any], ContextVar[Any], ContextVar[Any]]:
    """Return structlog's context variables for ``role``, ``intent_id`` and ``parent_id``."""
    tokens = structlog.contextvars.bind_contextvars(role=None, intent_id=None, parent_id=None)
    structlog.contextvars.reset_contextvars(**tokens)
    return tokens["role"].var, tokens["intent_id"].var, tokens["parent_id"].var


_LOG_ROLE, _LOG_INTENT_ID, _LOG_PARENT_ID = _log_context_vars()


class NotificationSender(Protocol):
    """Delivers notifications (supervisor/delivery/channels.py's CommunicationManager is one)."""

    async def send(self, intent: NotificationIntent) -> Any: ...


class WorkflowEngine(Protocol):
    """Runs LLM workflows (see llm_provider/workflow_engine.py)."""

    async def start_workflow_intent(self, intent: WorkflowIntent) -> Any: ...


class EventPublisher(Protocol):
    """Publishes events (the MessageBus)."""

    def publish(
        self, publisher: str, event_type: str, message: Any = None, *, parent_id: str | None = None
    ) -> str: ...


class StoredEvent(Protocol):
    """What storing an event answers: its id."""

    @property
    def event_id(self) -> str: ...


class EventJournal(Protocol):
    """Stores an event before the bus sees it (supervisor/event_intake.py's EventIntake)."""

    def submit(
        self,
        publisher: str,
        event_type: str,
        data: Any = None,
        *,
        parent_id: str | None = None,
        key: str | None = None,
        event_id: str | None = None,
    ) -> Awaitable[StoredEvent]: ...


Route = Callable[[Any, str | None], Awaitable[Any]]


@dataclass(frozen=True)
class IntentOutcome:
    """What happened to one intent: ``ok`` with the handler's result, or the error."""

    intent: Intent
    ok: bool
    result: Any = None
    error: str | None = None


@dataclass
class _RoleHandler:
    role: str | None
    handler: IntentHandler
    wants_services: bool


@dataclass
class ProcessorStats:
    """Counters by intent type name; the metrics endpoint reads them when scraped."""

    processed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)


class IntentProcessor:
    """Carry out intents: notifications, audit, workflows, events and role intents."""

    def __init__(
        self,
        communication_manager: NotificationSender | None = None,
        workflow_engine: WorkflowEngine | None = None,
        *,
        audit_sink: AuditSink | None = None,
        message_bus: EventPublisher | None = None,
        services_factory: ServicesFactory | None = None,
        intent_timeout: float = 5.0,
        event_journal: EventJournal | None = None,
    ) -> None:
        self.communication_manager = communication_manager
        self.workflow_engine = workflow_engine
        self.audit_sink: AuditSink = audit_sink if audit_sink is not None else MemoryAuditSink()
        self.message_bus = message_bus
        self.services_factory = services_factory
        self.intent_timeout = intent_timeout
        self.event_journal = event_journal
        self.stats = ProcessorStats()
        self._role_handlers: dict[str, _RoleHandler] = {}
        self._role_types: dict[str, type[Intent]] = {}
        self._routes: dict[type, tuple[Route, str, bool]] = {}

    # -- registration -----------------------------------------------------------------------

    def register_role_intent_handler(
        self, intent_type: type[Intent], handler: IntentHandler, role: str | None = None
    ) -> None:
        """Carry out ``intent_type`` intents with ``handler(intent[, services])``."""
        self.check_role_intent_handler(intent_type, handler, role)
        name = intent_type.type_name()
        self._role_handlers[name] = _RoleHandler(role, handler, intent_handler_arity(handler) == 2)
        self._role_types[name] = intent_type
        self._routes.clear()

    def check_role_intent_handler(
        self, intent_type: type[Intent], handler: IntentHandler, role: str | None = None
    ) -> None:
        """Raise TypeError or RoleContractError if registering ``handler`` would be refused."""
        if not (isinstance(intent_type, type) and issubclass(intent_type, Intent)):
            raise TypeError(
                f"intent type {intent_type!r} is not a subclass of common.intents.Intent"
            )
        intent_handler_arity(handler)
        owner = self._role_handlers.get(intent_type.type_name())
        if owner is not None and owner.role != role:
            raise RoleContractError(
                f"role {role!r} cannot handle {intent_type.type_name()!r}: role {owner.role!r} "
                "already handles it; a role handles only the intents it defines"
            )

    def unregister_role(self, role: str) -> int:
        """Remove every intent handler registered for ``role``; return how many."""
        names = [name for name, entry in self._role_handlers.items() if entry.role == role]
        for name in names:
            del self._role_handlers[name]
            del self._role_types[name]
        self._routes.clear()
        return len(names)

    @property
    def role_intent_types(self) -> list[type[Intent]]:
        """Return the registered role intent classes (for replaying stored intents)."""
        return list(self._role_types.values())

    # -- processing -------------------------------------------------------------------------

    async def process_intents(
        self, intents: Iterable[Any], role: str | None = None
    ) -> dict[str, Any]:
        """Carry out each intent; return ``{"processed", "failed", "errors"}`` and never raise.

        Intents run in order. A run of consecutive AuditIntents is appended in one transaction,
        before the next other intent runs; if that append fails, each of them fails.
        """
        processed = failed = 0
        errors: list[str] = []
        audits: list[tuple[AuditIntent, str]] = []
        for intent in intents:
            checked = self._check(intent, role)
            if isinstance(checked, str):
                failed += 1
                errors.append(checked)
                continue
            route, stored_name, batched = checked
            if batched:
                audits.append((intent, stored_name))
                continue
            if audits:
                audit_errors = await self._append_audits(audits, role)
                processed += len(audits) - len(audit_errors)
                failed += len(audit_errors)
                errors.extend(audit_errors)
                audits = []
            try:
                await route(intent, role)
            except ROLE_ERRORS as err:
                reraise_if_ours(err)
                failed += 1
                errors.append(
                    self._failed(intent, role, f"{type(intent).__name__} failed: {err}", err)
                )
                continue
            self.stats.processed[stored_name] += 1
            processed += 1
        if audits:
            audit_errors = await self._append_audits(audits, role)
            processed += len(audits) - len(audit_errors)
            failed += len(audit_errors)
            errors.extend(audit_errors)
        return {"processed": processed, "failed": failed, "errors": errors}

    async def carry_out(self, intent: Any, role: str | None = None) -> IntentOutcome:
        """Carry out one intent and say what happened; never raises for a bad intent."""
        checked = self._check(intent, role)
        if isinstance(checked, str):
            return IntentOutcome(intent, False, error=checked)
        route, stored_name, _ = checked
        try:
            result = await route(intent, role)
        except ROLE_ERRORS as err:
            reraise_if_ours(err)
            error = self._failed(intent, role, f"{type(intent).__name__} failed: {err}", err)
            return IntentOutcome(intent, False, error=error)
        self.stats.processed[stored_name] += 1
        return IntentOutcome(intent, True, result=result)

    def _check(self, intent: Any, role: str | None) -> tuple[Route, str, bool] | str:
        """Return the intent's route, stored type name and whether audits batch it; or the error."""
        if not is_intent(intent):
            self.stats.failed["<not an intent>"] += 1
            error = (
                f"{intent!r:.80} is not an Intent; handlers and tools must return Intent objects"
            )
            log.warning("intent_failed", error=error, role=role)
            return error
        try:
            problems = intent.problems()
        except Exception as err:
            problems = [f"{type(intent).__name__}.validate() raised {type(err).__name__}: {err}"]
        if problems:
            return self._failed(
                intent, role, f"invalid {type(intent).__name__}: " + "; ".join(problems)
            )
        cached = self._routes.get(type(intent))
        if cached is None:
            route = self._route(type(intent))
            cached = self._routes[type(intent)] = (route, intent.type_name(), route == self._audit)
        return cached

    async def _append_audits(
        self, audits: list[tuple[AuditIntent, str]], role: str | None
    ) -> list[str]:
        """Append the audit intents' records in one transaction; return the errors (all or none)."""
        records = [_audit_record(intent, role) for intent, _ in audits]
        try:
            await self.audit_sink.append_many(records)
        except Exception as err:
            return [
                self._failed(intent, role, f"{type(intent).__name__} failed: {err}", err)
                for intent, _ in audits
            ]
        processed = self.stats.processed
        for _, stored_name in audits:
            processed[stored_name] += 1
        return []

    def _failed(
        self, intent: Intent, role: str | None, error: str, exc: BaseException | None = None
    ) -> str:
        self.stats.failed[intent.type_name()] += 1
        log.warning(
            "intent_failed",
            intent_type=type(intent).__name__,
            intent_id=intent.intent_id,
            parent_id=intent.parent_id,
            role=role,
            error=error,
            exc_info=exc if exc is not None and not isinstance(exc, IntentHandlingError) else None,
        )
        return error

    def _route(self, intent_type: type[Intent]) -> Route:
        for cls in intent_type.__mro__:
            if cls is Intent or not (isinstance(cls, type) and issubclass(cls, Intent)):
                continue
            entry = self._role_handlers.get(cls.type_name())
            if entry is not None:
                return functools.partial(self._run_role_handler, entry)
            core: dict[type, Route] = {
                NotificationIntent: self._notify,
                AuditIntent: self._audit,
                WorkflowIntent: self._start_workflow,
                EventIntent: self._publish,
            }
            if cls in core:
                return core[cls]
        return self._unhandled

    async def _unhandled(self, intent: Intent, role: str | None) -> Any:
        raise IntentHandlingError(
            f"no handler is registered for {type(intent).type_name()}; register one in the "
            "role's register_role()['intents']"
        )

    async def _run_role_handler(self, entry: _RoleHandler, intent: Intent, role: str | None) -> Any:
        args: tuple[Any, ...] = (intent,)
        if entry.wants_services:
            if self.services_factory is None:
                raise IntentHandlingError(
                    f"intent handler {entry.handler.__qualname__!r} takes services, but this "
                    "IntentProcessor was built without a services_factory"
                )
            args = (intent, self.services_factory(entry.role or ""))
        # The handler's log lines carry its role and intent: structlog's own context variables,
        # set directly (bound_contextvars copies the whole context on every call).
        deadline = time.monotonic() + self.intent_timeout  # the loop's clock
        cause = current_cause.set(intent.intent_id)
        sequence = cause_sequence.set(itertools.count())
        bound = (
            _LOG_ROLE.set(entry.role),
            _LOG_INTENT_ID.set(intent.intent_id),
            _LOG_PARENT_ID.set(intent.parent_id),
        )
        try:
            coro = cast(Coroutine[Any, Any, Any], entry.handler(*args))  # async def, checked
            try:
                waited = coro.send(None)
            except StopIteration as done:
                return done.value  # finished without waiting: no timer was needed for its budget
            return await resume_within(coro, waited, deadline)
        except TimeoutError as err:
            raise IntentHandlingError(
                f"intent handler {entry.handler.__qualname__!r} exceeded its "
                f"{self.intent_timeout} s budget and was cancelled"
            ) from err
        finally:
            _LOG_PARENT_ID.reset(bound[2])
            _LOG_INTENT_ID.reset(bound[1])
            _LOG_ROLE.reset(bound[0])
            cause_sequence.reset(sequence)
            current_cause.reset(cause)

    async def _notify(self, intent: NotificationIntent, role: str | None) -> Any:
        if self.communication_manager is None:
            log.info(
                "notification",
                channel=intent.channel,
                priority=intent.priority,
                user_id=intent.user_id,
                message=intent.message,
            )
            return None
        return await self.communication_manager.send(intent)

    async def _audit(self, intent: AuditIntent, role: str | None) -> AuditRecord:
        record = _audit_record(intent, role)
        await self.audit_sink.append(record)
        return record

    async def _start_workflow(self, intent: WorkflowIntent, role: str | None) -> Any:
        if self.workflow_engine is None:
            raise IntentHandlingError(
                f"no workflow engine configured, so workflow {intent.workflow_type!r} cannot run; "
                "set llm.provider in config.yaml"
            )
        return await self.workflow_engine.start_workflow_intent(intent)

    async def _publish(self, intent: EventIntent, role: str | None) -> str:
        if self.event_journal is not None:  # stored before this intent counts as carried out
            stored = await self.event_journal.submit(
                "intent_processor",
                intent.event_type,
                intent.data,
                parent_id=intent.intent_id,
                key=intent.intent_id,
                event_id=derived_event_id(intent.intent_id),
            )
            return stored.event_id
        if self.message_bus is None:
            raise IntentHandlingError(
                f"EventIntent {intent.event_type!r} cannot be published: this IntentProcessor "
                "has no message bus"
            )
        return self.message_bus.publish(
            "intent_processor", intent.event_type, intent.data, parent_id=intent.intent_id
        )


def _audit_record(intent: AuditIntent, role: str | None) -> AuditRecord:
    return AuditRecord(
        action=intent.action,
        details=intent.details,
        user_id=intent.user_id,
        role=role,
        intent_id=intent.intent_id,
        parent_id=intent.parent_id,
        created_at=intent.created_at,
    )
