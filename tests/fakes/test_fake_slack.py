"""FakeSlack driven by slack-sdk's real AsyncWebClient and SocketModeClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import Ack, FakeSlack, Fault, Post

BOT, APP = "xoxb-test", "xapp-test"
CHANNELS = {"C0OPS": "ops", "C0GEN": "general"}
IDEMPOTENCY = {"event_type": "intentd_notification", "event_payload": {"key": "n-1"}}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels=CHANNELS) as fake:
        yield fake


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    # Without session= the SDK opens and closes one aiohttp session per call.
    return AsyncWebClient(token=BOT, base_url=slack.base_url)


@pytest.fixture
def received() -> asyncio.Queue[SocketModeRequest]:
    return asyncio.Queue()


@pytest.fixture
async def socket_client(
    slack: FakeSlack, received: asyncio.Queue[SocketModeRequest]
) -> AsyncIterator[SocketModeClient]:
    client = SocketModeClient(
        app_token=APP, web_client=AsyncWebClient(token=APP, base_url=slack.base_url)
    )

    async def ack(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        await received.put(request)
        payload = {"text": "ok"} if request.type == "slash_commands" else None
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        )

    client.socket_mode_request_listeners.append(ack)
    yield client
    await client.close()


async def test_post_message_is_recorded_and_answered_with_channel_id_and_ts(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    response = await web.chat_postMessage(
        channel="#ops", text="disk full", mrkdwn=False, metadata=IDEMPOTENCY
    )

    assert (response["channel"], response["message"]["text"]) == ("C0OPS", "disk full")
    assert slack.posts == [Post("C0OPS", "disk full", response["ts"], None, False, IDEMPOTENCY)]


async def test_post_message_ts_values_are_unique_and_increasing(web: AsyncWebClient) -> None:
    stamps = [(await web.chat_postMessage(channel="ops", text=str(i)))["ts"] for i in range(3)]

    assert stamps == sorted(set(stamps), key=float)


async def test_form_encoded_post_is_read_like_a_json_one(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]'
    await web.api_call(
        "chat.postMessage",
        data={"channel": "C0GEN", "text": "hi", "blocks": blocks, "mrkdwn": "true"},
    )

    assert (slack.posts[0].blocks or [{}])[0]["type"] == "section"
    assert slack.posts[0].mrkdwn is True


async def test_wrong_bot_token_is_invalid_auth(slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="ops", text="hi")

    assert raised.value.response["error"] == "invalid_auth"
    assert slack.posts == []


async def test_unknown_channel_is_channel_not_found(web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="#nowhere", text="hi")

    assert raised.value.response["error"] == "channel_not_found"


async def test_text_over_40000_chars_is_msg_too_long(web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="ops", text="x" * 40_001)

    assert raised.value.response["error"] == "msg_too_long"


async def test_unknown_method_is_refused(web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.api_call("chat.postMessages")

    assert raised.value.response["error"] == "unknown_method"


async def test_ratelimited_fault_answers_429_with_retry_after_then_recovers(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    slack.fail_next("chat.postMessage", Fault.ratelimited(retry_after="0.5"))

    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="ops", text="hi")
    await web.chat_postMessage(channel="ops", text="hi")

    response = raised.value.response
    assert (response.status_code, response["error"]) == (429, "ratelimited")
    assert response.headers["Retry-After"] == "0.5"
    assert [call.method for call in slack.calls] == ["chat.postMessage"] * 2
    assert len(slack.posts) == 1


async def test_queued_faults_apply_to_successive_calls_in_order(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    slack.fail_next("chat.postMessage", Fault.http_status(500), Fault.error("fatal_error"))
    outcomes = []
    for _ in range(3):
        try:
            await web.chat_postMessage(channel="ops", text="hi")
            outcomes.append("ok")
        except SlackApiError as err:
            outcomes.append(err.response.get("error") or err.response.status_code)

    assert outcomes == [500, "fatal_error", "ok"]


async def test_down_fails_every_call_with_503_until_up(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    slack.down()
    with pytest.raises(SlackApiError) as raised:
        await web.auth_test()
    slack.up()

    assert raised.value.response.status_code == 503
    assert (await web.auth_test())["user_id"] == "UBOT"


async def test_drop_after_recording_delivers_the_post_but_the_client_sees_a_connection_error(
    slack: FakeSlack,
) -> None:
    client = AsyncWebClient(token=BOT, base_url=slack.base_url, retry_handlers=[])
    slack.fail_next("chat.postMessage", Fault.drop_after_recording())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="ops", text="maybe", metadata=IDEMPOTENCY)

    assert [post.text for post in slack.posts] == ["maybe"]


async def test_sdk_connection_retry_after_a_drop_posts_the_message_twice(
    slack: FakeSlack,
) -> None:
    # The SDK's default handler retries a dropped connection once; only interval 0 is ours.
    retry = AsyncConnectionErrorRetryHandler(
        interval_calculator=FixedValueRetryIntervalCalculator(0)
    )
    client = AsyncWebClient(token=BOT, base_url=slack.base_url, retry_handlers=[retry])
    slack.fail_next("chat.postMessage", Fault.drop_after_recording())

    await client.chat_postMessage(channel="ops", text="twice")

    assert [post.text for post in slack.posts] == ["twice", "twice"]


async def test_history_is_newest_first_with_metadata_only_when_asked(
    web: AsyncWebClient,
) -> None:
    await web.chat_postMessage(channel="ops", text="first", metadata=IDEMPOTENCY)
    await web.chat_postMessage(channel="ops", text="second")

    plain = await web.conversations_history(channel="C0OPS")
    full = await web.conversations_history(channel="C0OPS", include_all_metadata=True)

    assert [m["text"] for m in plain["messages"]] == ["second", "first"]
    assert "metadata" not in plain["messages"][1]
    assert full["messages"][1]["metadata"] == IDEMPOTENCY


async def test_history_honours_oldest_and_limit(web: AsyncWebClient) -> None:
    first = await web.chat_postMessage(channel="ops", text="first")
    for text in ("second", "third"):
        await web.chat_postMessage(channel="ops", text=text)

    page = await web.conversations_history(channel="C0OPS", oldest=first["ts"], limit=1)

    assert ([m["text"] for m in page["messages"]], page["has_more"]) == (["third"], True)


async def test_replies_list_the_thread_oldest_first(web: AsyncWebClient) -> None:
    parent = await web.chat_postMessage(channel="ops", text="parent")
    await web.chat_postMessage(
        channel="ops", text="reply", thread_ts=parent["ts"], metadata=IDEMPOTENCY
    )

    thread = await web.conversations_replies(
        channel="C0OPS", ts=parent["ts"], include_all_metadata=True
    )
    history = await web.conversations_history(channel="C0OPS")

    assert [m["text"] for m in thread["messages"]] == ["parent", "reply"]
    assert thread["messages"][1]["metadata"] == IDEMPOTENCY
    assert [m["text"] for m in history["messages"]] == ["parent"]


async def test_conversations_list_and_info_map_ids_to_names(web: AsyncWebClient) -> None:
    listed = await web.conversations_list()
    info = await web.conversations_info(channel="C0GEN")

    assert {c["id"]: c["name"] for c in listed["channels"]} == CHANNELS
    assert info["channel"]["name"] == "general"


async def test_apps_connections_open_refuses_the_bot_token(web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.apps_connections_open(app_token=BOT)

    assert raised.value.response["error"] == "not_allowed_token_type"


async def test_fail_next_rejects_an_unknown_method_name(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match=r"'chat\.postmessage'"):
        slack.fail_next("chat.postmessage", Fault.error("fatal_error"))


async def test_socket_mode_client_connects_and_is_greeted_with_hello(
    slack: FakeSlack, socket_client: SocketModeClient
) -> None:
    greeted = asyncio.Event()

    async def on_message(client: AsyncBaseSocketModeClient, message: dict, raw: str | None) -> None:
        if message.get("type") == "hello":
            greeted.set()

    socket_client.message_listeners.append(on_message)
    await socket_client.connect()
    await slack.wait_connected()
    async with asyncio.timeout(5):
        await greeted.wait()

    assert slack.calls[0].method == "apps.connections.open"


async def test_envelope_reaches_the_listener_and_its_ack_is_returned(
    slack: FakeSlack,
    socket_client: SocketModeClient,
    received: asyncio.Queue[SocketModeRequest],
) -> None:
    await socket_client.connect()
    payload = slack.app_mention("set a timer for 5 minutes", channel="C0OPS")

    ack = await slack.send_envelope(type="events_api", payload=payload)

    request = received.get_nowait()
    assert (request.type, request.envelope_id, request.payload) == (
        "events_api",
        ack.envelope_id,
        payload,
    )
    assert request.payload["event"]["text"] == "<@UBOT> set a timer for 5 minutes"
    assert 0 <= ack.latency < 5
    assert slack.acks == [ack]


async def test_slash_command_ack_carries_the_response_payload(
    slack: FakeSlack,
    socket_client: SocketModeClient,
    received: asyncio.Queue[SocketModeRequest],
) -> None:
    await socket_client.connect()

    ack = await slack.send_envelope("slash_commands", slack.slash_command("/timer", "list"))

    assert ack.payload == {"text": "ok"}
    assert received.get_nowait().accepts_response_payload is True


async def test_direct_message_payload_is_an_im_message_event(slack: FakeSlack) -> None:
    event = slack.direct_message("hello")["event"]

    assert (event["type"], event["channel_type"], event["text"]) == ("message", "im", "hello")


async def test_client_reconnects_after_disconnect_and_keeps_acking(
    slack: FakeSlack,
    socket_client: SocketModeClient,
) -> None:
    await socket_client.connect()
    await slack.wait_connected(1)

    await slack.disconnect_clients()
    await slack.wait_connected(2)
    ack = await slack.send_envelope("events_api", slack.direct_message("still there?"))

    assert isinstance(ack, Ack)
    assert [c.method for c in slack.calls] == ["apps.connections.open"] * 2


async def test_unacknowledged_envelope_times_out_with_a_clear_error() -> None:
    async with FakeSlack(bot_token=BOT, app_token=APP, timeout=0.05) as slack:
        client = SocketModeClient(
            app_token=APP, web_client=AsyncWebClient(token=APP, base_url=slack.base_url)
        )
        try:
            await client.connect()
            with pytest.raises(TimeoutError, match=r"was not acknowledged within 0\.05 s"):
                await slack.send_envelope("events_api", slack.direct_message("hi"))
        finally:
            await client.close()


async def test_wait_connected_times_out_with_a_clear_error() -> None:
    async with FakeSlack(bot_token=BOT, app_token=APP, timeout=0.01) as slack:
        with pytest.raises(TimeoutError, match="expected 1 Socket Mode connection"):
            await slack.wait_connected()
