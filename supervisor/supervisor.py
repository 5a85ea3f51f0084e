"""The Supervisor: builds the daemon's parts, runs them on one loop, and stops them cleanly.

Rules kept here:
- Constructing a Supervisor reads the config and builds objects; it starts no thread and no task,
  with or without a running loop.
- ``run()`` owns every task it starts in one TaskGroup; ``stop()`` (or SIGINT/SIGTERM) stops the
  sources and the HTTP API, drains the bus within ``shutdown_timeout``, then cancels and awaits
  every task.
- ``reload()`` (or SIGHUP) re-reads the config file, applies what can change live and rescans the
  roles folder; a config file that no longer loads is logged and changes nothing.
"""

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import structlog

from common.clock import Clock, SystemClock
from common.errors import ConfigError
from common.events import FAST_HEARTBEAT_TICK, HEARTBEAT_TICK
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from llm_provider.role_registry import RoleRegistry
from supervisor.channels import CommunicationManager
from supervisor.config import Config, load_config
from supervisor.heartbeat import tick_forever
from supervisor.http_api import HttpApi
from supervisor.metrics import daemon_metrics
from supervisor.readiness import Readiness
from supervisor.services import RoleServices
from supervisor.status import StatusFields

log = structlog.get_logger("intentd.supervisor")


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
        self.workflow_engine: Any = None
        self.intent_processor = IntentProcessor(
            self.communication_manager,
            self.workflow_engine,
            message_bus=self.message_bus,
            services_factory=self.services_for,
            intent_timeout=cfg.roles.intent_timeout,
        )
        self.message_bus.set_intent_processor(self.intent_processor)
        self.role_registry = RoleRegistry(cfg.resolve(cfg.roles.directory), self.message_bus)
        self.timer_service: Any = None
        self.started_at: float | None = None
        self.last_heartbeat: float | None = None
        self._services: dict[str, RoleServices] = {}
        self._stop_requested: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._roles_discovered = False
        self.readiness = Readiness()
        self.readiness.add("bus", self._bus_not_ready)
        self.readiness.add("roles", self._roles_not_ready)
        self.status = StatusFields()
        self.metrics = daemon_metrics(self)
        self.http = HttpApi(self)
        self.metrics.add_source("http", self.http.metric_families)

    # -- parts roles use --------------------------------------------------------------------

    def services_for(self, role: str) -> RoleServices:
        """Return the services object handed to ``role``'s intent handlers."""
        services = self._services.get(role)
        if services is None:
            settings = self.config.roles.settings.get(role, {})
            services = RoleServices(role=role, bus=self.message_bus, settings=settings)
            self._services[role] = services
        return services

    def active_workflows(self) -> int:
        """Return how many LLM workflows are running now."""
        engine = self.workflow_engine
        return engine.active_count if engine is not None else 0

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()`` or SIGINT/SIGTERM; return after a graceful shutdown."""
        self._stop_requested = asyncio.Event()
        self._ready = asyncio.Event()
        removers = self._install_signal_handlers()
        try:
            await self.http.start()
            async with asyncio.TaskGroup() as tasks:
                await self._serve(tasks)
        finally:
            await self.http.stop()
            for remove in removers:
                remove()
            self._ready = None
            self._dispatcher = None
            log.info("stopped")

    async def _serve(self, tasks: asyncio.TaskGroup) -> None:
        assert self._stop_requested is not None and self._ready is not None
        cfg = self.config
        self.started_at = self.clock.time()
        dispatcher = tasks.create_task(self.message_bus.run(), name="message-bus")
        self._dispatcher = dispatcher
        self.role_registry.discover_roles()
        self.role_registry.set_intent_processor(self.intent_processor)
        self._roles_discovered = True
        sources = [
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
                ),
                name="fast-heartbeat",
            ),
        ]
        log.info("ready", roles=sorted(self.role_registry.roles))
        self._ready.set()
        await self._stop_requested.wait()
        log.info("stopping")
        for task in sources:
            task.cancel()
        await self.http.stop()
        try:
            async with asyncio.timeout(cfg.supervisor.shutdown_timeout):
                await self.message_bus.drain()
        except TimeoutError:
            log.warning(
                "shutdown_drain_timed_out",
                queued=self.message_bus.queue_depth,
                timeout_s=cfg.supervisor.shutdown_timeout,
            )
        self.message_bus.close()
        dispatcher.cancel()

    def _heartbeat_seen(self, now: float) -> None:
        self.last_heartbeat = now

    def _bus_not_ready(self) -> str | None:
        if self._dispatcher is None or self._dispatcher.done():
            return "the message bus dispatcher is not running"
        if self._stop_requested is not None and self._stop_requested.is_set():
            return "the daemon is shutting down"
        return None

    def _roles_not_ready(self) -> str | None:
        return None if self._roles_discovered else "the roles folder has not been loaded yet"

    def reload(self) -> None:
        """Re-read the config file, apply the sections that can change live, rescan roles."""
        if self.config_file is not None:
            try:
                new = load_config(self.config_file)
            except ConfigError as err:
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
            self.config = self.config.model_copy(update=live)
            logging.getLogger().setLevel(new.logging.level)
            self.communication_manager.config = new.channels
        try:
            added = self.role_registry.rescan()
        except Exception as err:
            log.error("reload_roles_failed", error=str(err), exc_info=err)
            return
        log.info("reloaded", config=self.config_file and str(self.config_file), roles_added=added)

    def stop(self) -> None:
        """Ask a running supervisor to shut down gracefully."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def wait_ready(self) -> None:
        """Return once ``run()`` has started every part."""
        while self._ready is None:
            await asyncio.sleep(0)
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
