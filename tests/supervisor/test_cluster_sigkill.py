"""Three daemons on one PostgreSQL; two are SIGKILLed with work pending, one comes back.

The daemons run as child processes sharing ``storage.url``. 3,000 events are posted round-robin
over HTTP (each answered 202) and 300 timers are set round-robin through events; a role audits
each event (and spends 5 ms in a role intent, so a backlog builds) and audits each timer's
expiry. Two daemons are SIGKILLed while they hold claims; the third takes their work over once
the leases end, and the first is restarted 5 s later. In the end every event is audited once and
every timer fired once, and the dead daemons' claims were taken over within the lease plus one
sweep.
"""

import asyncio
import itertools
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.postgres_server import free_port

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3000
TIMERS = 300
LEASE = 2.0
SWEEP = 3.0
ROLE = '''
"""Audits each ORDER_PLACED (after a 5 ms role intent), sets a timer for each SET_TIMER and
audits each TIMER_EXPIRED."""
import asyncio
from dataclasses import dataclass

from common.intents import AuditIntent, Intent

ROLE_CONFIG = {"name": "work", "version": "1.0.0", "description": "Test role", "llm_type": "WEAK",
               "external_events": ["ORDER_PLACED", "SET_TIMER"]}


@dataclass
class PackIntent(Intent):
    order: int

    def validate(self):
        return True


@dataclass
class RemindIntent(Intent):
    n: int
    seconds: float

    def validate(self):
        return self.seconds > 0


def handle_order(event_data, context):
    order = int(event_data["order"])
    return [AuditIntent(action="order", details={"order": order}), PackIntent(order=order)]


def handle_set_timer(event_data, context):
    return [RemindIntent(n=int(event_data["n"]), seconds=float(event_data["seconds"]))]


def handle_expired(event_data, context):
    return [AuditIntent(action="fired", details={"n": event_data["data"]["n"]})]


async def process_pack(intent):
    await asyncio.sleep(0.005)


async def process_remind(intent, services):
    await services.timers.create(duration=intent.seconds, label=f"t{intent.n}",
                                 data={"n": intent.n}, role=services.role)


def register_role():
    return {"config": ROLE_CONFIG, "tools": [],
            "intents": {PackIntent: process_pack, RemindIntent: process_remind},
            "event_handlers": {"ORDER_PLACED": handle_order, "SET_TIMER": handle_set_timer,
                               "TIMER_EXPIRED": handle_expired}}
'''


class Node:
    """One daemon of the cluster: its config, port and (while it runs) its process."""

    def __init__(self, tmp_path: Path, name: str, url: str) -> None:
        self.name = name
        self.port = free_port()
        self.folder = tmp_path / name
        self.folder.mkdir()
        self.config = self.folder / "config.yaml"
        self.config.write_text(
            f"storage: {{url: '{url}'}}\nroles: {{directory: {tmp_path / 'roles'}}}\n"
            f"logging: {{level: WARNING}}\nhttp: {{port: {self.port}}}\n"
            f"cluster: {{instance: {name}, lease: {LEASE}, sweep: {SWEEP}}}\n"
        )
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = (self.folder / "daemon.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "supervisor",
            "run",
            "--config",
            str(self.config),
            cwd=ROOT,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        async with aiohttp.ClientSession() as session:
            await until(lambda: self._ready(session), f"{self.name} to be ready")

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await self.process.wait()
        self.process = None
        return code

    def log(self) -> str:
        return (self.folder / "daemon.log").read_text()


async def until(check: Any, what: str) -> None:
    try:
        async with asyncio.timeout(90):
            while True:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)  # real processes run on real time: there is no clock
    except TimeoutError:
        raise AssertionError(f"waited 90 s for {what}") from None


async def post_round_robin(
    session: aiohttp.ClientSession, nodes: list[Node], event: str, bodies: list[dict[str, Any]]
) -> list[int]:
    """POST each body to the next node in turn, 30 at a time; return the statuses."""
    turn = itertools.cycle(nodes)

    async def post(body: dict[str, Any]) -> int:
        url = f"http://127.0.0.1:{next(turn).port}/events/{event}"
        async with session.post(url, json=body) as response:
            return response.status

    statuses: list[int] = []
    for start in range(0, len(bodies), 30):
        statuses += await asyncio.gather(*(post(b) for b in bodies[start : start + 30]))
    return statuses


async def test_three_daemons_two_killed_lose_nothing_and_repeat_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "work.py").write_text(ROLE)
    nodes = [Node(tmp_path, f"node-{n}", postgres_url) for n in (1, 2, 3)]
    db = await asyncpg.connect(postgres_url)
    try:
        await nodes[0].start()  # the first start migrates the empty database
        await asyncio.gather(*(node.start() for node in nodes[1:]))
        async with aiohttp.ClientSession() as session:
            timers = [{"n": n, "seconds": 4.0 + (n % 30) / 5} for n in range(TIMERS)]
            assert await post_round_robin(session, nodes, "SET_TIMER", timers) == [202] * TIMERS
            orders = [{"order": n} for n in range(EVENTS)]
            half = EVENTS // 2
            statuses = await post_round_robin(session, nodes, "ORDER_PLACED", orders[:half])
            await asyncio.gather(nodes[0].kill(), nodes[1].kill())
            killed_at = time.monotonic()
            held = await db.fetchval(
                "SELECT count(*) FROM journal WHERE state = 'claimed' "
                "AND (owner LIKE 'node-1/%' OR owner LIKE 'node-2/%')"
            )
            assert held > 0, "the kill came too late to test a takeover"
            assert await db.fetchval("SELECT count(*) FROM timers WHERE state = 'pending'") > 0
            statuses += await post_round_robin(session, nodes[2:], "ORDER_PLACED", orders[half:])
            assert statuses == [202] * EVENTS

            async def dead_claims_left() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM journal WHERE state = 'claimed' "
                    "AND (owner LIKE 'node-1/%' OR owner LIKE 'node-2/%')"
                )

            await until(dead_claims_left, "the dead daemons' claims taken over")
            takeover = time.monotonic() - killed_at
            await asyncio.sleep(max(0.0, 5.0 - takeover))  # node-1 comes back 5 s after its death
            await nodes[0].start()

            async def all_done() -> bool:
                open_entries = await db.fetchval(
                    "SELECT count(*) FROM journal WHERE state <> 'done'"
                )
                pending = await db.fetchval("SELECT count(*) FROM timers WHERE state <> 'fired'")
                fired = await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'fired'")
                return open_entries == 0 and pending == 0 and fired >= TIMERS

            await until(all_done, "every event handled and every timer fired")
        codes = [await node.stop() for node in (nodes[0], nodes[2])]
        assert codes == [0, 0], nodes[0].log() + nodes[2].log()
        orders_audited = await db.fetch(
            "SELECT (details->>'order')::int AS n, count(*) AS c FROM audit_log "
            "WHERE action = 'order' GROUP BY 1"
        )
        fired = await db.fetch(
            "SELECT (details->>'n')::int AS n, count(*) AS c FROM audit_log "
            "WHERE action = 'fired' GROUP BY 1"
        )
        taken_over = await db.fetchval("SELECT count(*) FROM journal WHERE attempts > 1")
    finally:
        await db.close()
        for node in nodes:
            if node.process is not None:
                await node.kill()
    assert sorted((row["n"], row["c"]) for row in orders_audited) == [(n, 1) for n in range(EVENTS)]
    assert sorted((row["n"], row["c"]) for row in fired) == [(n, 1) for n in range(TIMERS)]
    assert taken_over > 0  # the dead daemons' claims were delivered again, with attempt 2
    assert takeover <= LEASE + SWEEP, f"takeover took {takeover:.2f} s"
