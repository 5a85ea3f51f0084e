"""One Socket Mode connection: a WebSocket to a fresh URL, judged only by its own frames.

Rules kept here:
- A connection counts as open once Slack's ``hello`` arrives on it, and as alive while frames
  (pongs included) keep arriving on it: it is pinged every ``ping_interval`` on the injected
  clock and given up when nothing was heard for ``2 * ping_interval``, or when no hello came in
  that time. Nothing is carried over from an earlier connection.
- ``read_frame`` (pure) classifies each text frame: hello, disconnect, an envelope, or malformed.
  An envelope with an ``envelope_id`` is always acknowledged, whatever its body: a well-formed
  one by the ``on_envelope`` callback, a malformed one here. Each malformed frame is logged once
  (its reason, type and envelope id, never its text) and counted.
- Envelopes are handed to ``on_envelope`` one at a time in arrival order, on this task, so every
  task this connection has is owned by ``serve()``.
- The ticket URL is used for one handshake only and never logged: it grants the connection.
"""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from common.clock import Clock
from supervisor.slack.payloads import clean

log = structlog.get_logger("intentd.slack")

PLANNED_DISCONNECTS = frozenset({"refresh_requested", "warning"})  # reconnect at once
CLOSE_TIMEOUT = 1.0  # seconds to wait for Slack's close frame when we end a connection


@dataclass(frozen=True)
class Frame:
    """One text frame from Slack, classified; ``malformed`` holds the reason when it is bad."""

    kind: str  # "hello", "disconnect", "envelope" or "malformed"
    type: str | None = None
    envelope_id: str | None = None
    reason: str | None = None  # a disconnect's reason, or why the frame is malformed
    message: dict[str, Any] | None = None


def read_frame(text: str) -> Frame:
    """Classify one text frame; never raises."""
    try:
        message = json.loads(text)
    except ValueError:
        return Frame("malformed", reason="not_json")
    if not isinstance(message, dict):
        return Frame("malformed", reason="not_an_object")
    message = clean(message)
    kind, envelope_id = message.get("type"), message.get("envelope_id")
    kind = kind if isinstance(kind, str) else None
    if not (isinstance(envelope_id, str) and envelope_id):
        if kind == "hello":
            return Frame("hello", kind)
        if kind == "disconnect":
            reason = message.get("reason")
            return Frame("disconnect", kind, reason=reason if isinstance(reason, str) else None)
        return Frame("malformed", kind, reason="no_envelope_id" if kind else "no_type")
    if kind is None:
        return Frame("malformed", None, envelope_id, "no_type")
    if not isinstance(message.get("payload"), dict):
        return Frame("malformed", kind, envelope_id, "no_payload")
    return Frame("envelope", kind, envelope_id, message=message)


@dataclass(frozen=True)
class Ending:
    """How a connection ended: whether it was greeted, and a planned disconnect's reason."""

    greeted: bool
    disconnect: str | None = None

    @property
    def planned(self) -> bool:
        """Return True when Slack asked for a fresh connection (reconnect without waiting)."""
        return self.greeted and self.disconnect in PLANNED_DISCONNECTS


class SocketModeConnection:
    """Serve one open WebSocket until it closes, goes quiet or Slack asks for another."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        on_envelope: Callable[["SocketModeConnection", SocketModeRequest], Awaitable[None]],
        *,
        clock: Clock,
        ping_interval: float,
        malformed: Counter[str],
    ) -> None:
        self._ws = ws
        self._on_envelope = on_envelope
        self._clock = clock
        self._ping_interval = ping_interval
        self._malformed = malformed
        self._opened_at = self._heard = clock.time()
        self.greeted = False
        self._disconnect: str | None = None

    @property
    def open(self) -> bool:
        """Return True while the connection is greeted and not closed."""
        return self.greeted and not self._ws.closed

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        """Send an ack (or a slash command's answer) on this connection."""
        await self._ws.send_str(json.dumps(response.to_dict()))

    async def serve(self) -> Ending:
        """Read frames until the connection ends; return how it ended."""
        async with asyncio.TaskGroup() as tasks:
            watchdog = tasks.create_task(self._watch(), name="slack-socket-watchdog")
            try:
                await self._read()
            finally:
                watchdog.cancel()
        return Ending(self.greeted, self._disconnect)

    async def close(self) -> None:
        """Close the WebSocket (bounded: a dead peer does not hold us)."""
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close()

    async def _read(self) -> None:
        async for msg in self._ws:
            self._heard = self._clock.time()
            if msg.type == aiohttp.WSMsgType.TEXT:
                if not await self._on_text(msg.data):
                    break
            elif msg.type == aiohttp.WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self._bad(Frame("malformed", reason="binary"))
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break

    async def _on_text(self, text: str) -> bool:
        """Handle one text frame; return False when the connection should end."""
        frame = read_frame(text)
        if frame.kind == "hello":
            self.greeted = True
            log.info("slack_connected")
        elif frame.kind == "disconnect":
            self._disconnect = frame.reason
            log.info("slack_disconnect_requested", reason=frame.reason)
            await self.close()
            return False
        elif frame.kind == "envelope":
            assert frame.message is not None
            request = SocketModeRequest.from_dict(frame.message)
            assert request is not None  # read_frame checked type, envelope_id and payload
            try:
                await self._on_envelope(self, request)
            except (aiohttp.ClientError, ConnectionError) as err:
                # The ack could not be sent: Slack re-sends the envelope on the next connection.
                log.warning(
                    "slack_ack_failed", envelope_id=frame.envelope_id, error=type(err).__name__
                )
            except Exception as err:  # one envelope must not end the connection
                log.error(
                    "slack_envelope_failed",
                    envelope_id=frame.envelope_id,
                    type=frame.type,
                    exc_info=err,
                )
        else:
            self._bad(frame)
            if frame.envelope_id is not None:
                await self.send_socket_mode_response(
                    SocketModeResponse(envelope_id=frame.envelope_id)
                )
        return True

    def _bad(self, frame: Frame) -> None:
        self._malformed[f"socket_{frame.reason}"] += 1
        log.warning(
            "slack_frame_malformed",
            reason=frame.reason,
            type=frame.type,
            envelope_id=frame.envelope_id,
        )

    async def _watch(self) -> None:
        """Ping on the clock; end the connection once nothing was heard for two intervals."""
        while True:
            await self._clock.sleep_until(self._clock.time() + self._ping_interval)
            now = self._clock.time()
            quiet = now - (self._heard if self.greeted else self._opened_at)
            if quiet >= 2 * self._ping_interval:
                log.warning("slack_connection_stale", greeted=self.greeted, quiet_s=round(quiet, 3))
                await self.close()
                return
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._ws.ping()
