"""A timer re-fired after a crash posts its reminder once and audits it once."""

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from common.context import EventContext
from common.events import TIMER_EXPIRED
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from roles.timer import handle_timer_expiry
from supervisor.delivery.channels import CommunicationManager
from supervisor.delivery.outbox import Outbox
from supervisor.scheduling.timers import TimerService
from supervisor.store.audit import DurableAuditSink, SqliteAudit
from supervisor.store.outbox import SqliteOutbox
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import FakeClock, settle
from tests.timer_runner import TimerRunner


class Slack:
    """A durable channel that records each post."""

    durable = True

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []

    def split(self, text: str) -> list[str]:
        return [text]

    async def post(self, target: str, text: str, key: str, *, check_since: float | None) -> str:
        self.posts.append((target, text))
        return str(len(self.posts))


class Daemon:
    """One run of the daemon's timer path: store, outbox, audit, bus and the timer role."""

    def __init__(self, path: Path, clock: FakeClock, *, hang_second_role: bool) -> None:
        self.store = Store(path)
        self.slack = Slack()
        comms = CommunicationManager()
        comms.add_channel("slack", self.slack)
        self.outbox = Outbox(SqliteOutbox(self.store), comms.channels, clock)
        comms.outbox = self.outbox
        processor = IntentProcessor(comms, audit_sink=DurableAuditSink(SqliteAudit(self.store)))
        self.bus = MessageBus(processor, clock=clock.time)
        self.bus.subscribe("timer", TIMER_EXPIRED, handle_timer_expiry)
        self.release = asyncio.Event()
        if not hang_second_role:
            self.release.set()
        self.bus.subscribe("other", TIMER_EXPIRED, self._other_role)
        self.timers = TimerService(SqliteTimers(self.store), self.bus, clock)
        self.runner = TimerRunner(self.timers)

    async def _other_role(self, data: Any, context: EventContext) -> list[Any]:
        await self.release.wait()  # still running when the daemon is killed
        return []

    def count(self, table: str) -> int:
        (rows,) = self.store.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(rows)


async def test_a_refire_after_a_crash_posts_once_and_audits_once(tmp_path: Path) -> None:
    clock = FakeClock()
    first = Daemon(tmp_path / "intentd.db", clock, hang_second_role=True)
    timer_id = await first.timers.create(duration=5, label="tea", channel_id="slack:C1")
    dispatcher = asyncio.create_task(first.bus.run())
    await clock.advance(5)  # the timer role's intents are stored; the other role still runs
    assert (first.count("outbox"), first.count("audit_log")) == (1, 1)
    dispatcher.cancel()  # killed here
    with contextlib.suppress(asyncio.CancelledError):
        await dispatcher
    await first.runner.stop()
    first.store.close()

    second = Daemon(tmp_path / "intentd.db", clock, hang_second_role=False)
    await clock.advance(0)
    await second.bus.drain()
    await second.timers.settled()
    timer = await second.timers.get(timer_id)
    assert timer is not None and (timer.state, timer.attempts) == ("fired", 2)
    assert (second.count("outbox"), second.count("audit_log")) == (1, 1)
    worker = asyncio.create_task(second.outbox.run())
    await settle()
    await second.outbox.wait_idle()
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    assert second.slack.posts == [("C1", "Timer expired: tea")]
