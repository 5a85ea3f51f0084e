"""SlackConnection: the shared session, the token check and the request timeout."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from common.errors import DeliveryError, SlackAuthError
from supervisor.config import SlackConfig
from supervisor.slack.connection import SlackConnection
from supervisor.slack.socket_mode import SlackIn
from tests.factories import make_bus
from tests.fakes.slack import FakeSlack, Fault

BOT, APP = "xoxb-test", "xapp-test"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels={"C0OPS": "ops"}) as fake:
        yield fake


def connection(slack: FakeSlack, **config: Any) -> SlackConnection:
    settings = {
        "enabled": True,
        "bot_token": BOT,
        "mode": "none",
        "base_url": slack.base_url,
        **config,
    }
    return SlackConnection(SlackConfig(**settings), make_bus()[0])


async def test_a_slack_request_gives_up_after_slack_request_timeout(slack: FakeSlack) -> None:
    # The only real wait here: Slack answering after the 0.05 s request timeout.
    opened = connection(slack, request_timeout=0.05)
    await opened.open()
    try:
        assert opened.out is not None
        slack.fail_next("chat.postMessage", Fault.slow(0.2))
        with pytest.raises(DeliveryError) as err:
            await opened.out.post("C0OPS", "slow", "key#0", check_since=None)
    finally:
        await opened.close()
    assert (err.value.unknown, err.value.permanent) == (True, False)


async def test_a_base_url_without_its_trailing_slash_still_reaches_the_api(
    slack: FakeSlack,
) -> None:
    opened = connection(slack, base_url=slack.base_url.rstrip("/"))
    await opened.open()
    await opened.close()
    assert (opened.bot_user_id, [c.method for c in slack.calls]) == ("UBOT", ["auth.test"])


async def test_an_inactive_account_refuses_the_app_token_too(slack: FakeSlack) -> None:
    slack.fail_next("apps.connections.open", Fault.error("account_inactive"))
    async with aiohttp.ClientSession() as session:
        web = AsyncWebClient(base_url=slack.base_url, session=session, retry_handlers=[])
        with pytest.raises(SlackAuthError, match=r"\(account_inactive\)"):
            await SlackIn(APP, web, make_bus()[0]).check_token()


@pytest.mark.parametrize("mode", ["none", "socket"])
async def test_slack_closing_the_connection_before_answering_does_not_stop_the_start(
    slack: FakeSlack, mode: str
) -> None:
    slack.fail_next("auth.test", Fault.drop_after_recording())
    slack.fail_next("apps.connections.open", Fault.drop_after_recording())
    opened = connection(slack, mode=mode, app_token=APP)
    await opened.open()
    await opened.close()
    methods = [c.method for c in slack.calls]
    assert (opened.bot_user_id, methods) == (
        None,
        ["auth.test"] + ["apps.connections.open"] * (mode == "socket"),
    )
