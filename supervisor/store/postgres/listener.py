"""LISTEN/NOTIFY: one dedicated connection wakes this process when another one adds work.

Rules kept here:
- Parts register their channel callbacks before ``run()``; ``run()`` (a task the Supervisor
  owns) connects, LISTENs, and on a lost connection waits and connects again, doubling the wait
  up to 30 s. After each (re)connection the ``resync`` callbacks run: a notification sent while
  nobody listened is lost, so each part then looks at the tables itself.
- A notification is a hint, never the data: callbacks read the rows they need.
"""

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from supervisor.store.postgres.pool import DOWN_ERRORS

log = structlog.get_logger("intentd.postgres")

Callback = Callable[[str], None]


class Listener:
    """Dispatch notifications on the registered channels to their callbacks."""

    def __init__(self, url: str, shown: str, *, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._shown = shown
        self._connect_timeout = connect_timeout
        self._callbacks: dict[str, list[Callback]] = {}
        self._resync: list[Callable[[], None]] = []
        self._listening = asyncio.Event()

    def on(self, channel: str, callback: Callback) -> None:
        """Call ``callback(payload)`` for each notification on ``channel``."""
        self._callbacks.setdefault(channel, []).append(callback)

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time listening (re)starts."""
        self._resync.append(callback)

    async def wait_listening(self) -> None:
        """Return once the connection listens on every registered channel."""
        await self._listening.wait()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._callbacks:
                    await conn.add_listener(channel, self._dispatch)
                self._listening.set()
                delay = 0.5
                log.info("postgres_listening", channels=sorted(self._callbacks))
                for resync in self._resync:
                    resync()
                await lost.wait()
                log.warning("postgres_listener_lost", url=self._shown)
            except DOWN_ERRORS as err:
                log.warning("postgres_listener_failed", url=self._shown, error=type(err).__name__)
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(payload)
            except Exception as err:  # one part's bug must not stop the others' wake-ups
                log.error("notification_callback_failed", channel=channel, exc_info=err)
