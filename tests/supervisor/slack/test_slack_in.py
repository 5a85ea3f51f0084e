"""Slack in: the real SocketModeClient against the fake Slack's Socket Mode endpoint."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from common.clock import SystemClock
from common.errors import SlackAuthError
from common.events import USER_REQUEST
from common.message_bus import MessageBus
from supervisor.config import JournalConfig
from supervisor.event_intake import EventIntake
from supervisor.slack.payloads import user_request
from supervisor.slack.socket_mode import SlackIn
from supervisor.store.sqlite import Store
from tests.factories import RunningIntake, make_bus
from tests.fakes.clock import FakeClock
from tests.fakes.slack import BOT_USER_ID, FakeSlack
from tests.supervisor.slack.socket_mode_driver import next_wait, opens, until

BOT, APP = "xoxb-test", "xapp-test"
CHANNELS = {"C0GEN": "general"}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    # timeout=3: the fake fails send_envelope if the ack takes longer than Slack allows.
    async with FakeSlack(bot_token=BOT, app_token=APP, channels=CHANNELS, timeout=3.0) as fake:
        yield fake


@pytest.fixture
async def web(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(base_url=slack.base_url, session=session, retry_handlers=[])


@pytest.fixture
async def journal(tmp_path: Any) -> AsyncIterator[RunningIntake]:
    """An event journal feeding a bus whose dispatcher is not running (``bus``)."""
    store = Store(tmp_path / "intentd.db")
    running = RunningIntake(store, make_bus()[0], SystemClock(), JournalConfig())
    await running.start()
    yield running
    await running.stop()
    store.close()


@pytest.fixture
def intake(journal: RunningIntake) -> EventIntake:
    return journal.intake


@pytest.fixture
def bus(intake: EventIntake) -> MessageBus:
    return intake.bus


@contextlib.asynccontextmanager
async def connected(slack_in: SlackIn, slack: FakeSlack) -> AsyncIterator[SlackIn]:
    task = asyncio.create_task(slack_in.run())
    try:
        await slack.wait_connected(1)
        yield slack_in
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def published(bus: Any, n: int) -> None:
    """Wait until ``n`` events wait on the bus (the envelope's listener runs as its own task)."""
    async with asyncio.timeout(3):
        # The bus's dispatcher is deliberately not running, so there is nothing to wait on but
        # the loop turning while the SDK's listener task publishes.
        while bus.queue_depth < n:  # noqa: ASYNC110
            await asyncio.sleep(0)


def test_an_app_mention_becomes_a_request_in_its_thread(slack: FakeSlack) -> None:
    payload = slack.app_mention("remind me in 5m to stretch", thread_ts="1700000000.000100")
    assert user_request("events_api", payload, BOT_USER_ID) == {
        "channel_id": "slack:C0GEN/1700000000.000100",
        "user_id": "U0ALICE",
        "text": "remind me in 5m to stretch",
        "source": "slack",
    }


def test_a_mention_outside_a_thread_starts_one_at_its_own_ts(slack: FakeSlack) -> None:
    payload = slack.app_mention("hello")
    ts = payload["event"]["ts"]
    assert user_request("events_api", payload, BOT_USER_ID)["channel_id"] == f"slack:C0GEN/{ts}"


def test_a_direct_message_becomes_a_request(slack: FakeSlack) -> None:
    payload = slack.direct_message("status?")
    data = user_request("events_api", payload, BOT_USER_ID)
    assert (data["channel_id"].split("/")[0], data["text"]) == ("slack:D0ALICE", "status?")


def test_a_slash_command_becomes_a_request_in_its_channel(slack: FakeSlack) -> None:
    payload = slack.slash_command("/intentd", "list timers", user="U0BOB")
    assert user_request("slash_commands", payload, BOT_USER_ID) == {
        "channel_id": "slack:C0GEN",
        "user_id": "U0BOB",
        "text": "list timers",
        "command": "/intentd",
        "source": "slack",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"user": BOT_USER_ID},
        {"bot_id": "B0OTHER"},
        {"subtype": "message_changed"},
        {"type": "reaction_added"},
    ],
)
def test_own_messages_bots_edits_and_other_events_are_ignored(
    slack: FakeSlack, change: dict[str, Any]
) -> None:
    payload = slack.direct_message("echo")
    payload["event"].update(change)
    assert user_request("events_api", payload, BOT_USER_ID) is None


async def test_an_envelope_is_acked_and_published_as_user_request(
    slack: FakeSlack, web: AsyncWebClient, intake: EventIntake, bus: MessageBus
) -> None:
    seen: list[tuple[Any, Any]] = []
    bus.subscribe("test", USER_REQUEST, lambda data, ctx: seen.append((data, ctx.channel_id)))
    async with connected(SlackIn(APP, web, intake, bot_user_id=BOT_USER_ID), slack) as slack_in:
        ack = await slack.send_envelope("events_api", slack.app_mention("ping", thread_ts="1.2"))
        await published(bus, 1)
        await bus.drain()
        assert slack_in.connected
    assert (ack.payload, seen) == (
        None,
        [
            (
                {
                    "channel_id": "slack:C0GEN/1.2",
                    "user_id": "U0ALICE",
                    "text": "ping",
                    "source": "slack",
                },
                "slack:C0GEN/1.2",
            )
        ],
    )


async def test_the_ack_does_not_wait_for_any_handler(
    slack: FakeSlack, web: AsyncWebClient, intake: EventIntake, bus: MessageBus
) -> None:
    async with connected(SlackIn(APP, web, intake), slack):  # no dispatcher handles the events
        acks = [
            await slack.send_envelope("slash_commands", slack.slash_command("/x", str(n)))
            for n in range(3)
        ]
        await published(bus, 3)
    assert [ack.envelope_id for ack in acks] == [ack.envelope_id for ack in slack.acks]


async def test_an_envelope_is_acked_only_once_its_event_is_committed_to_the_journal(
    slack: FakeSlack, web: AsyncWebClient, tmp_path: Any
) -> None:
    store = Store(tmp_path / "held.db")
    held = RunningIntake(store, make_bus()[0], SystemClock(), JournalConfig())
    await held.intake.start()  # accepting, but no run task commits anything yet
    payload = slack.direct_message("keep me")
    try:
        async with connected(SlackIn(APP, web, held.intake), slack):
            sending = asyncio.create_task(slack.send_envelope("events_api", payload))
            await until(lambda: held.intake.uncommitted == 1)
            acked_before_commit = len(slack.acks)
            await held.start()  # the first turn commits, then the listener acks
            await sending
            stored = store.db.execute("SELECT key, event_type FROM journal").fetchall()
    finally:
        await held.stop()
        store.close()
    assert acked_before_commit == 0
    assert [tuple(row) for row in stored] == [(f"slack:{payload['event_id']}", USER_REQUEST)]


async def test_every_envelope_is_acked_while_a_handler_is_stuck(
    slack: FakeSlack, web: AsyncWebClient, intake: EventIntake, bus: MessageBus
) -> None:
    bus.handler_timeout = 60
    release, started, finished = asyncio.Event(), [], []

    async def slow(data: dict[str, Any], ctx: Any) -> list[Any]:
        started.append(data["text"])
        await release.wait()
        finished.append(data["text"])
        return []

    bus.subscribe("slow", USER_REQUEST, slow)
    bus.start()
    try:
        async with connected(SlackIn(APP, web, intake), slack) as slack_in:
            acks = []
            for n in range(4):  # one handled and stuck, three waiting behind it
                acks.append(await slack.send_envelope("events_api", slack.direct_message(str(n))))
                if n == 0:
                    await until(lambda: bool(started))
            await until(lambda: slack_in.received == 4)
            # Every ack is in while the handler is still stuck on the first event.
            in_while_stuck = (len(slack.acks), bus.queue_depth, started[:], finished[:])
            release.set()
            await intake.drain()
    finally:
        await bus.stop()
    assert in_while_stuck == (4, 3, ["0"], [])
    assert [ack.envelope_id for ack in acks] == [ack.envelope_id for ack in slack.acks]
    assert (started, finished) == (["0", "1", "2", "3"], ["0", "1", "2", "3"])


async def test_an_event_slack_sends_again_is_acked_again_but_published_once(
    slack: FakeSlack, web: AsyncWebClient, intake: EventIntake, bus: MessageBus
) -> None:
    payload = slack.app_mention("once")
    async with connected(SlackIn(APP, web, intake), slack):
        await slack.send_envelope("events_api", payload)
        await slack.send_envelope("events_api", payload)
        await slack.send_envelope("events_api", slack.app_mention("twice"))
        await published(bus, 2)
        texts = []
        bus.subscribe("test", USER_REQUEST, lambda data, ctx: texts.append(data["text"]))
        await bus.drain()
    assert (len(slack.acks), texts) == (3, ["once", "twice"])


async def test_a_server_side_disconnect_reconnects_and_keeps_receiving(
    slack: FakeSlack, web: AsyncWebClient, intake: EventIntake, bus: MessageBus
) -> None:
    async with connected(SlackIn(APP, web, intake), slack) as slack_in:
        await slack.disconnect_clients()
        await slack.wait_connected(2)
        await slack.send_envelope("events_api", slack.direct_message("still there?"))
        await published(bus, 1)
        assert slack_in.connected
    opened = [call.method for call in slack.calls].count("apps.connections.open")
    assert (slack.connections, opened, slack_in.connected) == (2, 2, False)


async def test_a_lost_connection_is_retried_with_growing_capped_waits_reset_by_success(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    bus, _ = make_bus()
    clock = FakeClock()
    # random 0.5 puts each wait at 75 % of its ceiling: 1 s doubling, capped at 8 s.
    slack_in = SlackIn(
        APP, web, bus, reconnect_interval=1.0, reconnect_max=8.0, clock=clock, random=lambda: 0.5
    )
    async with connected(slack_in, slack):
        slack.down()
        await slack.drop_connections()
        away = [await next_wait(slack_in, clock, slack) for _ in range(6)]
        down_meanwhile = slack_in.connected
        slack.up()
        back = await next_wait(slack_in, clock, slack)
        await slack.wait_connected(2)
        await until(lambda: slack_in.connected)
        slack.down()
        await slack.drop_connections()
        after_success = await next_wait(slack_in, clock, slack)
        attempts = opens(slack)
    assert away == [0.75, 1.5, 3.0, 6.0, 6.0, 6.0]
    assert (down_meanwhile, back, after_success) == (False, 6.0, 0.75)
    assert (attempts, slack.connections, slack_in.connected) == (9, 2, False)


async def test_a_refused_app_token_is_a_clear_error(slack: FakeSlack, web: AsyncWebClient) -> None:
    bus, _ = make_bus()
    with pytest.raises(SlackAuthError) as err:
        await SlackIn("xapp-wrong", web, bus).check_token()
    assert str(err.value) == (
        "slack.app_token was refused by Slack (invalid_auth); set SLACK_APP_TOKEN to the "
        "app-level token (xapp-...) with the connections:write scope"
    )


async def test_slack_away_at_start_is_not_an_error(slack: FakeSlack, web: AsyncWebClient) -> None:
    bus, _ = make_bus()
    slack.down()
    await SlackIn(APP, web, bus).check_token()
    assert [call.method for call in slack.calls] == ["apps.connections.open"]
