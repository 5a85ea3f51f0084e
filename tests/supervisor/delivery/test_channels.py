import io

import pytest
from structlog.testing import capture_logs

from common.errors import ConfigError, IntentHandlingError
from common.intents import NotificationIntent
from supervisor.config import ChannelsConfig
from supervisor.delivery.channels import Address, CommunicationManager


class Recording:
    def __init__(self):
        self.sent = []

    async def deliver(self, address, intent):
        self.sent.append((address, intent.message))


def manager(**config):
    return CommunicationManager(ChannelsConfig(**config), stdout=io.StringIO())


@pytest.mark.parametrize(
    ("channel", "address"),
    [
        ("console", Address("console")),
        ("log", Address("log")),
        ("default", Address("console")),
        ("ops", Address("log", "ops-room")),
        ("#ops", Address("console", "#ops")),
        ("C0123", Address("console", "C0123")),
    ],
)
def test_channels_resolve_predictably_without_slack(channel, address):
    assert manager(aliases={"ops": "log:ops-room"}).resolve(channel) == address


def test_bare_names_go_to_slack_when_slack_is_configured():
    channels = manager(aliases={"ops": "slack:#ops"})
    channels.add_channel("slack", Recording())
    assert [channels.resolve(name) for name in ("ops", "#general", "C0123", "slack:C9/1.2")] == [
        Address("slack", "#ops"),
        Address("slack", "#general"),
        Address("slack", "C0123"),
        Address("slack", "C9/1.2"),
    ]


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(IntentHandlingError) as err:
        manager().resolve("pager:oncall")
    assert str(err.value) == (
        "channel 'pager:oncall' has unknown kind 'pager'; known kinds are ['console', 'log'] "
        "(configure slack to use slack:...)"
    )


def test_an_alias_loop_is_a_clear_error():
    with pytest.raises(IntentHandlingError, match="channel alias 'a' loops back on itself"):
        manager(aliases={"a": "b", "b": "a"}).resolve("a")


async def test_console_prints_one_readable_line():
    out = io.StringIO()
    channels = CommunicationManager(ChannelsConfig(), stdout=out)
    intent = NotificationIntent("deploy\nfinished", "#ops", user_id="U1", priority="high")
    line = await channels.send(intent)
    stamp = intent.created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert out.getvalue() == f"{stamp} [high] #ops @U1 deploy / finished\n"
    assert line == out.getvalue().rstrip("\n")


class RecordingOutbox:
    def __init__(self):
        self.stored = []

    async def enqueue(self, kind, target, text, intent, *, alert=False):
        self.stored.append((kind, target, text, alert))
        return len(self.stored)


class Durable:
    durable = True


def durable_manager(**config):
    channels = manager(**config)
    channels.add_channel("slack", Durable())
    channels.outbox = RecordingOutbox()
    return channels


async def test_a_durable_channel_stores_the_notification_in_the_outbox():
    channels = durable_manager(aliases={"ops": "slack:#ops"})
    assert await channels.send(NotificationIntent("deploy done", "ops")) == 1
    assert channels.outbox.stored == [("slack", "#ops", "deploy done", False)]


@pytest.mark.parametrize(("mention", "text"), [("<!here>", "<!here> disk full"), ("", "disk full")])
async def test_high_priority_adds_the_configured_mention_and_keeps_the_route(mention, text):
    channels = durable_manager(mention_on_high=mention)
    await channels.send(NotificationIntent("disk full", "C0123/1.2", priority="high"))
    assert channels.outbox.stored == [("slack", "C0123/1.2", text, False)]


async def test_an_alert_goes_to_the_admin_channel_marked_as_an_alert():
    channels = durable_manager(admin="slack:#alerts")
    await channels.alert("role broken")
    assert channels.outbox.stored == [("slack", "#alerts", "<!here> role broken", True)]


async def test_a_durable_channel_without_an_outbox_is_a_clear_error():
    channels = manager()
    channels.add_channel("slack", Durable())
    with pytest.raises(IntentHandlingError) as err:
        await channels.send(NotificationIntent("hi", "slack:#ops"))
    assert str(err.value) == (
        "channel 'slack:#ops' needs the durable outbox, which opens with the store in "
        "Supervisor.run(); send notifications from a running daemon"
    )


def test_a_bare_name_with_a_bare_default_and_no_slack_is_a_clear_error():
    with pytest.raises(IntentHandlingError) as err:
        manager(default="ops").resolve("#alerts")
    assert str(err.value) == (
        "channel '#alerts' names no channel kind and neither does channels.default 'ops'; set "
        "channels.default to console, log, an alias or kind:target such as slack:#ops"
    )


def test_the_default_may_be_an_alias():
    assert manager(default="ops", aliases={"ops": "log:ops-room"}).resolve("#alerts") == Address(
        "log", "ops-room"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"default": "ops"}, "channels.default is 'ops', which names no channel: channel 'ops'"),
        ({"admin": "pager:x"}, "channels.admin is 'pager:x', which names no channel: channel"),
        (
            {"aliases": {"ops": "slack:#ops"}},
            "channels.aliases.ops is 'slack:#ops', which names no channel: channel 'slack:#ops'",
        ),
        (
            {"aliases": {"a": "b", "b": "a"}},
            "channels.aliases.a is 'b', which names no channel: channel alias 'b' loops",
        ),
    ],
)
def test_check_names_the_setting_that_resolves_to_no_channel(config, message):
    with pytest.raises(ConfigError) as err:
        manager(**config).check()
    assert str(err.value).startswith(message)


def test_check_accepts_slack_names_once_slack_is_configured():
    channels = manager(default="#general", admin="slack:#ops", aliases={"ops": "C0OPS"})
    channels.add_channel("slack", Recording())
    channels.check()
    assert channels.resolve("default") == Address("slack", "#general")


def test_the_outbox_the_manager_holds_is_the_outbox_class():
    import supervisor.delivery.channels
    import supervisor.delivery.outbox

    assert supervisor.delivery.channels.Outbox is supervisor.delivery.outbox.Outbox


async def test_the_log_channel_writes_one_structured_log_event():
    intent = NotificationIntent("disk almost full", "log:ops-room", user_id="U7", priority="high")
    with capture_logs() as logs:
        await manager().send(intent)
    assert logs == [
        {
            "event": "notification",
            "log_level": "info",
            "target": "ops-room",
            "priority": "high",
            "user_id": "U7",
            "message": "disk almost full",
            "intent_id": intent.intent_id,
        }
    ]
