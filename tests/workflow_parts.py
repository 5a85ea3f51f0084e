"""The real parts a workflow needs, wired as the Supervisor wires them, with a recording channel.

Roles come from the repository's roles/ folder; the store is in memory; time is a FakeClock;
notifications to ``slack:...`` addresses are recorded by ``RecordingChannel`` (the edge).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strands.models import Model

from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.intents import NotificationIntent
from common.message_bus import MessageBus
from llm_provider.role_registry import RoleRegistry
from llm_provider.workflow_engine import WorkflowEngine
from supervisor.delivery.channels import Address, CommunicationManager
from supervisor.scheduling.timers import TimerService
from supervisor.services import DaemonServices
from supervisor.store.audit import DurableAuditSink, SqliteAudit
from supervisor.store.kv import KVStore, SqliteKV
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import FakeClock

ROLES = Path(__file__).resolve().parents[1] / "roles"


@dataclass
class RecordingChannel:
    """A channel that keeps (target, message, user) of every delivery."""

    sent: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def deliver(self, address: Address, intent: NotificationIntent) -> None:
        """Record the delivery."""
        self.sent.append((address.target, intent.message, intent.user_id))


class WorkflowParts:
    """Store, bus, processor, timers, roles and a WorkflowEngine over the given models."""

    def __init__(
        self,
        models: Mapping[str, Model],
        store_path: str | Path = ":memory:",
        **engine_options: Any,
    ) -> None:
        self.clock = FakeClock()
        self.store = Store(store_path)
        self.bus = MessageBus(clock=self.clock.time)
        self.channel = RecordingChannel()
        comms = CommunicationManager()
        comms.add_channel("slack", self.channel)
        self.processor = IntentProcessor(
            comms, message_bus=self.bus, services_factory=self.services
        )
        self.audit = DurableAuditSink(SqliteAudit(self.store))
        self.processor.audit_sink = self.audit
        self.bus.set_intent_processor(self.processor)
        self.timers = TimerService(SqliteTimers(self.store), self.bus, self.clock)
        self.kv = KVStore(SqliteKV(self.store))
        self.registry = RoleRegistry(ROLES, self.bus)
        self.registry.discover_roles()
        self.registry.set_intent_processor(self.processor)
        self.events: list[tuple[str, dict[str, Any]]] = []
        for event in ("WORKFLOW_STARTED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED"):
            self.bus.subscribe("test", event, self._record)
        self.waits: list[float] = []  # what runs waited on the clock before a retry
        self.waiting = asyncio.Event()  # set when a run starts such a wait
        engine_options.setdefault("sleep", self.sleep)
        self.engine = WorkflowEngine(
            models, self.registry, self.processor, bus=self.bus, clock=self.clock.time,
            **engine_options,
        )  # fmt: skip

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the fake clock, recording the wait."""
        self.waits.append(seconds)
        self.waiting.set()
        await self.clock.sleep_until(self.clock.time() + seconds)

    def services(self, role: str) -> DaemonServices:
        """Return the services a role's intent handler gets."""
        return DaemonServices(
            role=role, bus=self.bus, timers=self.timers, kv=self.kv.for_role(role)
        )

    def _record(self, data: dict[str, Any], context: EventContext) -> list[Any]:
        self.events.append((context.event_type, data))
        return []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["WorkflowParts"]:
        """Run the engine for the body of an ``async with``; cancel and await it after.

        The in-memory store stays open, so a test can read it after the engine has stopped.
        """
        task = asyncio.get_running_loop().create_task(self.engine.run())
        await asyncio.sleep(0)
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.timers.stop()
