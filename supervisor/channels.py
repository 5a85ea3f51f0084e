"""Channels and the CommunicationManager: where a NotificationIntent's text ends up.

A channel address is ``kind:target``. ``console`` prints one readable line on stdout, ``log`` writes
a structured log event. Aliases from ``channels.aliases`` are resolved first. Priority changes
presentation, never routing.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

import structlog

from common.errors import IntentHandlingError
from common.intents import NotificationIntent
from supervisor.config import ChannelsConfig

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

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] | None = None):
        self._stream = stream
        self._clock = clock

    async def deliver(self, address: Address, intent: NotificationIntent) -> str:
        """Write one line: time, priority, target, user and the message."""
        when = intent.created_at if self._clock is None else datetime.fromtimestamp(
            self._clock(), UTC
        )
        parts = [when.strftime("%Y-%m-%d %H:%M:%S"), f"[{intent.priority}]"]
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

    def __init__(self, config: ChannelsConfig | None = None, *, stdout: TextIO | None = None):
        self.config = config or ChannelsConfig()
        self.channels: dict[str, Channel] = {
            "console": ConsoleChannel(stdout),
            "log": LogChannel(),
        }

    def add_channel(self, kind: str, channel: Channel) -> None:
        """Deliver addresses of ``kind`` through ``channel``."""
        self.channels[kind] = channel

    def resolve(self, channel: str) -> Address:
        """Turn an alias, ``kind:target`` or a bare name into an Address."""
        name = channel.strip()
        seen = set()
        while name in self.config.aliases:
            if name in seen:
                raise IntentHandlingError(f"channel alias {channel!r} loops back on itself")
            seen.add(name)
            name = self.config.aliases[name]
        if name == "default":
            name = self.config.default if self.config.default != "default" else "console"
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
        # Without Slack a bare name (#ops, C0123) still reaches someone: the default channel,
        # labelled with the intended target.
        default = self.resolve(self.config.default)
        return Address(default.kind, default.target or name)

    async def send(self, intent: NotificationIntent) -> Any:
        """Deliver ``intent`` to its channel."""
        address = self.resolve(intent.channel)
        return await self.channels[address.kind].deliver(address, intent)
