"""Soak the daemon: a fixed number of events over HTTP and through the bus for several minutes.

Starts ``intentd run`` as a child process with the timer role and a soak role: each SOAK_HTTP event
asks for a console notification and a follow-up SOAK_CHAINED event through the bus (which asks for
another notification), and every ``--timer-every``-th one also sets a durable timer that fires
``--timer-delay`` seconds later (the timer role then notifies and audits). With ``--slack`` (the
default) the daemon also talks to a fake Slack on 127.0.0.1 (tests/fakes/slack.py): Socket Mode is
connected (and checked by /readyz) and the timers' notifications go through the durable outbox to
Slack. Fast heartbeats, the HTTP API with a token. Posts events at a steady rate, polls /readyz
every second, samples the daemon's RSS and open file descriptors, and prints the figures. Not part
of the test suite: ``.venv/bin/python bench/soak.py --minutes 3``.
"""

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fakes.slack import FakeSlack

TOKEN = "soak-token"
BOT, APP, SLACK_CHANNEL = "xoxb-soak", "xapp-soak", "C0SOAK"
TIMER_ROLE = Path(__file__).resolve().parents[1] / "roles" / "timer.py"
ROLE = '''
"""Reacts to SOAK_HTTP and SOAK_CHAINED; asks for console notifications, chained events, timers."""
from dataclasses import dataclass

from common.intents import EventIntent, Intent, NotificationIntent

ROLE_CONFIG = {"name": "soak", "version": "1.0.0", "description": "Soak load", "llm_type": "WEAK"}


@dataclass
class SoakTimerIntent(Intent):
    """Set a timer that notifies ``channel`` after ``seconds``."""

    seconds: float
    label: str
    channel: str

    def validate(self):
        return self.seconds > 0 and bool(self.channel)


def handle_http(event_data, context):
    n = event_data["n"]
    intents = [
        NotificationIntent(message=f"soak {n}", channel="console"),
        EventIntent(event_type="SOAK_CHAINED", data={"n": n}),
    ]
    if n % event_data["timer_every"] == 0:
        seconds, channel = event_data["timer_delay"], event_data["timer_channel"]
        intents.append(SoakTimerIntent(seconds=seconds, label=f"soak {n}", channel=channel))
    return intents


def handle_chained(event_data, context):
    return [NotificationIntent(message=f"chained {event_data['n']}", channel="console")]


async def process_soak_timer(intent, services):
    timer_id = await services.timers.create(
        duration=intent.seconds, label=intent.label, channel_id=intent.channel
    )
    return {"timer_id": timer_id}


def register_role():
    handlers = {"SOAK_HTTP": handle_http, "SOAK_CHAINED": handle_chained}
    intents = {SoakTimerIntent: process_soak_timer}
    return {"config": ROLE_CONFIG, "event_handlers": handlers, "tools": [], "intents": intents}
'''
CONFIG = """
supervisor:
  heartbeat_interval: 1
  fast_heartbeat_interval: 0.2
roles:
  directory: roles
storage:
  path: intentd.db
logging:
  level: WARNING
  format: json
http:
  port: {port}
  token: ${{SOAK_TOKEN}}
outbox:
  per_channel_rate: 0.01
"""
SLACK_CONFIG = """
slack:
  enabled: true
  bot_token: {bot}
  app_token: {app}
  base_url: {base_url}
  reconnect_interval: 1
"""
OPS_METRICS = (
    "intentd_events_published_total",
    "intentd_events_failed_total",
    "intentd_intents_processed_total",
    "intentd_intents_failed_total",
    "intentd_timers_pending",
    "intentd_timer_lateness_seconds_count",
    "intentd_timer_lateness_seconds_sum",
    "intentd_outbox_",
    "intentd_loop_lag_max_seconds",
    "intentd_loop_lag_reports_total",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> tuple[int, int]:
    """Return the process's open file descriptors: all of them, and how many are sockets."""
    folder = f"/proc/{pid}/fd"
    targets = []
    for fd in os.listdir(folder):
        try:
            targets.append(os.readlink(f"{folder}/{fd}"))
        except FileNotFoundError:  # closed while listing
            pass
    return len(targets), sum(target.startswith("socket:") for target in targets)


async def wait_healthy(
    session: aiohttp.ClientSession, base: str, child: asyncio.subprocess.Process
) -> None:
    for _ in range(300):
        if child.returncode is not None:
            raise SystemExit(f"the daemon exited with code {child.returncode} before answering")
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the daemon did not answer /healthz within 30 s")


async def soak(args: argparse.Namespace, base: str, pid: int) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    total = int(args.rate * args.minutes * 60)
    warmup = max(1, total // 10)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ready_checks = {"ok": 0, "not_ok": 0}
    samples: list[tuple[float, int, tuple[int, int]]] = []
    figures: dict = {"events": total, "pool": args.concurrency + 1, "slack": args.slack}
    # A bounded client pool, so the daemon's open fds measure leaks, not extra keep-alive sockets.
    connector = aiohttp.TCPConnector(limit=args.concurrency + 1)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        load = {
            "timer_every": args.timer_every,
            "timer_delay": args.timer_delay,
            "timer_channel": f"slack:{SLACK_CHANNEL}" if args.slack else "console",
        }

        async def post(n: int) -> None:
            started = time.perf_counter()
            async with session.post(f"{base}/events/SOAK_HTTP", json={"n": n, **load}) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

        async def watch(stop: asyncio.Event) -> None:
            started = time.monotonic()
            while not stop.is_set():
                async with session.get(f"{base}/readyz") as response:
                    ready_checks["ok" if response.status == 200 else "not_ok"] += 1
                    figures["checks"] = sorted((await response.json())["checks"])
                samples.append((time.monotonic() - started, rss_kib(pid), open_fds(pid)))
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        in_flight: set[asyncio.Task] = set()
        interval = 1.0 / args.rate
        started = time.monotonic()
        for n in range(total):
            if n == warmup:
                figures["rss_start_kib"], figures["fds_start"] = rss_kib(pid), open_fds(pid)
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
            task = asyncio.create_task(post(n))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= args.concurrency:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*in_flight)
        figures["elapsed_s"] = time.monotonic() - started
        await asyncio.sleep(args.timer_delay + 3)  # let chained events, timers, deliveries finish
        figures["rss_end_kib"], figures["fds_end"] = rss_kib(pid), open_fds(pid)
        stop.set()
        await watcher
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        async with session.get(f"{base}/status") as response:
            figures["status"] = await response.json()
    figures["statuses"] = statuses
    figures["ready"] = ready_checks
    figures["latency_ms"] = {
        "p50": statistics.median(latencies) * 1000,
        "p99": statistics.quantiles(latencies, n=100)[98] * 1000,
    }
    figures["samples"] = samples
    figures["metrics"] = [line for line in metrics.splitlines() if line.startswith(OPS_METRICS)]
    return figures


def report(figures: dict) -> None:
    print(f"events posted          {figures['events']} in {figures['elapsed_s']:.1f} s")
    print(f"HTTP statuses          {figures['statuses']}")
    print(
        f"POST latency           p50 {figures['latency_ms']['p50']:.2f} ms, "
        f"p99 {figures['latency_ms']['p99']:.2f} ms"
    )
    print(
        f"/readyz checks         {figures['ready']['ok']} x 200, "
        f"{figures['ready']['not_ok']} x not 200 (checks: {', '.join(figures['checks'])})"
    )
    start, end = figures["rss_start_kib"], figures["rss_end_kib"]
    print(f"RSS after warm-up      {start / 1024:.1f} MiB")
    print(
        f"RSS at end             {end / 1024:.1f} MiB ({(end - start) / 1024:+.1f} MiB, "
        f"{end / start:.3f}x)"
    )
    (fds_start, sockets_start), (fds_end, sockets_end) = figures["fds_start"], figures["fds_end"]
    print(
        f"open fds               {fds_start} -> {fds_end}; not sockets "
        f"{fds_start - sockets_start} -> {fds_end - sockets_end}; "
        f"sockets {sockets_start} -> {sockets_end} (the listener, "
        f"the loop's wake-up pair, one per pooled client connection, at most "
        f"{figures['pool']}{', Slack Web API and Socket Mode' if figures['slack'] else ''})"
    )
    trend = figures["samples"][:: max(1, len(figures["samples"]) // 8)]
    print(
        "RSS/fd samples         "
        + ", ".join(f"{t:.0f}s {rss / 1024:.1f}MiB/{fds}fd" for t, rss, (fds, _) in trend)
    )
    for line in figures["metrics"]:
        print(f"  {line}")
    status = figures["status"]
    print(
        f"status                 uptime {status['uptime_s']} s, last heartbeat "
        f"{status['last_heartbeat']}, queue {status['bus_queue_depth']}, pending timers "
        f"{status['pending_timers']}, outbox depth {status['outbox_depth']}, dead letters "
        f"{status['dead_letters']}, loop lag {status['loop_lag_ms']} ms"
    )


async def soak_daemon(args: argparse.Namespace, root: Path, log: BinaryIO) -> tuple[dict, int]:
    """Start the daemon in ``root`` (with a fake Slack if asked), soak it, stop it."""
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        config = CONFIG.format(port=port)
        slack = None
        if args.slack:
            slack = await stack.enter_async_context(
                FakeSlack(bot_token=BOT, app_token=APP, channels={SLACK_CHANNEL: "soak"})
            )
            config += SLACK_CONFIG.format(bot=BOT, app=APP, base_url=slack.base_url)
        (root / "config.yaml").write_text(config, encoding="utf-8")
        intentd = Path(sys.executable).with_name("intentd")
        child = await asyncio.create_subprocess_exec(
            str(intentd),
            "run",
            "--config",
            str(root / "config.yaml"),
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "SOAK_TOKEN": TOKEN},
            cwd=root,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                await wait_healthy(session, base, child)
            if slack is not None:
                await slack.wait_connected(1)
            figures = await soak(args, base, child.pid)
        finally:
            if child.returncode is None:
                child.terminate()
            code = await asyncio.wait_for(child.wait(), 30)
        if slack is not None:
            figures["slack_posts"] = len(slack.posts)
            figures["slack_connections"] = slack.connections
    return figures, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to post events")
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP events per second")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--timer-every", type=int, default=20, help="set a timer every Nth event")
    parser.add_argument("--timer-delay", type=float, default=2.0, help="seconds until it fires")
    parser.add_argument(
        "--slack",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="connect the daemon to a fake Slack and notify timers there",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intentd-soak-") as folder:
        root = Path(folder)
        (root / "roles").mkdir()
        (root / "roles" / "soak.py").write_text(ROLE, encoding="utf-8")
        (root / "roles" / "timer.py").write_text(TIMER_ROLE.read_text(), encoding="utf-8")
        with open(root / "daemon.log", "wb") as log:
            figures, code = asyncio.run(soak_daemon(args, root, log))
        report(figures)
        if args.slack:
            print(
                f"fake Slack             {figures['slack_posts']} posts received, "
                f"{figures['slack_connections']} Socket Mode connection(s)"
            )
        print(f"daemon exit on SIGTERM {code}")
        errors = (root / "daemon.log").read_text().count('"level": "error"')
        print(f"error log lines        {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
