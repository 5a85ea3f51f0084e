"""Notifications through the durable outbox to the fake Slack, against posting directly.

Measures, in one run on 127.0.0.1: the latency of one notification (enqueue, commit, post,
mark delivered) against one direct chat.postMessage; the throughput of the outbox across many
channels against direct posts; and the Socket Mode ack latency.

Run: .venv/bin/python bench/notifications.py   (prints figures; no thresholds)
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import structlog
from slack_sdk.web.async_client import AsyncWebClient

from common.clock import SystemClock
from common.intents import NotificationIntent
from supervisor.config import OutboxConfig
from supervisor.delivery.channels import CommunicationManager
from supervisor.delivery.outbox import Outbox
from supervisor.slack.socket_mode import SlackIn
from supervisor.slack.web_api import SlackOut
from supervisor.store.outbox import SqliteOutbox
from supervisor.store.sqlite import Store
from tests.factories import make_bus, running_intake
from tests.fakes.slack import FakeSlack

BOT, APP = "xoxb-bench", "xapp-bench"
CHANNELS = {f"C{n:04d}": f"room-{n}" for n in range(20)}
LATENCY_SAMPLES = 300
THROUGHPUT_MESSAGES = 3000
ENVELOPES = 300


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"p50 {statistics.median(values) * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms"


async def direct_latency(client: AsyncWebClient) -> list[float]:
    """One chat.postMessage at a time, each timed."""
    took = []
    for n in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        await client.chat_postMessage(channel="C0000", text=f"direct {n}", mrkdwn=True)
        took.append(time.perf_counter() - started)
    return took


async def outbox_latency(comms: CommunicationManager, outbox: Outbox) -> list[float]:
    """One notification at a time: stored, posted and marked delivered, each timed."""
    took = []
    for n in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        await comms.send(NotificationIntent(message=f"outbox {n}", channel="slack:C0001"))
        await outbox.wait_idle()
        took.append(time.perf_counter() - started)
    return took


async def direct_throughput(client: AsyncWebClient) -> float:
    """Post THROUGHPUT_MESSAGES directly, one channel after another; return posts per second."""
    started = time.perf_counter()
    for n in range(THROUGHPUT_MESSAGES):
        await client.chat_postMessage(channel=f"C{n % len(CHANNELS):04d}", text=f"d {n}")
    return THROUGHPUT_MESSAGES / (time.perf_counter() - started)


async def outbox_throughput(comms: CommunicationManager, outbox: Outbox) -> tuple[float, float]:
    """Enqueue THROUGHPUT_MESSAGES over all channels; return (enqueued/s, delivered/s)."""
    started = time.perf_counter()
    for n in range(THROUGHPUT_MESSAGES):
        channel = f"slack:C{n % len(CHANNELS):04d}"
        await comms.send(NotificationIntent(message=f"o {n}", channel=channel))
    enqueued = time.perf_counter()
    await outbox.wait_idle()
    done = time.perf_counter()
    assert outbox.stats.depth == 0
    return THROUGHPUT_MESSAGES / (enqueued - started), THROUGHPUT_MESSAGES / (done - started)


async def ack_latency(slack: FakeSlack, client: AsyncWebClient) -> list[float]:
    """Send envelopes to a connected SlackIn; return the ack latencies the fake measured.

    Each envelope is acked once its event is committed to the journal, as in the daemon.
    """
    bus, _ = make_bus()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "journal.db")
        async with running_intake(store, bus) as intake:
            slack_in = SlackIn(APP, client, intake)
            task = asyncio.create_task(slack_in.run())
            await slack.wait_connected(1)
            for n in range(ENVELOPES):
                await slack.send_envelope("events_api", slack.app_mention(f"ping {n}"))
                await bus.drain()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        store.close()
    return [ack.latency for ack in slack.acks]


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    async with (
        FakeSlack(BOT, APP, CHANNELS, timeout=10) as slack,
        aiohttp.ClientSession() as session,
    ):
        client = AsyncWebClient(
            token=BOT, base_url=slack.base_url, session=session, retry_handlers=[]
        )
        print(f"fake Slack on 127.0.0.1, {len(CHANNELS)} channels, one shared aiohttp session")
        for synchronous in ("normal", "full"):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(Path(tmp) / "bench.db", synchronous=synchronous.upper())
                comms = CommunicationManager()
                comms.add_channel("slack", SlackOut(client))
                outbox = Outbox(
                    SqliteOutbox(store),
                    comms.channels,
                    SystemClock(),
                    OutboxConfig(per_channel_rate=0),
                )
                comms.outbox = outbox
                worker = asyncio.create_task(outbox.run())
                await outbox.wait_idle()
                direct = await direct_latency(client)
                durable = await outbox_latency(comms, outbox)
                added = statistics.median(durable) - statistics.median(direct)
                print(f"\nstore synchronous={synchronous}")
                print(f"  latency, one at a time ({LATENCY_SAMPLES}):")
                print(f"    direct chat.postMessage       {ms(direct)}")
                print(f"    through the outbox            {ms(durable)}")
                print(
                    f"    added by the outbox (p50)     {added * 1e3:6.2f} ms  "
                    f"ratio {statistics.median(durable) / statistics.median(direct):.2f}x"
                )
                direct_rate = await direct_throughput(client)
                enqueue_rate, delivered_rate = await outbox_throughput(comms, outbox)
                print(
                    f"  throughput, {THROUGHPUT_MESSAGES:,} notifications over "
                    f"{len(CHANNELS)} channels (pacing off):"
                )
                print(f"    direct, sequential            {direct_rate:8.0f} posts/s")
                print(f"    outbox, enqueue (committed)   {enqueue_rate:8.0f} notifications/s")
                print(
                    f"    outbox, delivered             {delivered_rate:8.0f} notifications/s  "
                    f"ratio {delivered_rate / direct_rate:.2f}x direct"
                )
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
                store.close()
        acks = await ack_latency(
            slack, AsyncWebClient(base_url=slack.base_url, session=session, retry_handlers=[])
        )
        print(f"\nSocket Mode ack latency ({len(acks)} envelopes): {ms(acks)}")


if __name__ == "__main__":
    asyncio.run(main())
