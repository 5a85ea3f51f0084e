"""Events/s through 1, 2 and 3 intentd processes on one PostgreSQL, beside pgqueuer doing the
same claim-and-finish with a no-op handler on the same server, and the takeover time after a
SIGKILL.

Both sides start their workers first and let them idle (listening), then commit EVENTS rows in
one transaction and time how long the workers take to finish them all: intentd's journal
entries (claim, publish to a role whose handler returns [], mark done) and pgqueuer jobs
(dequeue, a no-op entrypoint, acknowledge). Rounds interleave the contenders; the figures are
the medians. The takeover time is from SIGKILL of one of two daemons holding claims to the
moment the other holds every one of them, with the default ``cluster.lease`` of 5 s (there the
role's intent takes 20 ms, so the daemons always hold claims).

Needs the ``bench`` extra (pgqueuer) and the PostgreSQL server binaries (see tests/).
"""

import asyncio
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supervisor.config import StorageConfig  # noqa: E402
from supervisor.logs import configure_logging  # noqa: E402
from supervisor.store.backends import open_parts  # noqa: E402
from supervisor.store.journal import NewEvent  # noqa: E402
from tests.postgres_server import free_port, start_server  # noqa: E402

EVENTS = 10_000
ROUNDS = 3
PROCESSES = (1, 2, 3)
NOOP_ROLE = '''
"""Reacts to BENCH_EVENT and asks for nothing."""
ROLE_CONFIG = {"name": "noop", "version": "1.0.0", "description": "Bench role", "llm_type": "WEAK",
               "external_events": ["BENCH_EVENT"]}


def handle_event(event_data, context):
    return []


def register_role():
    return {"config": ROLE_CONFIG, "tools": [], "intents": {},
            "event_handlers": {"BENCH_EVENT": handle_event}}
'''
HOLDING_ROLE = '''
"""Reacts to BENCH_EVENT with a role intent that takes 20 ms, so claims are held while it runs."""
import asyncio
from dataclasses import dataclass

from common.intents import Intent

ROLE_CONFIG = {"name": "noop", "version": "1.0.0", "description": "Bench role", "llm_type": "WEAK",
               "external_events": ["BENCH_EVENT"]}


@dataclass
class HoldIntent(Intent):
    def validate(self):
        return True


def handle_event(event_data, context):
    return [HoldIntent()]


async def process_hold(intent):
    await asyncio.sleep(0.02)


def register_role():
    return {"config": ROLE_CONFIG, "tools": [], "intents": {HoldIntent: process_hold},
            "event_handlers": {"BENCH_EVENT": handle_event}}
'''
PGQUEUER_WORKER = """
import asyncio, sys
from datetime import timedelta
import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job):
        pass

    print("ready", flush=True)
    await qm.run(batch_size=64, dequeue_timeout=timedelta(seconds=30))

asyncio.run(main())
"""


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Return once ``check()`` is true, looking every 10 ms; fail after 300 s."""
    try:
        async with asyncio.timeout(300):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise RuntimeError(f"waited 300 s for {what}") from None


async def fresh_database(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    finally:
        await admin.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


class Daemons:
    """N intentd processes on one database, each with its own HTTP port."""

    def __init__(self, folder: Path, url: str, count: int, role: str = NOOP_ROLE) -> None:
        roles = folder / "roles"
        roles.mkdir(parents=True, exist_ok=True)
        (roles / "noop.py").write_text(role)
        self.configs = []
        for n in range(count):
            config = folder / f"node-{n}.yaml"
            port = free_port()
            config.write_text(
                f"storage: {{url: '{url}'}}\nroles: {{directory: {roles}}}\n"
                f"logging: {{level: WARNING}}\nhttp: {{port: {port}}}\n"
                f"cluster: {{instance: node-{n}}}\n"
            )
            self.configs.append((config, port))
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for config, _ in self.configs:
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "supervisor",
                    "run",
                    "--config",
                    str(config),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        async with aiohttp.ClientSession() as session:
            for _, port in self.configs:

                async def ready(port: int = port) -> bool:
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                            return response.status == 200
                    except aiohttp.ClientConnectionError:
                        return False

                await until(ready, f"the daemon on port {port}")

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            await process.wait()


async def intentd_rate(admin_url: str, folder: Path, count: int) -> float:
    url = await fresh_database(admin_url, f"bench_intentd_{count}")
    daemons = Daemons(folder / f"intentd-{count}-{time.monotonic_ns()}", url, count)
    await daemons.start()
    parts = await open_parts(StorageConfig(url=url), Path, "bench")
    db = await asyncpg.connect(url)
    try:
        events = [
            NewEvent(f"evt-{n}", "BENCH_EVENT", {"n": n}, "bench", "bench", time.time())
            for n in range(EVENTS)
        ]
        started = time.perf_counter()
        await parts.journal.append(events)

        async def drained() -> bool:
            return not await db.fetchval("SELECT count(*) FROM journal WHERE state <> 'done'")

        await until(drained, "the journal drained")
        return EVENTS / (time.perf_counter() - started)
    finally:
        await db.close()
        await parts.close()
        await daemons.stop()


async def pgqueuer_rate(admin_url: str, count: int) -> float:
    from pgqueuer import AsyncpgDriver, Queries

    url = await fresh_database(admin_url, f"bench_pgqueuer_{count}")
    db = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(db))
    await queries.install()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PGQUEUER_WORKER,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert (await worker.stdout.readline()).strip() == b"ready"
        await asyncio.sleep(0.5)  # the workers reach their first dequeue and listen
        started = time.perf_counter()
        await queries.enqueue(["noop"] * EVENTS, [None] * EVENTS, [0] * EVENTS)

        async def drained() -> bool:
            return not await db.fetchval("SELECT count(*) FROM pgqueuer")

        await until(drained, "the pgqueuer queue drained")
        return EVENTS / (time.perf_counter() - started)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
            await worker.wait()
        await db.close()


async def takeover_time(admin_url: str, folder: Path, round_: int) -> tuple[float, int]:
    """SIGKILL one of two daemons while both hold claims; return the seconds until the other
    holds every claim the dead one had, and how many that was."""
    url = await fresh_database(admin_url, "bench_takeover")
    daemons = Daemons(folder / f"takeover-{round_}", url, 2, HOLDING_ROLE)
    await daemons.start()
    parts = await open_parts(StorageConfig(url=url), Path, "bench")
    db = await asyncpg.connect(url)
    try:
        events = [
            NewEvent(f"evt-{n}", "BENCH_EVENT", {"n": n}, "bench", "bench", time.time())
            for n in range(EVENTS)
        ]
        await parts.journal.append(events)
        dead = "node-0/%"

        async def holding() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM journal WHERE state = 'claimed' AND owner LIKE $1", dead
                )
            )

        await until(holding, "node-0 to hold claims")
        daemons.processes[0].send_signal(signal.SIGKILL)
        await daemons.processes[0].wait()
        killed = time.perf_counter()
        held = await db.fetchval(
            "SELECT count(*) FROM journal WHERE state = 'claimed' AND owner LIKE $1", dead
        )

        async def taken_over() -> bool:
            return not await holding()

        await until(taken_over, "node-1 to take the claims over")
        return time.perf_counter() - killed, int(held)
    finally:
        await db.close()
        await parts.close()
        await daemons.stop()


async def main() -> None:
    configure_logging("WARNING")
    server = start_server()
    folder = server.folder / "bench"
    admin = server.url()
    try:
        figures: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            for count in PROCESSES:
                figures.setdefault(f"intentd x{count}", []).append(
                    await intentd_rate(admin, folder, count)
                )
                figures.setdefault(f"pgqueuer x{count}", []).append(
                    await pgqueuer_rate(admin, count)
                )
        print(f"{EVENTS} events committed at once, no-op handlers, medians of {ROUNDS} rounds")
        for count in PROCESSES:
            ours = statistics.median(figures[f"intentd x{count}"])
            anchor = statistics.median(figures[f"pgqueuer x{count}"])
            print(
                f"  {count} process(es): intentd {ours:7.0f} events/s   pgqueuer {anchor:7.0f} "
                f"jobs/s   ratio {ours / anchor:.2f}x"
            )
        takeovers = [await takeover_time(admin, folder, n) for n in range(ROUNDS)]
        times = [seconds for seconds, _ in takeovers]
        print(
            f"  takeover after SIGKILL, lease 5 s: median {statistics.median(times):.2f} s, max "
            f"{max(times):.2f} s over {ROUNDS} kills holding {[h for _, h in takeovers]} claims"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
