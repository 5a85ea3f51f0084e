import io

import pytest

from common.errors import IntentHandlingError
from common.intents import NotificationIntent
from supervisor.channels import Address, CommunicationManager
from supervisor.config import ChannelsConfig


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
