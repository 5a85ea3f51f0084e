"""The Supervisor: builds the daemon's parts, runs them on one loop, and stops them cleanly.

Rules kept here:
- Constructing a Supervisor reads the config and builds objects; it starts no thread and no task,
  with or without a running loop.
- ``run()`` owns every task it starts in one TaskGroup; ``stop()`` (or SIGINT/SIGTERM) stops the
  sources and the HTTP API, drains the bus within ``shutdown_timeout``, then cancels and awaits
  every task.
- ``reload()`` (or SIGHUP) re-reads the config file, applies what can change live and starts a
  rescan of the roles folder at once (as the fast heartbeat does); a config file that no longer
  loads is logged and changes nothing.
- ``run()`` opens the store (journal, timers, schedules, audit, outbox) before anything starts
  and closes it last; the journal's unfinished events are replayed and timers and schedules are
  armed only after the roles are loaded, so no event finds no handler. With ``slack.enabled``
  the Slack tokens are checked before anything starts.
- The HTTP API answers before the roles load (``/readyz`` names the files loading). Role files
  are imported only after a trial import in a forked child finished within
  ``roles.import_timeout`` (llm_provider/role_trial.py), at start and on every rescan; a rescan
  runs as a task, so a slow file never holds up the loop.
- Stopping leaves nothing accepted behind: what the drain did not finish within
  ``shutdown_timeout`` stays in the journal and is delivered at the next start.
"""

import asyncio
import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog
from prometheus_client.core import Metric

from common.clock import Clock, SystemClock
from common.context import EventContext
from common.errors import ConfigError, RoleContractError, StoreError
from common.events import FAST_HEARTBEAT_TICK, HEARTBEAT_TICK, TIMER_DELIVERY_FAILING
from common.ids import new_id
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus, Subscription
from llm_provider.factory import build_models
from llm_provider.role_announcements import ANNOUNCED_EVENTS, make_announcer
from llm_provider.role_contract import display_path
from llm_provider.role_quarantine import FailureWindow
from llm_provider.role_registry import REGISTRY, RoleRegistry
from llm_provider.role_trial import trial_import
from llm_provider.workflow_engine import WorkflowEngine
from supervisor.config import Config, load_config
from supervisor.delivery.channels import CommunicationManager
from supervisor.delivery.outbox import Outbox, OutboxEntry, alert_text
from supervisor.event_intake import MAX_IN_FLIGHT, SHARED_IN_FLIGHT, EventIntake
from supervisor.logs import configure_logging
from supervisor.ops.http_api import HttpApi, check_exposure
from supervisor.ops.loop_lag import LoopLagMonitor
from supervisor.ops.metrics import (
    HandlerDurations,
    Metrics,
    TimerLateness,
    daemon_metrics,
    supervisor_families,
)
from supervisor.ops.readiness import Readiness
from supervisor.ops.status import StatusFields, status_report
from supervisor.runtime import Runtime, build_runtime, instance_name
from supervisor.scheduling.heartbeat import tick_forever
from supervisor.scheduling.schedules import ScheduleService
from supervisor.scheduling.timer_alerts import make_timer_alerter
from supervisor.scheduling.timers import TimerService
from supervisor.services import DaemonServices
from supervisor.slack.connection import SlackConnection
from supervisor.store.backends import StoreParts, open_parts
from supervisor.store.sqlite import Store

log = structlog.get_logger("intentd.supervisor")

_TICKS = frozenset({HEARTBEAT_TICK, FAST_HEARTBEAT_TICK})


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
        self._stdout = stdout
        cfg = self.config
        if cfg.http.enabled:
            check_exposure(cfg.http.host, cfg.http.token)
        self.message_bus = MessageBus(
            max_queue=cfg.bus.max_queue,
            handler_timeout=cfg.roles.handler_timeout,
            block_threshold=cfg.roles.block_threshold,
            clock=self.clock.time,
        )
        self.models = build_models(cfg.llm)  # a missing extra or API key stops the start here
        self.runtime: Runtime | None = None  # built by run(), on the store it opens
        announcer = make_announcer("admin")  # resolved when sent, so a reload takes effect
        for event_type in ANNOUNCED_EVENTS:
            self.message_bus.subscribe(REGISTRY, event_type, announcer)
        self.message_bus.subscribe("timers", TIMER_DELIVERY_FAILING, make_timer_alerter("admin"))
        self.failure_window = FailureWindow(
            cfg.roles.quarantine_failures,
            cfg.roles.quarantine_window,
            self.clock.time,
            self._quarantine,
        )
        self.message_bus.failure_hooks.append(self.failure_window.record)
        self.loop_lag = LoopLagMonitor(
            threshold=cfg.roles.block_threshold, last_called=lambda: self.message_bus.last_called
        )
        self.timer_lateness = TimerLateness()
        self.handler_durations = HandlerDurations()
        self.message_bus.observers.append(self.handler_durations)
        self.message_bus.observers.append(self._loop_has_work)
        self.slack: SlackConnection | None = None
        self.http: HttpApi | None = None
        self.metrics: Metrics | None = None
        self.started_at: float | None = None
        self.last_heartbeat: float | None = None
        self._stop_requested = _Flag()
        self._ready = _Flag()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._role_rescan: asyncio.Task[None] | None = None
        self._roles_folder: tuple[tuple[str, int, int], ...] | None = None  # as last rescanned
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
        self.status.add("journal_backlog", lambda: self.intake and self.intake.backlog)
        self.status.add("journal_oldest_age_s", self._oldest_event_age)
        self.status.add("dead_events", lambda: self.intake and self.intake.stats.dead)
        self.status.add("schedules", lambda: self.schedules and self.schedules.next_runs())
        self.status.add("instances", self._instances)

    # -- the parts of the current run (None before the first run) --------------------------

    @property
    def store(self) -> Store | None:
        """The store the current run opened."""
        return self.runtime.store if self.runtime is not None else None

    @property
    def timers(self) -> TimerService | None:
        """The timer service of the current run."""
        return self.runtime.timers if self.runtime is not None else None

    @property
    def schedules(self) -> ScheduleService | None:
        """The schedule service of the current run."""
        return self.runtime.schedules if self.runtime is not None else None

    @property
    def intake(self) -> EventIntake | None:
        """The event journal's intake of the current run."""
        return self.runtime.intake if self.runtime is not None else None

    @property
    def outbox(self) -> Outbox | None:
        """The notification outbox of the current run."""
        return self.runtime.outbox if self.runtime is not None else None

    @property
    def intent_processor(self) -> IntentProcessor | None:
        """The IntentProcessor of the current run."""
        return self.runtime.processor if self.runtime is not None else None

    @property
    def role_registry(self) -> RoleRegistry | None:
        """The role registry of the current run."""
        return self.runtime.registry if self.runtime is not None else None

    @property
    def workflow_engine(self) -> WorkflowEngine | None:
        """The workflow engine of the current run."""
        return self.runtime.workflow_engine if self.runtime is not None else None

    @property
    def communication_manager(self) -> CommunicationManager | None:
        """The channels of the current run."""
        return self.runtime.channels if self.runtime is not None else None

    def services_for(self, role: str) -> DaemonServices:
        """Return the services object handed to ``role``'s intent handlers."""
        return self._running().services_for(role)

    def _oldest_event_age(self) -> float | None:
        if self.intake is None:
            return None
        stats = self.intake.stats
        if not stats.backlog or stats.oldest_at is None:
            return 0.0
        return round(self.clock.time() - stats.oldest_at, 3)

    def active_workflows(self) -> int:
        """Return how many LLM workflows are running now."""
        return self.runtime.workflow_engine.active_count if self.runtime is not None else 0

    def _running(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError(
                "the supervisor is not running; use 'async with supervisor.running()'"
            )
        return self.runtime

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()`` or SIGINT/SIGTERM; return after a graceful shutdown."""
        self._stop_requested.clear()
        self._ready.clear()
        if self.models.closed:  # a previous run() closed them
            self.models = build_models(self.config.llm)
        parts: StoreParts | None = None
        try:
            instance = instance_name(self.config)
            parts = await open_parts(
                self.config.storage,
                self.config.resolve,
                instance,
                heartbeat=self.config.cluster.heartbeat,
            )
            journal_config = self.config.journal
            if parts.shared:  # claims are renewed, so a short lease only bounds a takeover
                journal_config = journal_config.model_copy(
                    update={
                        "lease": self.config.cluster.lease,
                        "recheck_interval": self.config.cluster.sweep,
                    }
                )
            intake = EventIntake(
                parts.journal,
                self.message_bus,
                self.clock,
                journal_config,
                alert=self._alert_dead_event,
                owner=f"{instance}/{new_id('run')}",
                max_in_flight=SHARED_IN_FLIGHT if parts.shared else MAX_IN_FLIGHT,
            )
            await self._open_slack(intake)
            runtime = self._build_runtime(parts, intake)
            self.runtime = runtime
            http = self._open_http(runtime)
            await http.start()  # /healthz and /readyz answer while the roles load
            await self._load_roles(runtime)
            await intake.start()  # unfinished events are replayed once the dispatcher runs
            await self._arm_timers(runtime)
            runtime.channels.check()
        except BaseException:
            if self.http is not None:
                await self.http.stop()
            if self.runtime is not None:
                await self.runtime.close()
            elif parts is not None:
                await parts.close()
            if self.slack is not None:
                await self.slack.close()
            await self.models.aclose()
            raise
        removers = self._install_signal_handlers()
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._serve(tasks, runtime)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # one failure reads as that failure, not a group
                raise group.exceptions[0] from None
            raise
        finally:
            await http.stop()
            for remove in removers:
                remove()
            self._ready.clear()
            self._dispatcher = None
            self._tasks = self._role_rescan = None
            if self.slack is not None:
                await self.slack.close()
            await self._leave_journal(runtime.intake)
            await runtime.close()
            await self.models.aclose()
            log.info("stopped")

    def _open_http(self, runtime: Runtime) -> HttpApi:
        """Build the metrics and the HTTP API for ``runtime`` (not yet listening)."""
        self.metrics = daemon_metrics(
            bus=self.message_bus,
            processor=runtime.processor,
            daemon=self._daemon_families,
            handler_durations=self.handler_durations,
            timers=runtime.timers,
            timer_lateness=self.timer_lateness,
            outbox=runtime.outbox,
            registry=runtime.registry,
            loop_lag=self.loop_lag,
            workflows=runtime.workflow_engine,
            journal=runtime.intake,
            clock=self.clock.time,
        )
        self.http = HttpApi(
            self.config.http,
            runtime,
            readiness=self.readiness,
            metrics=self.metrics,
            status=self.status_report,
            signed_routes=self.slack.http_routes() if self.slack is not None else (),
        )
        self.metrics.add_source("http", self.http.metric_families)
        if self.slack is not None:
            self.metrics.add_source("slack", self.slack.metric_families)
        return self.http

    def _build_runtime(self, parts: StoreParts, intake: EventIntake) -> Runtime:
        slack = {"slack": self.slack.out} if self.slack is not None else {}
        return build_runtime(
            self.config,
            self.clock,
            parts,
            self.message_bus,
            models=self.models.by_type,
            extra_channels=slack,
            stdout=self._stdout,
            on_timer_fired=self.timer_lateness,
            alert=self._alert_dead_letter,
            intake=intake,
        )

    @staticmethod
    async def _leave_journal(intake: EventIntake) -> None:
        try:
            await intake.shutdown()
        except Exception as err:  # the claims are recovered at the next start or lease end
            log.error("journal_shutdown_failed", error=str(err))

    async def _arm_timers(self, runtime: Runtime) -> None:
        """Arm pending timers and schedules; they fire once the dispatcher runs."""
        try:
            await runtime.timers.start()
            await runtime.schedules.start()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"storage.path {str(self.config.resolve(self.config.storage.path))!r}: cannot "
                f"read the pending timers and schedules ({err}); restore the file from a backup "
                "or move it aside"
            ) from err

    async def _open_slack(self, intake: EventIntake) -> None:
        if not self.config.slack.enabled:
            return
        self.slack = SlackConnection(self.config.slack, intake, self.clock)
        await self.slack.open()

    async def _alert_dead_letter(self, entry: OutboxEntry) -> None:
        await self._running().channels.alert(alert_text(entry))

    async def _alert_dead_event(self, text: str) -> None:
        await self._running().channels.alert(text)

    def _quarantine(self, role: str, failures: int, window: float, error: str) -> None:
        if self.runtime is not None:
            self.runtime.registry.quarantine(role, failures, window, error)

    async def _serve(self, tasks: asyncio.TaskGroup, runtime: Runtime) -> None:
        cfg = self.config
        self.started_at = self.clock.time()
        dispatcher = tasks.create_task(self.message_bus.run(), name="message-bus")
        intake = runtime.intake
        journal = tasks.create_task(intake.run(), name="journal")
        workflows = tasks.create_task(runtime.workflow_engine.run(), name="workflow-engine")
        self._dispatcher = dispatcher
        self._tasks = tasks
        dispatcher.add_done_callback(self._dispatcher_ended)
        outbox = tasks.create_task(runtime.outbox.run(), name="outbox")
        timers = tasks.create_task(runtime.timers.run(), name="timers")
        store_work = [
            tasks.create_task(runtime.schedules.run(), name="schedules"),
            tasks.create_task(runtime.parts.run(), name="store"),
        ]
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
                    self._fast_heartbeat_seen,
                ),
                name="fast-heartbeat",
            ),
        ]
        if self.slack is not None and self.slack.inbound is not None:
            sources.append(tasks.create_task(self.slack.inbound.run(), name="slack-in"))
        log.info("ready", roles=sorted(runtime.registry.roles))
        self._ready.set()
        await self._stop_requested.wait()
        log.info("stopping")
        for task in sources:
            task.cancel()
        if self._role_rescan is not None:
            self._role_rescan.cancel()  # a trial import under way is killed
        assert self.http is not None
        await self.http.stop()
        runtime.timers.stop()
        runtime.schedules.stop()
        try:
            async with asyncio.timeout(cfg.supervisor.shutdown_timeout):
                await intake.drain()
                await self.message_bus.drain()
        except TimeoutError:
            log.warning(
                "shutdown_drain_timed_out",
                queued=self.message_bus.queue_depth,
                left_in_journal=intake.backlog,
                timeout_s=cfg.supervisor.shutdown_timeout,
            )
        intake.close()  # what is left is delivered at the next start
        workflows.cancel()  # cancels every run; each tells its user that intentd stopped
        await asyncio.wait({workflows})
        await self._flush_outbox(runtime.outbox)
        self.message_bus.close()
        dispatcher.cancel()
        journal.cancel()
        outbox.cancel()  # what is not yet delivered stays in the store for the next start
        timers.cancel()  # after the drain: the timers' delivery records are written by then
        try:
            await runtime.schedules.save_pending()
        except Exception as err:  # the runs are journaled; the next start catches them up
            log.error("schedule_save_failed", error=str(err))
        for task in store_work:
            task.cancel()

    async def _flush_outbox(self, outbox: Outbox) -> None:
        """Give the outbox up to supervisor.shutdown_timeout to deliver what shutdown stored."""
        timeout = self.config.supervisor.shutdown_timeout
        try:
            async with asyncio.timeout(timeout):
                await outbox.wait_idle()
        except TimeoutError:
            log.warning("shutdown_outbox_not_idle", depth=outbox.stats.depth, timeout_s=timeout)

    def _trial_import(self, path: Path, source: bytes) -> Awaitable[str | None]:
        return trial_import(path, source, self.config.roles.import_timeout)

    async def _load_roles(self, runtime: Runtime) -> None:
        await runtime.registry.discover_roles_after_trial(self._trial_import)
        runtime.registry.set_intent_processor(runtime.processor)
        self._roles_discovered = True
        failed = runtime.registry.failed
        if self.config.roles.strict and failed:
            first = next(iter(failed.values()))[0]
            raise RoleContractError(
                f"roles.strict is on and {len(failed)} role file(s) fail their checks, first "
                f"{first}; fix them (see 'intentd check') or start without --strict"
            )

    def _fast_heartbeat_seen(self, now: float) -> None:
        runtime = self._running()
        folder = runtime.registry.folder_state()
        if folder != self._roles_folder and self._rescan_roles_soon():
            self._roles_folder = folder  # else the next tick tries again
        runtime.timers.sweep()

    def _loop_has_work(
        self, sub: Subscription, context: EventContext, elapsed: float, error: str | None
    ) -> None:
        # the heartbeats alone are the idle loop: they do not keep the lag monitor sampling
        if context.event_type not in _TICKS:
            self.loop_lag.poke()

    def _rescan_roles_soon(self, reloaded: bool = False) -> bool:
        """Start a rescan of the roles folder as a task, after any rescan under way; return
        whether one was started."""
        if self._tasks is None:
            return False  # not serving: run() loads the folder when it starts
        previous = self._role_rescan
        if previous is not None and not previous.done() and not reloaded:
            return False  # a heartbeat tick: the rescan under way sees the same files
        self._role_rescan = self._tasks.create_task(
            self._rescan_roles(previous, reloaded), name="role-rescan"
        )
        return True

    async def _rescan_roles(self, previous: asyncio.Task[None] | None, reloaded: bool) -> None:
        if previous is not None and not previous.done():
            await previous
        registry = self._running().registry
        changed = await registry.check_for_changes_after_trial(self._trial_import)
        if reloaded:
            log.info("reloaded", config=self.config_file and str(self.config_file), roles=changed)

    async def roles_rescanned(self) -> None:
        """Return once no rescan of the roles folder is under way (tests, reload callers)."""
        while self._role_rescan is not None and not self._role_rescan.done():
            await asyncio.wait({self._role_rescan})

    def _heartbeat_seen(self, now: float) -> None:
        self.last_heartbeat = now
        runtime = self._running()
        runtime.workflow_engine.cleanup_old_workflows(now)
        log.info(
            "heartbeat",
            active_workflows=self.active_workflows(),
            queued=self.message_bus.queue_depth,
            pending_timers=runtime.timers.pending_count(),
        )

    def status_report(self) -> dict[str, Any]:
        """Return the daemon's status as a JSON-ready dict."""
        return status_report(
            now=self.clock.time(),
            started_at=self.started_at,
            last_heartbeat=self.last_heartbeat,
            readiness=self.readiness.report(),
            roles=sorted(self.role_registry.roles) if self.role_registry is not None else [],
            bus=self.message_bus,
            active_workflows=self.active_workflows(),
            fields=self.status.read(),
        )

    def _daemon_families(self) -> Iterator[Metric]:
        return supervisor_families(
            now=self.clock.time(),
            started_at=self.started_at,
            last_heartbeat=self.last_heartbeat,
            roles=len(self.role_registry.roles) if self.role_registry is not None else 0,
            active_workflows=self.active_workflows(),
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
        loading = self.runtime.registry.loading if self.runtime is not None else {}
        if loading and not self._roles_discovered:
            now = time.monotonic()
            return "loading " + ", ".join(
                f"{display_path(path)} for {now - since:.1f} s" for path, since in loading.items()
            )
        return None if self._roles_discovered else "the roles folder has not been loaded yet"

    def _instances(self) -> list[dict[str, Any]] | None:
        """Return the cluster's instances seen recently (None on a store of one process)."""
        parts = self.runtime.parts if self.runtime is not None else None
        return parts.instances() if parts is not None and parts.instances is not None else None

    def _store_not_ready(self) -> str | None:
        if self.runtime is None:
            return "the store is not open yet"
        return self.runtime.parts.health()

    def _slack_not_ready(self) -> str | None:
        return self.slack.not_ready() if self.slack is not None else "Slack is not connected yet"

    def reload(self) -> None:
        """Re-read the config file, apply the sections that can change live, rescan roles."""
        runtime = self._running()
        if self.config_file is not None:
            running_channels = runtime.channels.config
            try:
                new = load_config(self.config_file)
                # `intentd run --strict` is not in the file: keep it, it is no change
                strict = new.roles.model_copy(update={"strict": self.config.roles.strict})
                new = new.model_copy(update={"roles": strict})
                runtime.channels.config = new.channels
                runtime.channels.check()  # as at start: every channel must resolve
            except ConfigError as err:
                runtime.channels.config = running_channels
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
        if self._tasks is None:
            log.info("reloaded", config=self.config_file and str(self.config_file), roles=[])
        self._rescan_roles_soon(reloaded=True)  # a broken role file is logged there

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
