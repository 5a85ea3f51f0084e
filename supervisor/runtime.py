"""Build the parts events flow through, in one place, for the daemon and for one-shot commands.

``build_runtime`` is the one function that wires the store's parts (timers, schedules, kv, audit,
outbox), the channels, the IntentProcessor, the RoleRegistry and the WorkflowEngine. The daemon
calls it at the start of every run; ``intentd call`` calls it to run one tool the way the daemon
would; ``POST /roles/R/tools/T`` runs tools on the daemon's runtime. Every part gets its
collaborators in its constructor, except two pairs that refer to each other, tied here and only
here: the bus hands intents to the processor, which publishes events on the bus; the processor
starts workflows on the engine, which carries out its tools' intents through the processor.

When *not* to use it: tests of one part build that part alone, with fakes at its edges.
"""

import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from strands.models import Model

from common.clock import Clock
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from llm_provider.role_contract import LoadedRole
from llm_provider.role_registry import RoleRegistry
from llm_provider.workflow_engine import WorkflowEngine
from supervisor.config import Config
from supervisor.delivery.channels import CommunicationManager, ConsoleChannel, LogChannel
from supervisor.delivery.outbox import Outbox, OutboxEntry
from supervisor.event_intake import EventIntake
from supervisor.scheduling.schedules import ScheduleService
from supervisor.scheduling.timers import TimerService
from supervisor.services import DaemonServices
from supervisor.store.audit import DurableAuditSink
from supervisor.store.backends import StoreParts
from supervisor.store.kv import KVStore
from supervisor.store.sqlite import Store


def instance_name(config: Config) -> str:
    """Return this process's name among instances: ``cluster.instance``, or host name:pid."""
    return config.cluster.instance or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    """The wired parts of one run: what the Supervisor runs and what ``intentd call`` uses."""

    config: Config
    parts: StoreParts
    bus: MessageBus
    channels: CommunicationManager
    processor: IntentProcessor
    registry: RoleRegistry
    workflow_engine: WorkflowEngine
    timers: TimerService
    schedules: ScheduleService
    kv: KVStore
    audit: DurableAuditSink
    outbox: Outbox
    intake: EventIntake
    _services: dict[str, DaemonServices] = field(default_factory=dict)

    def services_for(self, role: str) -> DaemonServices:
        """Return the services object handed to ``role``'s intent handlers."""
        services = self._services.get(role)
        if services is None:
            services = DaemonServices(
                role=role,
                bus=self.bus,
                settings=self.config.roles.settings.get(role, {}),
                timers=self.timers,
                kv=self.kv.for_role(role),
                events=self.intake if self.processor.event_journal is not None else None,
            )
            self._services[role] = services
        return services

    def load_roles(self) -> dict[str, LoadedRole]:
        """Load the roles folder and register the roles' intent handlers; return the roles."""
        roles = self.registry.discover_roles()
        self.registry.set_intent_processor(self.processor)
        return roles

    @property
    def store(self) -> Store | None:
        """Return the SQLite store, or None on PostgreSQL."""
        return self.parts.sqlite

    async def close(self) -> None:
        """Stop the timers and schedules and close the store."""
        self.timers.stop()
        self.schedules.stop()
        self._services.clear()
        await self.parts.close()


def build_runtime(
    config: Config,
    clock: Clock,
    parts: StoreParts,
    bus: MessageBus,
    *,
    models: Mapping[str, Model] | None = None,
    extra_channels: Mapping[str, Any] | None = None,
    stdout: TextIO | None = None,
    arms: bool = True,
    on_timer_fired: Callable[[float], None] | None = None,
    alert: Callable[[OutboxEntry], Awaitable[Any]] | None = None,
    intake: EventIntake | None = None,
) -> Runtime:
    """Wire every part of a run on ``parts`` and ``bus``; ``arms=False`` stores timers only.

    With an ``intake`` (the daemon's, already feeding Socket Mode) events from schedules and from
    intents are journaled; without one (``intentd call``) intents publish on the bus.
    """
    journaled = intake is not None
    instance = instance_name(config)
    if intake is None:
        intake = EventIntake(parts.journal, bus, clock, config.journal)
    kinds: dict[str, Any] = {"console": ConsoleChannel(stdout), "log": LogChannel()}
    kinds.update(extra_channels or {})
    outbox = Outbox(
        parts.outbox,
        kinds,
        clock,
        config.outbox,
        bus=bus,
        alert=alert,
        owner=intake.owner,
        lease=config.cluster.lease,
    )
    channels = CommunicationManager(config.channels, kinds=kinds, outbox=outbox)
    timers = TimerService(
        parts.timers,
        bus,
        clock,
        config.timers,
        on_fired=on_timer_fired,
        arms=arms,
        instance=instance,
        lease=config.cluster.lease,
    )
    schedules = ScheduleService(parts.schedules, intake, clock, list(config.schedules))
    kv = KVStore(parts.kv)
    audit = DurableAuditSink(parts.audit)
    processor = IntentProcessor(
        channels,
        message_bus=bus,
        audit_sink=audit,
        services_factory=lambda role: runtime.services_for(role),
        intent_timeout=config.roles.intent_timeout,
        event_journal=intake if journaled else None,
    )
    bus.set_intent_processor(processor)  # knot 1: bus -> processor -> bus
    registry = RoleRegistry(
        config.resolve(config.roles.directory), bus, allowed_imports=config.roles.allowed_imports
    )
    engine = WorkflowEngine(
        models or {},
        registry,
        processor,
        bus=bus,
        clock=clock.time,
        max_concurrent=config.llm.max_concurrent,
        timeout=config.llm.timeout,
        confidence_threshold=config.router.confidence_threshold,
        default_role=config.router.default_role,
        retry_attempts=config.llm.retry_attempts,
        retry_delay=config.llm.retry_delay,
        sleep=lambda seconds: clock.sleep_until(clock.time() + seconds),
    )
    processor.workflow_engine = engine  # knot 2: processor -> engine -> processor
    runtime = Runtime(
        config=config,
        parts=parts,
        bus=bus,
        channels=channels,
        processor=processor,
        registry=registry,
        workflow_engine=engine,
        timers=timers,
        schedules=schedules,
        kv=kv,
        audit=audit,
        outbox=outbox,
        intake=intake,
    )
    return runtime
