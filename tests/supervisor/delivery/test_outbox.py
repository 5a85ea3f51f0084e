"""The durable outbox delivering through the real AsyncWebClient to the fake Slack."""

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from common.errors import DeliveryError
from common.events import NOTIFICATION_DEAD_LETTERED
from common.intents import NotificationIntent
from supervisor.config import ChannelsConfig, OutboxConfig
from supervisor.delivery.channels import CommunicationManager
from supervisor.delivery.outbox import Outbox
from supervisor.slack.web_api import METADATA_EVENT, SlackOut
from supervisor.store.outbox import SqliteOutbox, dead_letters
from supervisor.store.sqlite import Store
from tests.factories import make_bus
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack, Fault

BOT, APP = "xoxb-test", "xapp-test"
CHANNELS = {"C0OPS": "ops", "C0GEN": "general"}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels=CHANNELS) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


class Daemon:
    """The outbox's real parts: store, CommunicationManager, SlackOut, bus; time from FakeClock."""

    def __init__(
        self,
        path: Path,
        slack: FakeSlack,
        session: aiohttp.ClientSession,
        clock: FakeClock,
        token: str = BOT,
        admin: str | None = "slack:#ops",
        **outbox: Any,
    ) -> None:
        self.clock = slack.clock = clock  # Slack stamps messages by the same clock as ours
        self.store = Store(path)
        self.bus, self.processor = make_bus()
        self.seen: list[dict[str, Any]] = []
        self.bus.subscribe("test", NOTIFICATION_DEAD_LETTERED, lambda d, _: self.seen.append(d))
        self.comms = CommunicationManager(ChannelsConfig(admin=admin), stdout=io.StringIO())
        client = AsyncWebClient(
            token=token, base_url=slack.base_url, session=session, retry_handlers=[], timeout=5
        )
        self.comms.add_channel("slack", SlackOut(client))
        config = OutboxConfig(**{"backoff_initial": 1.0, "backoff_max": 60.0, **outbox})
        self.outbox = Outbox(
            SqliteOutbox(self.store),
            self.comms.channels,
            clock,
            config,
            bus=self.bus,
            alert=self.alert,
            random=lambda: 1.0,
        )
        self.comms.outbox = self.outbox
        self.processor.communication_manager = self.comms

    async def alert(self, entry: Any) -> None:
        await self.comms.alert(f"dead letter {entry.id}: {entry.last_error}")

    async def send(self, channel: str, message: str, **fields: Any) -> int:
        return await self.comms.send(NotificationIntent(message=message, channel=channel, **fields))

    async def settle(self) -> None:
        async with asyncio.timeout(5):
            await self.outbox.wait_idle()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.settle()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Daemon"]:
        worker = asyncio.create_task(self.outbox.run())
        try:
            await self.settle()
            yield self
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


@pytest.fixture
def daemon(tmp_path: Path, slack: FakeSlack, session: aiohttp.ClientSession) -> Daemon:
    return Daemon(tmp_path / "intentd.db", slack, session, FakeClock())


def texts(slack: FakeSlack, channel: str | None = None) -> list[str | None]:
    return [post.text for post in slack.posts if channel in (None, post.channel)]


async def test_a_notification_is_stored_before_send_returns_then_delivered(
    daemon: Daemon, slack: FakeSlack
) -> None:
    entry_id = await daemon.send("slack:#ops", "*deploy* finished")
    assert (await daemon.outbox.get(entry_id)).state == "pending"
    async with daemon.running():
        pass
    post = slack.posts[0]
    assert (post.channel, post.text, post.mrkdwn) == ("C0OPS", "*deploy* finished", True)
    assert post.metadata["event_type"] == METADATA_EVENT
    assert (await daemon.outbox.get(entry_id)).state == "delivered"
    assert (daemon.outbox.stats.depth, daemon.outbox.stats.delivered) == (0, 1)


async def test_the_intent_processor_counts_a_notification_processed_once_it_is_stored(
    daemon: Daemon,
) -> None:
    intent = NotificationIntent(message="hi", channel="slack:C0GEN")
    result = await daemon.processor.process_intents([intent])
    row = daemon.store.db.execute("SELECT key, state FROM outbox").fetchone()
    assert (result["processed"], tuple(row)) == (1, (intent.intent_id, "pending"))


async def test_the_same_intent_enqueued_twice_is_stored_and_posted_once(
    daemon: Daemon, slack: FakeSlack
) -> None:
    intent = NotificationIntent(message="once", channel="slack:#ops")
    first, second = await daemon.comms.send(intent), await daemon.comms.send(intent)
    async with daemon.running():
        pass
    assert (first, texts(slack)) == (second, ["once"])


async def test_a_reply_to_a_thread_posts_in_that_thread(daemon: Daemon, slack: FakeSlack) -> None:
    await daemon.send("slack:C0GEN/1700000000.000100", "in the thread")
    async with daemon.running():
        pass
    assert (slack.posts[0].channel, slack.posts[0].thread_ts) == ("C0GEN", "1700000000.000100")


async def test_high_priority_adds_the_mention_but_keeps_the_channel(
    daemon: Daemon, slack: FakeSlack
) -> None:
    await daemon.send("slack:#general", "disk full", priority="high")
    async with daemon.running():
        pass
    assert [(p.channel, p.text) for p in slack.posts] == [("C0GEN", "<!here> disk full")]


async def test_posts_to_one_channel_are_paced_one_per_second(
    daemon: Daemon, slack: FakeSlack
) -> None:
    for n in range(2):
        await daemon.send("slack:#ops", f"ops {n}")
    await daemon.send("slack:#general", "general 0")
    async with daemon.running():
        first = sorted(texts(slack))
        await daemon.advance(0.99)
        still = len(slack.posts)
        await daemon.advance(0.01)
    assert (first, still, texts(slack, "C0OPS")) == (["general 0", "ops 0"], 2, ["ops 0", "ops 1"])


@pytest.mark.parametrize(("retry_after", "seconds"), [("2", 2.0), ("0.5", 0.5)])
async def test_a_429_waits_exactly_retry_after_then_posts_once(
    tmp_path: Path,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    retry_after: str,
    seconds: float,
) -> None:
    daemon = Daemon(tmp_path / "x.db", slack, session, FakeClock(), per_channel_rate=0)
    slack.fail_next("chat.postMessage", Fault.ratelimited(retry_after=retry_after))
    await daemon.send("slack:#ops", "later")
    async with daemon.running():
        await daemon.advance(seconds * 0.75)
        before = len(slack.posts)
        await daemon.advance(seconds * 0.25)
    assert (before, texts(slack), daemon.outbox.stats.retries) == (0, ["later"], 1)


async def test_server_errors_back_off_exponentially_then_deliver(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack.fail_next("chat.postMessage", Fault.http_status(500), Fault.http_status(502))
    await daemon.send("slack:#ops", "eventually")
    async with daemon.running():
        await daemon.advance(1.0)  # first backoff: 1 s
        after_first = len(slack.calls)
        await daemon.advance(1.99)  # second backoff: 2 s
        before_second = len(slack.calls)
        await daemon.advance(0.01)
    assert (after_first, before_second, texts(slack)) == (2, 2, ["eventually"])
    assert daemon.outbox.stats.retries == 2


def test_backoff_doubles_to_its_cap_with_jitter_between_half_and_all(tmp_path: Path) -> None:
    config = OutboxConfig(backoff_initial=1, backoff_max=10)
    low = Outbox(
        SqliteOutbox(Store(tmp_path / "a.db")), {}, FakeClock(), config, random=lambda: 0.0
    )
    high = Outbox(
        SqliteOutbox(Store(tmp_path / "b.db")), {}, FakeClock(), config, random=lambda: 1.0
    )
    assert [high.backoff(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert [low.backoff(n) for n in (1, 5)] == [0.5, 5]


@pytest.mark.parametrize("channel", ["slack:#ops", "slack:C0OPS/1700000000.000100"])
async def test_a_connection_dropped_mid_request_does_not_post_twice(
    daemon: Daemon, slack: FakeSlack, channel: str
) -> None:
    slack.fail_next("chat.postMessage", Fault.drop_after_recording())
    entry_id = await daemon.send(channel, "exactly once")
    async with daemon.running():
        unsure = (await daemon.outbox.get(entry_id)).unsure
        await daemon.advance(1.0)
    checked = {"conversations.history", "conversations.replies"} & {c.method for c in slack.calls}
    assert (unsure, texts(slack), (await daemon.outbox.get(entry_id)).state) == (
        True,
        ["exactly once"],
        "delivered",
    )
    assert len(checked) == 1


async def test_a_post_that_times_out_is_checked_before_it_is_sent_again(
    tmp_path: Path, slack: FakeSlack
) -> None:
    # The only real wait here: Slack answering after the session's 0.05 s request timeout.
    timeout = aiohttp.ClientTimeout(total=0.05)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        daemon = Daemon(tmp_path / "x.db", slack, session, FakeClock())
        slack.fail_next("chat.postMessage", Fault.slow(0.2))
        entry_id = await daemon.send("slack:C0OPS", "slow but once")
        async with daemon.running():
            first = await daemon.outbox.get(entry_id)
            await daemon.advance(1.0)
    methods = [c.method for c in slack.calls]
    assert (first.unsure, first.state, "timed out" in (first.last_error or "")) == (
        True,
        "pending",
        True,
    )
    assert (texts(slack), (await daemon.outbox.get(entry_id)).state) == (
        ["slow but once"],
        "delivered",
    )
    assert methods == ["chat.postMessage", "conversations.history"]


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("slack:#nowhere", "channel_not_found"),  # the fake knows no such channel
        ("slack:#general", "not_in_channel"),
        ("slack:#general", "msg_too_long"),  # what is left when a split part is still too long
        ("slack:#general", "invalid_auth"),
    ],
)
async def test_a_permanent_error_is_dead_lettered_at_once_with_one_alert(
    daemon: Daemon, slack: FakeSlack, channel: str, error: str
) -> None:
    if error != "channel_not_found":
        slack.fail_next("chat.postMessage", Fault.error(error))
    entry_id = await daemon.send(channel, "lost?")
    async with daemon.running():
        await daemon.bus.drain()
    posts = [c for c in slack.calls if c.method == "chat.postMessage"]
    (dead,) = dead_letters(daemon.store.db)
    assert (dead.id, dead.attempts, len(posts) - 1) == (entry_id, 1, 1)
    assert f"({error})" in (dead.last_error or "")
    assert texts(slack) == [f"<!here> dead letter {entry_id}: {dead.last_error}"]
    assert [event["outbox_id"] for event in daemon.seen] == [entry_id]
    assert daemon.outbox.stats.dead_letters == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_retried_not_dead_lettered(
    daemon: Daemon, slack: FakeSlack, status: int
) -> None:
    slack.fail_next("chat.postMessage", Fault.http_status(status))
    entry_id = await daemon.send("slack:#general", "try again")
    async with daemon.running():
        first = await daemon.outbox.get(entry_id)
        await daemon.advance(1.0)  # the first backoff
    assert (first.state, first.attempts, f"HTTP {status}" in (first.last_error or "")) == (
        "pending",
        1,
        True,
    )
    assert (dead_letters(daemon.store.db), texts(slack)) == ([], ["try again"])
    assert (await daemon.outbox.get(entry_id)).state == "delivered"


async def test_invalid_auth_is_dead_lettered_at_once(
    tmp_path: Path, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    daemon = Daemon(tmp_path / "x.db", slack, session, FakeClock(), token="xoxb-wrong", admin=None)
    await daemon.send("slack:#ops", "nope")
    async with daemon.running():
        pass
    (dead,) = dead_letters(daemon.store.db)
    assert (dead.attempts, "invalid_auth" in (dead.last_error or "")) == (1, True)
    assert len(slack.calls) == 1


async def test_an_alert_that_cannot_be_delivered_raises_no_further_alert(
    tmp_path: Path, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    daemon = Daemon(tmp_path / "x.db", slack, session, FakeClock(), admin="slack:#gone")
    await daemon.send("slack:#nowhere", "lost")
    async with daemon.running():
        await daemon.advance(60)
    dead = dead_letters(daemon.store.db)
    assert [(d.target, d.alert) for d in dead] == [("#nowhere", False), ("#gone", True)]
    assert [c.method for c in slack.calls] == ["chat.postMessage"] * 2


async def test_slack_down_past_the_retry_budget_loses_nothing_and_keeps_order(
    tmp_path: Path, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    daemon = Daemon(tmp_path / "x.db", slack, session, FakeClock(), admin=None, max_attempts=3)
    slack.down()
    for n in range(3):
        await daemon.send("slack:#ops", f"ops {n}")
    await daemon.send("slack:#general", "general 0")
    async with daemon.running():
        for _ in range(12):
            await daemon.advance(4)
        dead = len(dead_letters(daemon.store.db))
        slack.up()
        await daemon.outbox.retry()
        await daemon.settle()
        for _ in range(3):
            await daemon.advance(1)
    assert (dead, daemon.outbox.stats.depth) == (4, 0)
    assert texts(slack, "C0OPS") == ["ops 0", "ops 1", "ops 2"]
    assert texts(slack, "C0GEN") == ["general 0"]


async def test_slack_down_within_the_retry_budget_delivers_in_order_when_back(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack.down()
    for n in range(3):
        await daemon.send("slack:#ops", f"ops {n}")
    async with daemon.running():
        await daemon.advance(1)
        await daemon.advance(2)
        slack.up()
        await daemon.advance(4)
        await daemon.advance(1)
        await daemon.advance(1)
    assert (texts(slack), dead_letters(daemon.store.db)) == (["ops 0", "ops 1", "ops 2"], [])


async def test_a_restart_resumes_pending_entries_and_checks_an_unsure_one_first(
    tmp_path: Path, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    clock, path = FakeClock(), tmp_path / "intentd.db"
    first = Daemon(path, slack, session, clock)
    slack.fail_next("chat.postMessage", Fault.drop_after_recording())
    await first.send("slack:#ops", "posted before the crash")
    await first.send("slack:#ops", "never tried")
    async with first.running():
        pass  # the daemon dies here, answer unseen, the second entry untouched
    first.store.close()
    second = Daemon(path, slack, session, clock)
    async with second.running():
        await second.advance(1)
        await second.advance(1)
    assert texts(slack) == ["posted before the crash", "never tried"]
    assert second.outbox.stats.delivered == 2


async def test_a_long_message_is_split_at_the_limit_and_posted_in_order(
    daemon: Daemon, slack: FakeSlack
) -> None:
    words = " ".join(f"w{n:05d}" for n in range(14_000))  # 97,999 characters
    await daemon.send("slack:#ops", words)
    async with daemon.running():
        await daemon.advance(1)
        await daemon.advance(1)
    assert [len(t or "") <= 40_000 for t in texts(slack)] == [True, True, True]
    assert " ".join(t or "" for t in texts(slack)) == words


class Scripted:
    """A durable channel that posts to a list, refuses ``C404`` and crashes on ``boom``."""

    durable = True

    def __init__(self) -> None:
        self.posted: list[str] = []
        self.splits = 0

    def split(self, text: str) -> list[str]:
        self.splits += 1
        if text == "boom":
            raise IndexError("list index out of range")
        return [text]

    async def post(self, target: str, text: str, key: str, *, check_since: float | None) -> str:
        if target == "C404":
            raise DeliveryError("channel_not_found", permanent=True)
        self.posted.append(text)
        return "1.0"


@contextlib.asynccontextmanager
async def lanes(outbox: Outbox) -> AsyncIterator[asyncio.Task[None]]:
    worker = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(5):
            await outbox.wait_idle()
        yield worker
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def intent(message: str) -> NotificationIntent:
    return NotificationIntent(message=message, channel="slack:C1")


async def test_an_alert_that_raises_is_logged_and_the_outbox_keeps_delivering(
    tmp_path: Path,
) -> None:
    async def broken_alert(entry: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    channel = Scripted()
    outbox = Outbox(
        SqliteOutbox(Store(tmp_path / "x.db")), {"slack": channel}, FakeClock(), alert=broken_alert
    )
    await outbox.enqueue("slack", "C404", "lost", intent("lost"))
    await outbox.enqueue("slack", "C200", "kept", intent("kept"))
    async with lanes(outbox) as worker:
        alive = not worker.done()
    assert (alive, channel.posted, outbox.stats.dead_letters) == (True, ["kept"], 1)


async def test_an_attempt_that_crashes_waits_its_backoff_while_other_lanes_deliver(
    tmp_path: Path,
) -> None:
    channel, clock = Scripted(), FakeClock()
    config = OutboxConfig(backoff_initial=2.0)
    outbox = Outbox(
        SqliteOutbox(Store(tmp_path / "x.db")),
        {"slack": channel},
        clock,
        config,
        random=lambda: 1.0,
    )
    crashing = await outbox.enqueue("slack", "C1", "boom", intent("boom"))
    await outbox.enqueue("slack", "C2", "fine", intent("fine"))
    async with lanes(outbox) as worker:
        first = channel.splits
        await clock.advance(1.9)
        await outbox.wait_idle()
        early = channel.splits
        await clock.advance(0.1)
        await outbox.wait_idle()
        alive = not worker.done()
    assert (alive, channel.posted, first, early, channel.splits) == (True, ["fine"], 2, 2, 3)
    assert (await outbox.get(crashing)).state == "pending"


def test_backoff_stays_at_its_cap_for_huge_attempt_numbers(tmp_path: Path) -> None:
    config = OutboxConfig(backoff_initial=1, backoff_max=10, max_attempts=100_000)
    outbox = Outbox(
        SqliteOutbox(Store(tmp_path / "a.db")), {}, FakeClock(), config, random=lambda: 1.0
    )
    assert [outbox.backoff(n) for n in (1030, 99_999)] == [10, 10]


async def test_an_entry_for_a_channel_kind_no_longer_configured_is_dead_lettered_with_one_alert(
    tmp_path: Path,
) -> None:
    alerts: list[Any] = []

    async def alert(entry: Any) -> None:
        alerts.append(entry.id)

    outbox = Outbox(SqliteOutbox(Store(tmp_path / "x.db")), {}, FakeClock(), alert=alert)
    entry_id = await outbox.enqueue("slack", "C1", "orphan", intent("orphan"))
    async with lanes(outbox):
        pass
    (dead,) = dead_letters(outbox.backend.store.db)
    assert (dead.id, alerts, dead.last_error) == (
        entry_id,
        [entry_id],
        (
            "no channel of kind 'slack' is configured; configure it (slack.enabled: true) and run "
            f"`intentd dead-letters retry {entry_id}`"
        ),
    )


@pytest.mark.parametrize("fault", [Fault.ratelimited("2"), Fault.http_status(503)])
@pytest.mark.parametrize("channel", ["slack:#ops", "slack:C0OPS/1700000000.000100"])
async def test_a_failed_duplicate_check_does_not_let_an_unsure_post_go_out_again(
    daemon: Daemon, slack: FakeSlack, channel: str, fault: Fault
) -> None:
    slack.fail_next("chat.postMessage", Fault.drop_after_recording())
    for method in ("conversations.history", "conversations.replies"):
        slack.fail_next(method, fault)
    entry_id = await daemon.send(channel, "exactly once")
    async with daemon.running():
        await daemon.advance(1.0)  # the check fails: nothing is posted
        after_failed_check = (texts(slack), (await daemon.outbox.get(entry_id)).unsure)
        await daemon.advance(60.0)  # the next check succeeds and finds the post
    check = "conversations.replies" if "/" in channel else "conversations.history"
    methods = [c.method for c in slack.calls if c.method != "conversations.list"]
    assert after_failed_check == (["exactly once"], True)
    assert (texts(slack), (await daemon.outbox.get(entry_id)).state) == (
        ["exactly once"],
        "delivered",
    )
    assert methods == ["chat.postMessage", check, check]


async def test_a_post_hidden_behind_300_recent_replies_is_found_by_paging(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    async with FakeSlack(bot_token=BOT, channels=CHANNELS, clock=clock, page_limit=15) as slack:
        daemon = Daemon(tmp_path / "x.db", slack, session, clock)
        parent = slack.say("C0OPS", "incident: db down")
        for n in range(300):  # a busy thread: all of it inside the check's window
            slack.say("C0OPS", f"reply {n}", thread_ts=parent)
        entry_id = await daemon.send(f"slack:C0OPS/{parent}", "runbook step 3")
        slack.fail_next("chat.postMessage", Fault.drop_after_recording())
        async with daemon.running():
            await daemon.advance(1.0)
    pages = [c for c in slack.calls if c.method == "conversations.replies"]
    assert (texts(slack), (await daemon.outbox.get(entry_id)).state) == (
        ["runbook step 3"],
        "delivered",
    )
    assert (len(pages), {c.args.get("oldest") for c in pages}) == (21, {f"{clock.now - 61:.6f}"})


async def test_the_duplicate_check_reads_only_what_came_after_the_first_attempt(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    async with FakeSlack(bot_token=BOT, channels=CHANNELS, clock=clock, page_limit=15) as slack:
        daemon = Daemon(tmp_path / "x.db", slack, session, clock)
        parent = slack.say("C0OPS", "incident: db down")
        for n in range(300):
            slack.say("C0OPS", f"reply {n}", thread_ts=parent)
        await clock.advance(3600)  # the thread is an hour old when we answer in it
        slack.fail_next("chat.postMessage", Fault.drop_after_recording())
        entry_id = await daemon.send(f"slack:C0OPS/{parent}", "resolved")
        async with daemon.running():
            await daemon.advance(1.0)
    pages = [c for c in slack.calls if c.method == "conversations.replies"]
    assert (texts(slack), (await daemon.outbox.get(entry_id)).state) == (["resolved"], "delivered")
    assert len(pages) == 1
