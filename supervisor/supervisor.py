"""The Supervisor: builds the daemon's parts, runs them on one loop, and stops them cleanly.

Rules kept here:
- Constructing a Supervisor reads the config and builds objects; it starts no thread and no task,
  with or without a running loop.
- ``run()`` owns every task it starts in one TaskGroup; ``stop()`` (or SIGINT/SIGTERM) stops the
  sources and the HTTP API, drains the bus within ``shutdown_timeout``, then cancels and awaits
  every task.
- ``reload()`` (or SIGHUP) re-reads the config file, applies what can change live and rescans the
  roles folder at once (as the fast heartbeat does); a config file that no longer loads is logged
  and changes nothing.
- ``run()`` opens the store (timers, schedules, audit, outbox) before anything starts and closes
  it last; timers and schedules are armed only after the roles are loaded, so no expiry finds no
  handler. With ``slack.enabled`` the Slack tokens are checked before anything starts.
"""

import asyncio
import contextlib
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import structlog

from common.clock import Clock, SystemClock
from common.errors import ConfigError, RoleContractError, StoreError
from common.events import FAST_HEARTBEAT_TICK, HEARTBEAT_TICK, TIMER_DELIVERY_FAILING
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from llm_provider.factory import build_models
from llm_provider.role_announcements import ANNOUNCED_EVENTS, make_announcer
from llm_provider.role_quarantine import FailureWindow
from llm_provider.role_registry import REGISTRY, RoleRegistry
from llm_provider.workflow_engine import WorkflowEngine, retry_strategy
from supervisor.config import Config, load_config
from supervisor.delivery.channels import CommunicationManager
from supervisor.delivery.outbox import Outbox, OutboxEntry, alert_text
from supervisor.logs import configure_logging
from supervisor.ops.http_api import HttpApi
from supervisor.ops.loop_lag import LoopLagMonitor
from supervisor.ops.metrics import TimerLateness, daemon_metrics
from supervisor.ops.readiness import Readiness
from supervisor.ops.status import StatusFields
from supervisor.scheduling.heartbeat import tick_forever
from supervisor.scheduling.schedules import ScheduleService
from supervisor.scheduling.timer_alerts import make_timer_alerter
from supervisor.scheduling.timers import TimerService
from supervisor.services import RoleServices
from supervisor.slack.connection import SlackConnection
from supervisor.store.audit import DurableAuditSink
from supervisor.store.kv import KVStore
from supervisor.store.sqlite import Store, open_store

log = structlog.get_logger("intentd.supervisor")


class _Flag:
    """A flag awaitable from whichever loop runs the daemon (an asyncio.Event binds to one)."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        """Return True once set, until cleared."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Clear the flag."""
        self._set = False

    async def wait(self) -> None:
        """Return once the flag is set."""
        if not self._set:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class Supervisor:
    """Own the daemon's parts and run them on the current event loop."""

    def __init__(
        self,
        config_file: str | Path | None = None,
        *,
        config: Config | None = None,
        clock: Clock | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.config = config if config is not None else load_config(config_file)
        self.config_file = Path(config_file) if config_file is not None else None
        self.clock: Clock = clock or SystemClock()
        cfg = self.config
        self.message_bus = MessageBus(
            max_queue=cfg.bus.max_queue,
            handler_timeout=cfg.roles.handler_timeout,
            block_threshold=cfg.roles.block_threshold,
            clock=self.clock.time,
        )
        self.communication_manager = CommunicationManager(cfg.channels, stdout=stdout)
        self.intent_processor = IntentProcessor(
            self.communication_manager,
            None,
            message_bus=self.message_bus,
            services_factory=self.services_for,
            intent_timeout=cfg.roles.intent_timeout,
        )
        self.message_bus.set_intent_processor(self.intent_processor)
        self.role_registry = RoleRegistry(cfg.resolve(cfg.roles.directory), self.message_bus)
        self.models = build_models(cfg.llm)  # a missing extra or API key stops the start here
        self.workflow_engine = WorkflowEngine(
            self.models.by_type,
            self.role_registry,
            self.intent_processor,
            bus=self.message_bus,
            clock=self.clock.time,
            max_concurrent=cfg.llm.max_concurrent,
            timeout=cfg.llm.timeout,
            confidence_threshold=cfg.router.confidence_threshold,
            default_role=cfg.router.default_role,
            retry_strategy=retry_strategy(cfg.llm.retry_attempts, cfg.llm.retry_delay),
        )
        self.intent_processor.workflow_engine = self.workflow_engine
        self.store: Store | None = None
        self.timers: TimerService | None = None
        self.schedules: ScheduleService | None = None
        self.kv: KVStore | None = None
        announcer = make_announcer("admin")  # resolved when sent, so a reload takes effect
        for event_type in ANNOUNCED_EVENTS:
            self.message_bus.subscribe(REGISTRY, event_type, announcer)
        timer_alerter = make_timer_alerter("admin")
        self.message_bus.subscribe("timers", TIMER_DELIVERY_FAILING, timer_alerter)
        self.failure_window = FailureWindow(
            cfg.roles.quarantine_failures,
            cfg.roles.quarantine_window,
            self.clock.time,
            self.role_registry.quarantine,
        )
        self.message_bus.failure_hooks.append(self.failure_window.record)
        self.loop_lag = LoopLagMonitor(
            threshold=cfg.roles.block_threshold, last_called=lambda: self.message_bus.last_called
        )
        self.outbox: Outbox | None = None
        self.slack: SlackConnection | None = None
        self.started_at: float | None = None
        self.last_heartbeat: float | None = None
        self._services: dict[str, RoleServices] = {}
        self._stop_requested = _Flag()
        self._ready = _Flag()
        self._dispatcher: asyncio.Task[None] | None = None
        self._roles_discovered = False
        self.readiness = Readiness()
        self.readiness.add("bus", self._bus_not_ready)
        self.readiness.add("roles", self._roles_not_ready)
        self.readiness.add("store", self._store_not_ready)
        if cfg.slack.enabled:
            self.readiness.add("slack", self._slack_not_ready)
        self.status = StatusFields()
        self.status.add("pending_timers", lambda: self.timers and self.timers.pending_count())
        self.status.add("outbox_depth", lambda: self.outbox and self.outbox.stats.depth)
        self.status.add("dead_letters", lambda: self.outbox and self.outbox.dead_letter_count())
        self.status.add("loop_lag_ms", lambda: round(self.loop_lag.current * 1000, 1))
        self.timer_lateness = TimerLateness()
        self.metrics = daemon_metrics(self)
        self.http = HttpApi(self)
        self.metrics.add_source("http", self.http.metric_families)

    # -- parts roles use --------------------------------------------------------------------

    def services_for(self, role: str) -> RoleServices:
        """Return the services object handed to ``role``'s intent handlers."""
        services = self._services.get(role)
        if services is None:
            settings = self.config.roles.settings.get(role, {})
            kv = self.kv.for_role(role) if self.kv is not None else None
            services = RoleServices(
                role=role, bus=self.message_bus, settings=settings, timers=self.timers, kv=kv
            )
            self._services[role] = services
        return services

    def active_workflows(self) -> int:
        """Return how many LLM workflows are running now."""
        return self.workflow_engine.active_count

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()`` or SIGINT/SIGTERM; return after a graceful shutdown."""
        self._stop_requested.clear()
        self._ready.clear()
        if self.models.closed:  # a previous run() closed them
            self.models = build_models(self.config.llm)
            self.workflow_engine.models = self.models.by_type
        try:
            self._open_store()
            self._load_roles()
            self._arm_timers()
        except BaseException:
            self._close_store()
            await self.models.aclose()
            raise
        removers = self._install_signal_handlers()
        try:
            await self._open_slack()
            self.communication_manager.check()
            await self.http.start()
            async with asyncio.TaskGroup() as tasks:
                await self._serve(tasks)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # one failure reads as that failure, not a group
                raise group.exceptions[0] from None
            raise
        finally:
            await self.http.stop()
            for remove in removers:
                remove()
            self._ready.clear()
            self._dispatcher = None
            if self.slack is not None:
                await self.slack.close()
            self._close_store()
            await self.models.aclose()
            log.info("stopped")

    def _open_store(self) -> None:
        cfg = self.config
        store = open_store(cfg.storage, cfg.resolve)
        self.store = store
        self.timers = TimerService(
            store, self.message_bus, self.clock, cfg.timers, on_fired=self.timer_lateness
        )
        self.schedules = ScheduleService(store, self.message_bus, self.clock, list(cfg.schedules))
        self.intent_processor.audit_sink = DurableAuditSink(store)
        self.kv = KVStore(store)
        self.outbox = Outbox(
            store,
            self.communication_manager.channels,
            self.clock,
            cfg.outbox,
            bus=self.message_bus,
            alert=self._alert_dead_letter,
        )
        self.communication_manager.outbox = self.outbox
        self._services.clear()

    def _arm_timers(self) -> None:
        """Arm pending timers and schedules; they fire once the dispatcher runs."""
        assert self.timers is not None and self.schedules is not None
        try:
            self.timers.start()
            self.schedules.start()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"storage.path {str(self.config.resolve(self.config.storage.path))!r}: cannot "
                f"read the pending timers and schedules ({err}); restore the file from a backup "
                "or move it aside"
            ) from err

    async def _open_slack(self) -> None:
        if not self.config.slack.enabled:
            return
        self.slack = SlackConnection(self.config.slack, self.message_bus, self.clock)
        await self.slack.open()
        self.communication_manager.add_channel("slack", self.slack.out)

    async def _alert_dead_letter(self, entry: OutboxEntry) -> None:
        await self.communication_manager.alert(alert_text(entry))

    def _close_store(self) -> None:
        for service in (self.timers, self.schedules):
            if service is not None:
                service.stop()
        self.kv = None
        self._services.clear()
        if self.store is not None:
            self.store.close()

    async def _serve(self, tasks: asyncio.TaskGroup) -> None:
        cfg = self.config
        self.started_at = self.clock.time()
        dispatcher = tasks.create_task(self.message_bus.run(), name="message-bus")
        workflows = tasks.create_task(self.workflow_engine.run(), name="workflow-engine")
        self._dispatcher = dispatcher
        dispatcher.add_done_callback(self._dispatcher_ended)
        assert self.timers is not None and self.schedules is not None
        assert self.outbox is not None
        outbox = tasks.create_task(self.outbox.run(), name="outbox")
        sources = [
            tasks.create_task(self.loop_lag.run(), name="loop-lag"),
            tasks.create_task(
                tick_forever(
                    self.message_bus,
                    self.clock,
                    HEARTBEAT_TICK,
                    cfg.supervisor.heartbeat_interval,
                    lambda now: {"timestamp": now, "active_workflows": self.active_workflows()},
                    self._heartbeat_seen,
                ),
                name="heartbeat",
            ),
            tasks.create_task(
                tick_forever(
                    self.message_bus,
                    self.clock,
                    FAST_HEARTBEAT_TICK,
                    cfg.supervisor.fast_heartbeat_interval,
                    lambda now: {"timestamp": now},
                    self._reload_changed_roles,
                ),
                name="fast-heartbeat",
            ),
        ]
        if self.slack is not None and self.slack.inbound is not None:
            sources.append(tasks.create_task(self.slack.inbound.run(), name="slack-in"))
        log.info("ready", roles=sorted(self.role_registry.roles))
        self._ready.set()
        await self._stop_requested.wait()
        log.info("stopping")
        for task in sources:
            task.cancel()
        await self.http.stop()
        self.timers.stop()
        self.schedules.stop()
        try:
            async with asyncio.timeout(cfg.supervisor.shutdown_timeout):
                await self.message_bus.drain()
        except TimeoutError:
            log.warning(
                "shutdown_drain_timed_out",
                queued=self.message_bus.queue_depth,
                timeout_s=cfg.supervisor.shutdown_timeout,
            )
        workflows.cancel()  # cancels and awaits every running workflow
        self.message_bus.close()
        dispatcher.cancel()
        outbox.cancel()  # what is not yet delivered stays in the store for the next start

    def _load_roles(self) -> None:
        self.role_registry.discover_roles()
        self.role_registry.set_intent_processor(self.intent_processor)
        self._roles_discovered = True
        failed = self.role_registry.failed
        if self.config.roles.strict and failed:
            first = next(iter(failed.values()))[0]
            raise RoleContractError(
                f"roles.strict is on and {len(failed)} role file(s) fail their checks, first "
                f"{first}; fix them (see 'intentd check') or start without --strict"
            )

    def _reload_changed_roles(self, now: float) -> None:
        self.role_registry.check_for_changes()

    def _heartbeat_seen(self, now: float) -> None:
        self.last_heartbeat = now
        self.workflow_engine.cleanup_old_workflows(now)
        log.info(
            "heartbeat",
            active_workflows=self.active_workflows(),
            queued=self.message_bus.queue_depth,
            pending_timers=self.timers.pending_count() if self.timers is not None else None,
        )

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        # Without its dispatcher the daemon would accept events it never delivers: stop instead.
        if not self._stop_requested.is_set():
            log.error("dispatcher_stopped", cancelled=task.cancelled())
            self.stop()

    def _bus_not_ready(self) -> str | None:
        if self._dispatcher is None or self._dispatcher.done():
            return "the message bus dispatcher is not running"
        if self._stop_requested.is_set():
            return "the daemon is shutting down"
        return None

    def _roles_not_ready(self) -> str | None:
        return None if self._roles_discovered else "the roles folder has not been loaded yet"

    def _store_not_ready(self) -> str | None:
        return self.store.not_ready() if self.store is not None else "the store is not open yet"

    def _slack_not_ready(self) -> str | None:
        return self.slack.not_ready() if self.slack is not None else "Slack is not connected yet"

    def reload(self) -> None:
        """Re-read the config file, apply the sections that can change live, rescan roles."""
        if self.config_file is not None:
            running_channels = self.communication_manager.config
            try:
                new = load_config(self.config_file)
                # `intentd run --strict` is not in the file: keep it, it is no change
                strict = new.roles.model_copy(update={"strict": self.config.roles.strict})
                new = new.model_copy(update={"roles": strict})
                self.communication_manager.config = new.channels
                self.communication_manager.check()  # as at start: every channel must resolve
            except ConfigError as err:
                self.communication_manager.config = running_channels
                log.error("reload_failed", error=str(err))
                return
            live = {"logging": new.logging, "channels": new.channels}
            stale = sorted(
                name
                for name in type(new).model_fields
                if name not in live and getattr(new, name) != getattr(self.config, name)
            )
            if stale:
                log.warning("reload_needs_restart", sections=stale)
            if new.logging != self.config.logging:
                configure_logging(new.logging.level, new.logging.format)
            self.config = self.config.model_copy(update=live)
        changed = self.role_registry.check_for_changes()  # a broken role file is logged there
        log.info("reloaded", config=self.config_file and str(self.config_file), roles=changed)

    def stop(self) -> None:
        """Ask a running supervisor to shut down gracefully."""
        self._stop_requested.set()

    async def wait_ready(self) -> None:
        """Return once ``run()`` has started every part."""
        await self._ready.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Supervisor"]:
        """Run the supervisor for the body of an ``async with``; stop and await it after."""
        task = asyncio.get_running_loop().create_task(self.run(), name="supervisor")
        ready = asyncio.ensure_future(self.wait_ready())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            await task
        try:
            yield self
        finally:
            self.stop()
            await task

    def _install_signal_handlers(self) -> list[Any]:
        if threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        removers = []
        for signum, callback in (
            (signal.SIGINT, self._on_signal),
            (signal.SIGTERM, self._on_signal),
            (signal.SIGHUP, self._on_reload_signal),
        ):
            loop.add_signal_handler(signum, callback, signum)
            removers.append(lambda signum=signum: loop.remove_signal_handler(signum))
        return removers

    def _on_signal(self, signum: int) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        self.stop()

    def _on_reload_signal(self, signum: int) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        self.reload()
