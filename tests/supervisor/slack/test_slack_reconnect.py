"""Socket Mode reconnects judged by each connection's own hello and pongs, on the fake clock."""

import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from supervisor.logs import configure_logging
from supervisor.slack.socket_mode import SlackIn
from tests.factories import make_bus
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack
from tests.supervisor.slack.socket_mode_driver import next_wait, opens, running, until

BOT, APP = "xoxb-test", "xapp-1-A0FAKE-42-secretsecret"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels={"C0GEN": "general"}) as fake:
        yield fake


@pytest.fixture
async def web(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(base_url=slack.base_url, session=session, retry_handlers=[])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slack_in(web: AsyncWebClient, clock: FakeClock) -> SlackIn:
    # random 0.5 puts each wait at 75 % of its ceiling: 1 s doubling, capped at 8 s.
    return SlackIn(
        APP,
        web,
        make_bus()[0],
        reconnect_interval=1.0,
        reconnect_max=8.0,
        clock=clock,
        random=lambda: 0.5,
    )


async def test_a_drop_soon_after_a_long_outage_is_reopened_within_reconnect_interval(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    async with running(slack_in):
        await until(lambda: slack_in.connected)
        slack.down()
        await slack.drop_connections()
        outage = []
        while sum(outage) < 30:
            outage.append(await next_wait(slack_in, clock, slack))
        slack.up()
        outage.append(await next_wait(slack_in, clock, slack))
        await until(lambda: slack_in.connected)
        await clock.advance(0.3)
        await slack.drop_connections()
        after_drop = await next_wait(slack_in, clock, slack)
        await until(lambda: slack_in.connected)
    assert outage == [0.75, 1.5, 3.0] + [6.0] * 6  # 41.25 s away, the last wait's open succeeds
    assert (after_drop, slack.connections) == (0.75, 3)


async def test_a_refused_handshake_asks_for_a_fresh_url_under_backoff(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    slack.refuse_handshakes(503, 403)
    async with running(slack_in):
        waits = [await next_wait(slack_in, clock, slack) for _ in range(2)]
        await until(lambda: slack_in.connected)
    tickets = [ticket for ticket, _ in slack.handshakes]
    assert [status for _, status in slack.handshakes] == [503, 403, 101]
    assert (waits, opens(slack), len(set(tickets))) == ([1.5, 3.0], 3, 3)


@pytest.mark.usefixtures("restore_logging")
async def test_no_ticket_url_or_token_reaches_the_log_even_at_debug(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    slack.refuse_handshakes(500)
    async with running(slack_in):
        await next_wait(slack_in, clock, slack)
        await until(lambda: slack_in.connected)
        await slack.drop_connections()
        await next_wait(slack_in, clock, slack)
    output = stream.getvalue()
    events = [json.loads(line)["event"] for line in output.splitlines()]
    assert "slack_connect_failed" in events and "slack_connection_lost" in events
    assert [ticket for ticket, _ in slack.handshakes if ticket in output] == []
    assert (APP in output, "ticket=[redacted]" in output) == (False, True)  # slack_sdk's debug


async def test_a_connection_whose_pongs_stop_is_replaced_and_counts_as_opened(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    async with running(slack_in):
        await until(lambda: slack_in.connected)
        await clock.advance(1.0)
        await until(lambda: slack.pings_answered == 1)
        slack.pongs = False
        await clock.advance(1.0)
        still_up = slack_in.connected  # one ping unanswered: not yet stale
        await clock.advance(1.0)  # two intervals without a frame
        wait = await next_wait(slack_in, clock, slack)
        slack.pongs = True
        await until(lambda: slack_in.connected)
    assert (still_up, wait, slack.connections) == (True, 0.75, 2)


async def test_a_connection_never_greeted_is_a_failed_attempt(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    slack.hello = False
    async with running(slack_in):
        await slack.wait_connected(1)
        greeted_meanwhile = slack_in.connected
        await clock.advance(2.0)
        first = await next_wait(slack_in, clock, slack)
        await slack.wait_connected(2)
        await clock.advance(2.0)
        slack.hello = True  # for the next connection, which is opened once the wait is over
        second = await next_wait(slack_in, clock, slack)
        await until(lambda: slack_in.connected)
    assert (greeted_meanwhile, first, second) == (False, 1.5, 3.0)


async def test_a_planned_refresh_reconnects_at_once_and_link_disabled_waits(
    slack: FakeSlack, slack_in: SlackIn, clock: FakeClock
) -> None:
    async with running(slack_in):
        await until(lambda: slack_in.connected)
        await slack.disconnect_clients("refresh_requested")
        await slack.wait_connected(2)
        await until(lambda: slack_in.connected)
        waited_for_refresh = slack_in.retry_at
        await slack.disconnect_clients("link_disabled")
        wait = await next_wait(slack_in, clock, slack)
        await until(lambda: slack_in.connected)
    assert (waited_for_refresh, wait, opens(slack)) == (None, 0.75, 3)
