"""The Events API over HTTP: requests signed the way Slack signs them, to the whole daemon."""

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common.events import SLACK_INTERACTION, USER_REQUEST
from supervisor.config import Config
from supervisor.slack.payloads import user_request
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.fakes.slack import BOT_USER_ID, FakeSlack, signed_headers

BOT, SECRET, TOKEN = "xoxb-test", "8f742231b10e8888abcd99yyyzzz85a5", "http-token-9c1"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT, channels={"C0GEN": "general"}) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_config(tmp_path: Path, slack: FakeSlack) -> Config:
    (tmp_path / "roles").mkdir(exist_ok=True)
    return Config.model_validate(
        {
            "storage": {"path": str(tmp_path / "intentd.db")},
            "roles": {"directory": str(tmp_path / "roles")},
            "slack": {
                "enabled": True,
                "bot_token": BOT,
                "mode": "http",
                "signing_secret": SECRET,
                "base_url": slack.base_url,
            },
            "http": {"port": 0, "token": TOKEN},
        }
    )


class Daemon:
    """A running Supervisor in Events API mode, recording what it publishes."""

    def __init__(self, supervisor: Supervisor, session: aiohttp.ClientSession) -> None:
        self.supervisor, self.session = supervisor, session
        self.seen: list[tuple[str, dict[str, Any]]] = []
        for event_type in (USER_REQUEST, SLACK_INTERACTION):
            supervisor.message_bus.subscribe(
                "test", event_type, lambda data, ctx: self.seen.append((ctx.event_type, data))
            )

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        url = f"http://127.0.0.1:{self.supervisor.http.port}{path}"
        async with self.session.post(url, data=body, headers=headers) as response:
            await response.read()
            await self.supervisor.message_bus.drain()
            return response

    async def send_event(self, payload: dict[str, Any], **sign: Any) -> aiohttp.ClientResponse:
        body = json.dumps(payload).encode()
        stamp = int(self.supervisor.clock.time())
        return await self.post("/slack/events", body, signed_headers(SECRET, body, stamp, **sign))


@pytest.fixture
async def daemon(tmp_path: Path, slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Daemon]:
    supervisor = Supervisor(config=make_config(tmp_path, slack), clock=clock)
    async with supervisor.running(), aiohttp.ClientSession() as session:
        yield Daemon(supervisor, session)


async def test_a_signed_mention_is_published_as_socket_mode_would_publish_it(
    daemon: Daemon, slack: FakeSlack
) -> None:
    payload = slack.app_mention("deploy status", thread_ts="1700000000.000100")
    response = await daemon.send_event(payload)
    assert (response.status, daemon.seen) == (
        200,
        [(USER_REQUEST, user_request("events_api", payload, BOT_USER_ID))],
    )
    assert daemon.seen[0][1]["channel_id"] == "slack:C0GEN/1700000000.000100"


async def test_the_answer_does_not_wait_for_any_handler(daemon: Daemon, slack: FakeSlack) -> None:
    release, finished = asyncio.Event(), []

    async def stuck(data: dict[str, Any], ctx: Any) -> list[Any]:
        await release.wait()
        finished.append(data["text"])
        return []

    daemon.supervisor.message_bus.subscribe("stuck", USER_REQUEST, stuck)
    body = json.dumps(slack.direct_message("hello?")).encode()
    url = f"http://127.0.0.1:{daemon.supervisor.http.port}/slack/events"
    headers = signed_headers(SECRET, body, int(daemon.supervisor.clock.time()))
    async with daemon.session.post(url, data=body, headers=headers) as response:
        status, while_stuck = response.status, finished[:]
    release.set()
    await daemon.supervisor.message_bus.drain()
    assert (status, while_stuck, finished) == (200, [], ["hello?"])


@pytest.mark.parametrize(
    "tamper",
    [
        "wrong secret",
        "stale timestamp",
        "future timestamp",
        "changed body",
        "no signature",
        "no timestamp",
    ],
)
async def test_a_request_slack_did_not_sign_is_401_and_publishes_nothing(
    daemon: Daemon, slack: FakeSlack, tamper: str
) -> None:
    body = json.dumps(slack.app_mention("rm -rf")).encode()
    now = int(daemon.supervisor.clock.time())
    stamp = {"stale timestamp": now - 301, "future timestamp": now + 301}.get(tamper, now)
    headers = signed_headers("not-the-secret" if tamper == "wrong secret" else SECRET, body, stamp)
    if tamper == "changed body":
        body = body.replace(b"rm -rf", b"rm -rF")
    headers.pop(
        {"no signature": "X-Slack-Signature", "no timestamp": "X-Slack-Request-Timestamp"}.get(
            tamper, "none"
        ),
        None,
    )
    response = await daemon.post("/slack/events", body, headers)
    error = (await response.json())["error"]
    assert (response.status, daemon.seen) == (401, [])
    assert error.startswith("X-Slack-")


async def test_a_timestamp_just_inside_five_minutes_is_accepted(
    daemon: Daemon, slack: FakeSlack
) -> None:
    body = json.dumps(slack.direct_message("late but fine")).encode()
    stamp = int(daemon.supervisor.clock.time()) - 299
    response = await daemon.post("/slack/events", body, signed_headers(SECRET, body, stamp))
    assert (response.status, len(daemon.seen)) == (200, 1)


async def test_the_url_verification_challenge_is_answered(daemon: Daemon) -> None:
    challenge = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "type": "url_verification",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    }
    response = await daemon.send_event(challenge)
    assert (response.status, await response.json(), daemon.seen) == (
        200,
        {"challenge": challenge["challenge"]},
        [],
    )


async def test_slack_retries_of_one_event_are_handled_once_also_across_a_restart(
    tmp_path: Path, slack: FakeSlack, clock: FakeClock
) -> None:
    payload = slack.app_mention("once please")
    config = make_config(tmp_path, slack)
    statuses = []
    async with aiohttp.ClientSession() as session:
        first = Supervisor(config=config, clock=clock)
        async with first.running():
            daemon = Daemon(first, session)
            statuses.append((await daemon.send_event(payload)).status)
            statuses.append((await daemon.send_event(payload, retry_num=1)).status)
            before_restart = len(daemon.seen)
        await clock.advance(60)  # Slack's second retry comes a minute later
        second = Supervisor(config=config, clock=clock)
        async with second.running():
            again = Daemon(second, session)
            statuses.append((await again.send_event(payload, retry_num=2)).status)
            statuses.append((await again.send_event(slack.app_mention("a new one"))).status)
    assert (statuses, before_restart) == ([200, 200, 200, 200], 1)
    assert [data["text"] for _, data in again.seen] == ["a new one"]


async def test_a_slash_command_is_published_at_the_channel_top_level(
    daemon: Daemon, slack: FakeSlack
) -> None:
    body = urllib.parse.urlencode(slack.slash_command("/intentd", "list timers")).encode()
    stamp = int(daemon.supervisor.clock.time())
    response = await daemon.post(
        "/slack/commands", body, signed_headers(SECRET, body, stamp, content_type=FORM)
    )
    assert (response.status, [(t, d["channel_id"], d["text"]) for t, d in daemon.seen]) == (
        200,
        [(USER_REQUEST, "slack:C0GEN", "list timers")],
    )


async def test_a_button_press_becomes_a_slack_interaction_acked_at_once(
    daemon: Daemon, slack: FakeSlack
) -> None:
    payload = slack.block_action("approve", "deploy-42", message_ts="1.2")
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    stamp = int(daemon.supervisor.clock.time())
    response = await daemon.post(
        "/slack/interactivity", body, signed_headers(SECRET, body, stamp, content_type=FORM)
    )
    [(event_type, data)] = daemon.seen
    assert (response.status, event_type, data["channel_id"], data["actions"][0]["value"]) == (
        200,
        SLACK_INTERACTION,
        "slack:C0GEN/1.2",
        "deploy-42",
    )


async def test_slack_routes_need_no_bearer_token_but_every_other_route_keeps_it(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack_answer = await daemon.send_event(slack.direct_message("hi"))
    url = f"http://127.0.0.1:{daemon.supervisor.http.port}/status"
    async with daemon.session.get(url) as status:
        other = status.status
    assert (slack_answer.status, other) == (200, 401)


async def test_an_event_without_its_channel_is_answered_counted_and_not_published(
    daemon: Daemon, slack: FakeSlack
) -> None:
    payload = slack.app_mention("where am I")
    del payload["event"]["channel"]
    response = await daemon.send_event(payload)
    url = f"http://127.0.0.1:{daemon.supervisor.http.port}/metrics"
    async with daemon.session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as metrics:
        text = await metrics.text()
    assert (response.status, daemon.seen) == (200, [])
    assert 'intentd_slack_malformed_total{reason="http_no_channel"} 1.0' in text
