"""The whole daemon with Slack: envelopes in, roles, timers, the outbox and posts out."""

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from common.errors import SlackAuthError
from common.events import USER_REQUEST
from supervisor.config import Config
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack, Fault

BOT, APP = "xoxb-test", "xapp-test"
ROLES = Path(__file__).resolve().parents[3] / "roles"
REMIND_ROLE = '''"""Test role: "remind me in <duration> to <label>" sets a timer in its thread."""

import re
from dataclasses import dataclass

from common.intents import Intent, NotificationIntent

ROLE_CONFIG = {"name": "remind", "version": "0.1.0", "description": "Test-only reminders.",
               "llm_type": "WEAK", "fast_reply": True, "when_to_use": "In tests."}
_ASK = re.compile(r"remind me in (\\d+) minutes? to (.+)", re.IGNORECASE)


@dataclass
class RemindIntent(Intent):
    minutes: int
    label: str
    channel_id: str
    user_id: str

    def validate(self):
        return self.minutes > 0


def handle_user_request(event_data, context):
    match = _ASK.search(event_data.get("text", ""))
    if match is None:
        return []
    minutes, label = match.groups()
    who = {"channel_id": context.channel_id, "user_id": context.user_id}
    return [
        RemindIntent(minutes=int(minutes), label=label, **who),
        NotificationIntent(message=f"OK, in {minutes} minutes.", channel=context.channel_id,
                           user_id=context.user_id),
    ]


async def process_remind(intent, services):
    await services.timers.create(duration=intent.minutes * 60, label=intent.label,
                           channel_id=intent.channel_id, user_id=intent.user_id,
                           role=services.role)


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"USER_REQUEST": handle_user_request},
            "tools": [], "intents": {RemindIntent: process_remind}}
'''


@pytest.fixture
async def slack() -> Any:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels={"C0GEN": "general"}) as fake:
        yield fake


def make_config(tmp_path: Path, slack: FakeSlack, **slack_fields: Any) -> Config:
    roles = tmp_path / "roles"
    roles.mkdir(exist_ok=True)
    if not (roles / "timer.py").exists():
        (roles / "timer.py").symlink_to(ROLES / "timer.py")
        (roles / "remind.py").write_text(REMIND_ROLE)
    return Config.model_validate(
        {
            "storage": {"path": str(tmp_path / "intentd.db")},
            "roles": {"directory": str(roles)},
            "channels": {"admin": "slack:#general"},
            "slack": {
                "enabled": True,
                "bot_token": BOT,
                "app_token": APP,
                "base_url": slack.base_url,
                **slack_fields,
            },
            "http": {"port": 0},
        }
    )


async def settled(supervisor: Supervisor) -> None:
    """Wait until the bus has handled everything and every outbox lane waits or is done."""
    assert supervisor.outbox is not None
    async with asyncio.timeout(5):
        await supervisor.message_bus.drain()
        await supervisor.outbox.wait_idle()


async def test_a_timer_set_from_slack_fires_into_the_same_thread(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock, threads = FakeClock(), threading.active_count()
    supervisor = Supervisor(config=make_config(tmp_path, slack), clock=clock)
    async with supervisor.running():
        assert threading.active_count() == threads  # Slack in and out live on the loop
        handled = asyncio.Event()  # subscribed after the roles: set once their intents are done
        supervisor.message_bus.subscribe("test", USER_REQUEST, lambda data, ctx: handled.set())
        await slack.wait_connected(1)
        mention = slack.app_mention("remind me in 5 minutes to stretch")
        thread = mention["event"]["ts"]
        await slack.send_envelope("events_api", mention)
        async with asyncio.timeout(5):
            await handled.wait()
        await settled(supervisor)
        assert [timer.label for timer in await supervisor.timers.list()] == ["stretch"]
        replies_before_expiry = [post.text for post in slack.posts]
        await clock.advance(300)
        await settled(supervisor)
    assert replies_before_expiry == ["OK, in 5 minutes."]
    assert [(p.channel, p.thread_ts, p.text) for p in slack.posts] == [
        ("C0GEN", thread, "OK, in 5 minutes."),
        ("C0GEN", thread, "Timer expired: stretch"),
    ]


async def test_a_refused_bot_token_stops_the_start_with_a_clear_error(
    tmp_path: Path, slack: FakeSlack
) -> None:
    supervisor = Supervisor(
        config=make_config(tmp_path, slack, bot_token="xoxb-wrong"), clock=FakeClock()
    )
    with pytest.raises(SlackAuthError) as err:
        await supervisor.run()
    assert str(err.value) == (
        f"slack.bot_token was refused by Slack at {slack.base_url!r} (invalid_auth); set "
        "SLACK_BOT_TOKEN to the app's bot token (xoxb-...)"
    )


async def test_the_daemon_runs_while_slack_is_away_and_delivers_when_it_is_back(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock = FakeClock()
    slack.down()
    supervisor = Supervisor(
        config=make_config(tmp_path, slack, reconnect_interval=0.05), clock=clock
    )
    async with supervisor.running():
        supervisor.message_bus.publish(
            "test", "TIMER_EXPIRED", {"label": "tea", "channel_id": "slack:#general"}
        )
        await settled(supervisor)
        connected_while_down = supervisor.slack.inbound.connected
        slack.up()
        await clock.advance(1)
        await settled(supervisor)
        await slack.wait_connected(1)
    assert (connected_while_down, [p.text for p in slack.posts]) == (False, ["Timer expired: tea"])


async def test_a_notification_queued_before_a_restart_is_delivered_after_it(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock, config = FakeClock(), make_config(tmp_path, slack)
    slack.fail_next("chat.postMessage", Fault.http_status(503))
    first = Supervisor(config=config, clock=clock)
    async with first.running():
        first.message_bus.publish(
            "test", "TIMER_EXPIRED", {"label": "tea", "channel_id": "slack:C0GEN/1.2"}
        )
        await settled(first)
        pending = first.outbox.stats.depth
    second = Supervisor(config=config, clock=clock)
    async with second.running():
        await clock.advance(1)
        await settled(second)
    assert (pending, [(p.thread_ts, p.text) for p in slack.posts]) == (
        1,
        [("1.2", "Timer expired: tea")],
    )
    assert second.outbox.stats.delivered == 1
