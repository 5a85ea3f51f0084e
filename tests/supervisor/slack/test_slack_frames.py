"""Odd Socket Mode frames: each envelope with an id acked, the malformed logged once, counted."""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from structlog.testing import capture_logs

from common.events import SLACK_INTERACTION, USER_REQUEST
from supervisor.slack.payloads import MalformedPayload, clean, interaction, user_request
from supervisor.slack.socket_connection import Frame, read_frame
from supervisor.slack.socket_mode import SlackIn
from supervisor.store.sqlite import Store
from tests.factories import make_bus, running_intake
from tests.fakes.slack import BOT_USER_ID, FakeSlack
from tests.supervisor.slack.socket_mode_driver import until

APP = "xapp-test"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(app_token=APP, channels={"C0GEN": "general"}, timeout=3.0) as fake:
        yield fake


@pytest.fixture
async def web(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(base_url=slack.base_url, session=session, retry_handlers=[])


@contextlib.asynccontextmanager
async def connected(slack_in: SlackIn, slack: FakeSlack) -> AsyncIterator[SlackIn]:
    task = asyncio.create_task(slack_in.run())
    try:
        await until(lambda: slack_in.connected)
        yield slack_in
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("not json", Frame("malformed", reason="not_json")),
        ("[1, 2]", Frame("malformed", reason="not_an_object")),
        ('{"type": "surprise"}', Frame("malformed", "surprise", reason="no_envelope_id")),
        ('{"envelope_id": 7}', Frame("malformed", reason="no_type")),
        ('{"envelope_id": "e1"}', Frame("malformed", None, "e1", "no_type")),
        (
            '{"envelope_id": "e1", "type": "events_api"}',
            Frame("malformed", "events_api", "e1", "no_payload"),
        ),
        (
            '{"envelope_id": "e1", "type": "events_api", "payload": "text"}',
            Frame("malformed", "events_api", "e1", "no_payload"),
        ),
        ('{"type": "hello", "num_connections": 1}', Frame("hello", "hello")),
        (
            '{"type": "disconnect", "reason": "warning"}',
            Frame("disconnect", "disconnect", reason="warning"),
        ),
    ],
)
def test_each_frame_is_classified_without_raising(text: str, frame: Frame) -> None:
    assert read_frame(text) == frame


def test_lone_surrogates_are_replaced_everywhere_and_valid_pairs_kept() -> None:
    decoded = json.loads('{"t\\udc00": ["a\\ud800b", "\\ud83d\\ude00"], "n": 1}')
    assert clean(decoded) == {"t\ufffd": ["a\ufffdb", "\U0001f600"], "n": 1}


@pytest.mark.parametrize(("field", "reason"), [("channel", "no_channel"), ("ts", "no_ts")])
def test_a_mention_without_its_channel_or_ts_is_malformed(
    slack: FakeSlack, field: str, reason: str
) -> None:
    payload = slack.app_mention("hi")
    del payload["event"][field]
    with pytest.raises(MalformedPayload, match=reason):
        user_request("events_api", payload, BOT_USER_ID)


def test_a_slash_command_without_its_channel_is_malformed(slack: FakeSlack) -> None:
    payload = slack.slash_command("/x", "hi")
    del payload["channel_id"]
    with pytest.raises(MalformedPayload, match="no_channel"):
        user_request("slash_commands", payload, BOT_USER_ID)


def test_a_button_press_becomes_interaction_data(slack: FakeSlack) -> None:
    payload = slack.block_action("approve", "deploy-42", user="U0BOB", message_ts="1.2")
    assert interaction(payload) == {
        "kind": "block_actions",
        "user_id": "U0BOB",
        "channel_id": "slack:C0GEN/1.2",
        "actions": [{"action_id": "approve", "block_id": "b1", "value": "deploy-42"}],
        "callback_id": None,
        "values": {},
        "source": "slack",
    }


def test_a_view_submission_carries_its_values() -> None:
    payload = {
        "type": "view_submission",
        "user": {"id": "U1"},
        "view": {
            "callback_id": "incident",
            "state": {
                "values": {
                    "title": {"input": {"type": "plain_text_input", "value": "db down"}},
                    "sev": {"pick": {"type": "static_select", "selected_option": {"value": "1"}}},
                }
            },
        },
    }
    data = interaction(payload)
    assert (data["callback_id"], data["values"], data["channel_id"]) == (
        "incident",
        {"title": {"input": "db down"}, "sev": {"pick": "1"}},
        None,
    )


async def test_malformed_frames_are_logged_once_counted_and_envelopes_with_an_id_acked(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    bus, _ = make_bus()
    async with running_intake(Store(":memory:"), bus) as intake:
        no_channel = slack.app_mention("where?")
        del no_channel["event"]["channel"]
        with capture_logs() as logs:
            async with connected(
                SlackIn(APP, web, intake, bot_user_id=BOT_USER_ID), slack
            ) as slack_in:
                for frame in ("not json", "[1]", b"\x00\x01", '{"type": "surprise"}'):
                    await slack.send_raw(frame)
                no_payload = await slack.send_frame(
                    '{"envelope_id": "e-1", "type": "events_api"}', envelope_id="e-1"
                )
                no_type = await slack.send_frame(
                    '{"envelope_id": "e-2", "payload": {}}', envelope_id="e-2"
                )
                bad_event = await slack.send_envelope("events_api", no_channel)
                good = await slack.send_envelope("events_api", slack.app_mention("still here"))
                await until(lambda: bus.queue_depth == 1)
                still_connected = slack_in.connected
        bad = [
            (e["reason"], e["type"], e["envelope_id"])
            for e in logs
            if e["event"] == "slack_frame_malformed"
        ]
        assert [ack.envelope_id for ack in slack.acks] == [
            "e-1",
            "e-2",
            bad_event.envelope_id,
            good.envelope_id,
        ]
        assert (no_payload.payload, no_type.payload, still_connected) == (None, None, True)
        assert bad == [
            ("not_json", None, None),
            ("not_an_object", None, None),
            ("binary", None, None),
            ("no_envelope_id", "surprise", None),
            ("no_payload", "events_api", "e-1"),
            ("no_type", None, "e-2"),
            ("no_channel", "events_api", bad_event.envelope_id),
        ]
        assert "where?" not in repr(logs)
        assert slack_in.malformed == {
            "socket_not_json": 1,
            "socket_not_an_object": 1,
            "socket_binary": 1,
            "socket_no_envelope_id": 1,
            "socket_no_payload": 1,
            "socket_no_type": 1,
            "socket_no_channel": 1,
        }


async def test_a_text_with_a_lone_surrogate_is_published_storable(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    bus, _ = make_bus()
    async with running_intake(Store(":memory:"), bus) as intake:
        seen: list[dict[str, Any]] = []
        bus.subscribe("test", USER_REQUEST, lambda data, ctx: seen.append(data))
        payload = slack.app_mention("broken \ud800 emoji")
        envelope = {"envelope_id": "e-3", "type": "events_api", "payload": payload}
        async with connected(SlackIn(APP, web, intake, bot_user_id=BOT_USER_ID), slack):
            await slack.send_frame(
                json.dumps(envelope), envelope_id="e-3"
            )  # "\ud800", as JSON has it
            await until(lambda: bus.queue_depth == 1)
            await bus.drain()
        [data] = seen
        stored = sqlite3.connect(":memory:").execute("SELECT ?", (data["text"],)).fetchone()[0]
        assert (data["text"], stored) == ("broken \ufffd emoji", "broken \ufffd emoji")


async def test_an_interactive_envelope_becomes_a_slack_interaction_acked_at_once(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    bus, _ = make_bus()  # no dispatcher: the ack waits for nothing
    async with running_intake(Store(":memory:"), bus) as intake:
        seen: list[dict[str, Any]] = []
        bus.subscribe("test", SLACK_INTERACTION, lambda data, ctx: seen.append(data))
        async with connected(SlackIn(APP, web, intake), slack):
            ack = await slack.send_envelope("interactive", slack.block_action("approve", "yes"))
            await until(lambda: bus.queue_depth == 1)
            await bus.drain()
        assert (ack.payload, [d["actions"][0]["value"] for d in seen]) == (None, ["yes"])
