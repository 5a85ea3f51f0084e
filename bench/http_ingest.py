"""HTTP ingest row: ``POST /events/{TYPE}`` from 50 keep-alive clients, on the daemon as shipped.

The daemon (``intentd run`` on a copy of config.yaml with an API token, the shipped roles and its
own store) and the anchor (a bare aiohttp app that parses the JSON body and answers 202) run as
child processes; the same client posts to each in turn, one round each per interval. The path
measured is the durable one: the event is committed to the journal before the 202.
Run: .venv/bin/python bench/http_ingest.py [seconds_per_round] [rounds]
"""

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _rounds import interleave, median, median_ratio, percentile, row
from idle import ROOT, daemon_config, free_port

CLIENTS = 50
TOKEN = "bench-token-0d9e"
ANCHOR = """
import sys
from aiohttp import web

async def post(request):
    await request.json()
    return web.json_response({"event_id": "evt-1", "event_type": "ORDER_PLACED"}, status=202)

app = web.Application()
app.router.add_post("/events/{event_type}", post)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def wait_until_up(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):
        try:
            async with session.post(url, json={}) as response:
                if response.status == 202:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 202")


async def load(
    session: aiohttp.ClientSession, url: str, seconds: float, p99s: list[float]
) -> float:
    """Return requests/s over ``seconds`` with CLIENTS posting back to back; keep the p99."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            async with session.post(url, json={"order": n, "user_id": "U1"}) as response:
                await response.read()
                assert response.status == 202, response.status
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for n in range(CLIENTS):
            tasks.create_task(client(n))
    p99s.append(percentile(latencies, 0.99))
    return len(latencies) / (time.perf_counter() - started)


async def main(seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = daemon_config(Path(tmp))
        config.write_text(config.read_text() + f"  token: {TOKEN}\n")
        port = int(config.read_text().split("port: ")[-1].split()[0])
        bare_port = free_port()
        daemon = subprocess.Popen(  # noqa: ASYNC220 - started before any load
            [str(ROOT / ".venv/bin/intentd"), "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bare = subprocess.Popen([sys.executable, "-c", ANCHOR, str(bare_port)])  # noqa: ASYNC220
        try:
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
                ours = f"http://127.0.0.1:{port}/events/ORDER_PLACED"
                theirs = f"http://127.0.0.1:{bare_port}/events/ORDER_PLACED"
                await wait_until_up(session, ours)
                await wait_until_up(session, theirs)
                p99s: dict[str, list[float]] = {"intentd": [], "bare": []}
                rates = await interleave(
                    rounds,
                    {
                        "intentd": lambda: load(session, ours, seconds, p99s["intentd"]),
                        "bare": lambda: load(session, theirs, seconds, p99s["bare"]),
                    },
                )
        finally:
            for proc in (daemon, bare):
                proc.terminate()
                proc.wait(timeout=20)
    ratio = median_ratio(rates["intentd"], rates["bare"])
    row(
        f"HTTP POST /events, {CLIENTS} keep-alive clients (journaled before the 202)",
        f"{median(rates['intentd']):,.0f} req/s, p99 {median(p99s['intentd']) * 1e3:.1f} ms",
        f"bare aiohttp parsing JSON and answering 202: {median(rates['bare']):,.0f} req/s, "
        f"p99 {median(p99s['bare']) * 1e3:.1f} ms",
        ratio,
        ">= 0.8x",
        ratio >= 0.8,
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            float(sys.argv[1]) if len(sys.argv) > 1 else 5.0,
            int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        )
    )
