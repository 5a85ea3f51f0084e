"""Driving a SlackIn against the fake Socket Mode server: run it, wait for it, time its retries."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from supervisor.slack.socket_mode import SlackIn
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack


@contextlib.asynccontextmanager
async def running(slack_in: SlackIn) -> AsyncIterator[SlackIn]:
    """Run ``slack_in`` as a task for the body of the ``async with``; cancel and await it after."""
    task = asyncio.create_task(slack_in.run())
    try:
        yield slack_in
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds; SlackIn's connection and the dispatcher run as tasks."""
    async with asyncio.timeout(3):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0)


def opens(slack: FakeSlack) -> int:
    """Return how many times ``apps.connections.open`` was called."""
    return [call.method for call in slack.calls].count("apps.connections.open")


async def next_wait(slack_in: SlackIn, clock: FakeClock, slack: FakeSlack) -> float:
    """Return how long SlackIn waits before its next attempt, having checked it waits that long."""
    await until(lambda: slack_in.retry_at is not None and slack_in.retry_at > clock.now)
    assert slack_in.retry_at is not None
    wait, before = slack_in.retry_at - clock.now, opens(slack)
    await clock.advance(wait - 0.001)
    assert opens(slack) == before, "no attempt before the wait is over"
    await clock.advance(0.001)
    await slack.wait_calls("apps.connections.open", before + 1)
    return wait
