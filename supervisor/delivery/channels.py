"""Channels and the CommunicationManager: where a NotificationIntent's text ends up.

A channel address is ``kind:target``. ``console`` prints one readable line on stdout, ``log`` writes
a structured log event, ``slack:C0123`` or ``slack:#ops`` (``/thread_ts`` for a thread reply) posts
to Slack. Aliases from ``channels.aliases`` are resolved first; ``channels.default``, ``admin`` and
every alias are checked once at start (and by ``check-config``). Local channels deliver at once;
durable (remote) ones go through the outbox, which stores the notification before ``send``
returns. Priority changes presentation (``high`` adds ``channels.mention_on_high`` on Slack),
never routing.
"""

import sys
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import structlog

from common.errors import ConfigError, IntentHandlingError
from common.intents import NotificationIntent
from supervisor.config import ChannelsConfig
from supervisor.delivery.outbox import Outbox

log = structlog.get_logger("intentd.channels")


@dataclass(frozen=True)
class Address:
    """A resolved channel address: ``kind`` (console, log, slack...) and ``target``."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


class Channel(Protocol):
    """Something that can deliver a notification to an address of its kind."""

    async def deliver(self, address: Address, intent: NotificationIntent) -> Any: ...


class ConsoleChannel:
    """Print each notification as one readable line."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream

    async def deliver(self, address: Address, intent: NotificationIntent) -> str:
        """Write one line: time, priority, target, user and the message."""
        parts = [intent.created_at.strftime("%Y-%m-%d %H:%M:%S"), f"[{intent.priority}]"]
        if address.target:
            parts.append(address.target)
        if intent.user_id:
            parts.append(f"@{intent.user_id}")
        parts.append(" / ".join(line for line in intent.message.splitlines() if line.strip()))
        line = " ".join(parts)
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        return line


class LogChannel:
    """Write each notification as a structured log event."""

    async def deliver(self, address: Address, intent: NotificationIntent) -> None:
        """Log the notification with its fields."""
        log.info(
            "notification",
            target=address.target or None,
            priority=intent.priority,
            user_id=intent.user_id,
            message=intent.message,
            intent_id=intent.intent_id,
        )


class CommunicationManager:
    """Resolve a notification's channel and hand it to the channel of that kind."""

    def __init__(
        self,
        config: ChannelsConfig | None = None,
        *,
        kinds: dict[str, Any] | None = None,
        outbox: Outbox | None = None,
        stdout: TextIO | None = None,
    ):
        """``kinds`` maps a channel kind to its channel (console and log by default)."""
        self.config = config or ChannelsConfig()
        self.channels: dict[str, Any] = (
            kinds if kinds is not None else {"console": ConsoleChannel(stdout), "log": LogChannel()}
        )
        self.outbox = outbox

    def add_channel(self, kind: str, channel: Any) -> None:
        """Deliver addresses of ``kind`` through ``channel`` (via the outbox if it is durable)."""
        self.channels[kind] = channel

    def resolve(self, channel: str) -> Address:
        """Turn an alias, ``kind:target`` or a bare name into an Address."""
        name = self._expand(channel)
        address = self._address(channel, name)
        if address is not None:
            return address
        # Without Slack a bare name (#ops, C0123) still reaches someone: the default channel,
        # labelled with the intended target. The default itself never falls back again.
        default = self._address(self.config.default, self._expand(self.config.default))
        if default is None:
            raise IntentHandlingError(
                f"channel {channel!r} names no channel kind and neither does channels.default "
                f"{self.config.default!r}; set channels.default to console, log, an alias or "
                "kind:target such as slack:#ops"
            )
        return Address(default.kind, default.target or name)

    def check(self) -> None:
        """Raise ConfigError unless channels.default, channels.admin and every alias resolve."""
        settings = {
            "channels.default": self.config.default,
            "channels.admin": self.config.admin,
            **{f"channels.aliases.{alias}": name for alias, name in self.config.aliases.items()},
        }
        for key, value in settings.items():
            if value is None:
                continue
            try:
                self.resolve(value)
            except IntentHandlingError as err:
                raise ConfigError(f"{key} is {value!r}, which names no channel: {err}") from err

    def _expand(self, channel: str) -> str:
        """Follow aliases, ``admin`` and ``default`` to the name they stand for."""
        name = channel.strip()
        seen = set()
        while name in self.config.aliases or name in ("default", "admin"):
            if name in seen:
                raise IntentHandlingError(f"channel alias {name!r} loops back on itself")
            seen.add(name)
            if name in self.config.aliases:
                name = self.config.aliases[name]
            elif name == "admin":
                name = self.config.admin or "default"
            else:
                name = self.config.default if self.config.default != "default" else "console"
        return name

    def _address(self, channel: str, name: str) -> Address | None:
        """Return the Address ``name`` names, or None for a bare name no channel claims."""
        kind, sep, target = name.partition(":")
        if sep:
            if kind not in self.channels:
                raise IntentHandlingError(
                    f"channel {channel!r} has unknown kind {kind!r}; known kinds are "
                    f"{sorted(self.channels)} (configure slack to use slack:...)"
                )
            return Address(kind, target)
        if name in self.channels:
            return Address(name)
        if "slack" in self.channels:
            return Address("slack", name)
        return None

    def present(self, intent: NotificationIntent) -> str:
        """Return the text a durable channel posts: a ``high`` one starts with the mention."""
        mention = self.config.mention_on_high
        if intent.priority == "high" and mention:
            return f"{mention} {intent.message}"
        return intent.message

    async def send(self, intent: NotificationIntent, *, alert: bool = False) -> Any:
        """Deliver ``intent`` now, or store it in the outbox if its channel is durable."""
        address = self.resolve(intent.channel)
        channel = self.channels[address.kind]
        if not getattr(channel, "durable", False):
            return await channel.deliver(address, intent)
        if self.outbox is None:
            raise IntentHandlingError(
                f"channel {intent.channel!r} needs the durable outbox, which opens with the store "
                "in Supervisor.run(); send notifications from a running daemon"
            )
        text = self.present(intent)
        return await self.outbox.enqueue(address.kind, address.target, text, intent, alert=alert)

    async def alert(self, message: str) -> Any:
        """Send one of the daemon's own alerts to the admin channel (the default one if unset)."""
        intent = NotificationIntent(message=message, channel="admin", priority="high")
        return await self.send(intent, alert=True)
