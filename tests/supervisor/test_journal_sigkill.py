"""Kill the real daemon with a backlog of accepted events; after a restart each is handled once.

The daemon runs as a child process; events come in over HTTP (each answered 202) and as Socket
Mode envelopes from the fake Slack (each acked). A role turns each into an audit record and a
role intent that takes 5 ms, so a backlog builds up behind the acknowledgements.
"""

import asyncio
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 400
SLOW_ROLE = '''
"""Reacts to ORDER_PLACED and USER_REQUEST with an audit record and a 5 ms role intent."""
import asyncio
from dataclasses import dataclass

from common.intents import AuditIntent, Intent

ROLE_CONFIG = {"name": "slow", "version": "1.0.0", "description": "Test role", "llm_type": "WEAK"}


@dataclass
class PackIntent(Intent):
    order: str

    def validate(self):
        return bool(self.order)


def handle_order(event_data, context):
    order = str(event_data["order"])
    return [AuditIntent(action="order", details={"order": order}), PackIntent(order=order)]


def handle_request(event_data, context):
    order = event_data["text"]
    return [AuditIntent(action="order", details={"order": order}), PackIntent(order=order)]


async def process_pack(intent):
    await asyncio.sleep(0.005)


def register_role():
    return {"config": ROLE_CONFIG, "tools": [], "intents": {PackIntent: process_pack},
            "event_handlers": {"ORDER_PLACED": handle_order, "USER_REQUEST": handle_request}}
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(tmp_path: Path, extra: str = "") -> tuple[Path, int]:
    roles = tmp_path / "roles"
    roles.mkdir(exist_ok=True)
    (roles / "slow.py").write_text(SLOW_ROLE)
    port = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: {tmp_path / 'intentd.db'}}}\nroles: {{directory: {roles}}}\n"
        f"logging: {{level: WARNING}}\nhttp: {{port: {port}}}\n{extra}"
    )
    return config, port


async def _start(config: Path, port: int) -> asyncio.subprocess.Process:
    log = (config.parent / "daemon.log").open("ab")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "supervisor",
        "run",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    log.close()
    async with aiohttp.ClientSession() as session:
        # ready, not just answering: events posted before the journal opens are refused (503)
        await _until(lambda: _ready(session, port), f"the daemon to be ready on port {port}")
    return child


async def _ready(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def _until(check: Any, what: str) -> None:
    async with asyncio.timeout(60):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)  # a real process runs on real time: there is no clock


def _query(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{tmp_path / 'intentd.db'}?mode=ro", uri=True) as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []


def _audited(tmp_path: Path) -> tuple[int, int]:
    """Return how many audit records there are, and for how many distinct orders."""
    [(records, orders)] = _query(
        tmp_path,
        "SELECT count(*), count(DISTINCT json_extract(details, '$.order')) FROM audit_log "
        "WHERE action = 'order'",
    ) or [(0, 0)]
    return int(records), int(orders)


async def _post_all(port: int, count: int) -> None:
    """POST ``count`` events, 20 at a time; every answer must be 202."""
    async with aiohttp.ClientSession() as session:

        async def post(order: int) -> int:
            url = f"http://127.0.0.1:{port}/events/ORDER_PLACED"
            async with session.post(url, json={"order": order}) as response:
                return response.status

        statuses: list[int] = []
        for start in range(0, count, 20):
            statuses += await asyncio.gather(*(post(n) for n in range(start, start + 20)))
    assert statuses == [202] * count


async def _restart_and_finish(config: Path, port: int, tmp_path: Path) -> None:
    second = await _start(config, port)
    try:
        await _until(lambda: _audited(tmp_path)[1] >= EVENTS, "every accepted event handled")
        await _until(
            lambda: (
                _query(tmp_path, "SELECT count(*) FROM journal WHERE state != 'done'") == [(0,)]
            ),
            "every journal entry done",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        code = await second.wait()
    assert code == 0, (config.parent / "daemon.log").read_text()
    assert _audited(tmp_path) == (EVENTS, EVENTS)  # every event once, no audit record twice


async def test_sigkill_with_a_backlog_of_accepted_http_events_loses_none(tmp_path: Path) -> None:
    config, port = _write_config(tmp_path)
    first = await _start(config, port)
    try:
        await _post_all(port, EVENTS)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert _audited(tmp_path)[1] < EVENTS, "the kill came too late to test anything"
    await _restart_and_finish(config, port, tmp_path)
    replays = _query(tmp_path, "SELECT count(*) FROM journal WHERE attempts > 1")
    assert replays[0][0] > 0  # some were claimed when the kill came, and delivered again


async def test_sigterm_with_a_backlog_leaves_the_rest_in_the_journal_for_the_next_start(
    tmp_path: Path,
) -> None:
    config, port = _write_config(tmp_path, "supervisor: {shutdown_timeout: 0.3}\n")
    first = await _start(config, port)
    try:
        await _post_all(port, EVENTS)
    finally:
        first.send_signal(signal.SIGTERM)
        code = await first.wait()
    assert code == 0, (tmp_path / "daemon.log").read_text()
    handled, _ = _audited(tmp_path)
    states = dict(_query(tmp_path, "SELECT state, count(*) FROM journal GROUP BY state"))
    assert handled < EVENTS and set(states) == {"done", "pending"}  # claims released
    assert states["done"] + states["pending"] == EVENTS  # none dropped
    await _restart_and_finish(config, port, tmp_path)


async def test_sigkill_with_a_backlog_of_acked_socket_mode_envelopes_loses_none(
    tmp_path: Path,
) -> None:
    async with FakeSlack(channels={"C0GEN": "general"}, timeout=10.0) as slack:
        slack_section = (
            "slack: {enabled: true, bot_token: xoxb-test, app_token: xapp-test, "
            f"base_url: '{slack.base_url}', reconnect_interval: 0.1}}\n"
        )
        config, port = _write_config(tmp_path, slack_section)
        first = await _start(config, port)
        try:
            await slack.wait_connected(1)
            for n in range(EVENTS):
                await slack.send_envelope("events_api", slack.direct_message(str(n)))
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert len(slack.acks) == EVENTS
        assert _audited(tmp_path)[1] < EVENTS, "the kill came too late to test anything"
        await _restart_and_finish(config, port, tmp_path)
