"""Kill the real daemon with SIGKILL while timers are pending; after a restart none is lost."""

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common.message_bus import MessageBus
from supervisor.scheduling.timers import TimerService
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import FakeClock

ROOT = Path(__file__).resolve().parents[3]
TIMERS = 120


def _seed_timers(db: Path) -> list[str]:
    """Store timers due 1 to 6 s from now, as a daemon run before this one would have."""
    store = Store(db)
    service = TimerService(SqliteTimers(store), MessageBus(), FakeClock(time.time()), arms=False)

    async def create() -> list[str]:
        return [
            await service.create(duration=1 + 5 * i / TIMERS, label=f"t{i}") for i in range(TIMERS)
        ]

    ids = asyncio.run(create())
    store.close()
    return ids


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the daemon did not get there in time"
        time.sleep(0.02)  # a real process runs on real time: there is no clock to move


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the daemon has not created the table yet
            return []


def test_sigkill_with_pending_timers_loses_none_after_restart(tmp_path: Path) -> None:
    db, log = tmp_path / "intentd.db", tmp_path / "daemon.log"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: {db}}}\nroles: {{directory: {ROOT / 'roles'}}}\n"
        "logging: {level: WARNING}\nhttp: {enabled: false}\n"
    )
    ids = _seed_timers(db)

    def audited() -> int:
        return len(_query(db, "SELECT seq FROM audit_log WHERE action = 'timer_expired'"))

    def pending() -> int:
        rows = _query(db, "SELECT count(*) FROM timers WHERE state = 'pending'")
        return int(rows[0][0])  # type: ignore[call-overload]

    first = _start(config, log)
    try:
        _wait_for(lambda: audited() >= 10)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert pending() > 0, "the kill came too late to test anything"

    second = _start(config, log)
    try:
        _wait_for(lambda: pending() == 0 and audited() >= TIMERS)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()

    rows = _query(db, "SELECT details FROM audit_log WHERE action = 'timer_expired'")
    details = [json.loads(row[0]) for row in rows]  # type: ignore[arg-type]
    by_timer = Counter(d["timer_id"] for d in details)
    first_attempts = Counter(d["timer_id"] for d in details if d["attempt"] == 1)
    states = dict(_query(db, "SELECT timer_id, state FROM timers"))
    assert set(by_timer) == set(ids) and set(states.values()) == {"fired"}
    assert max(first_attempts.values()) == 1  # a second delivery is always marked attempt 2
