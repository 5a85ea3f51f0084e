"""The store commands on ``storage.url``: timers, audit, kv, dead events and dead letters are
read from (and retried in) PostgreSQL, without a daemon."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.audit import AuditRecord
from supervisor.cli.main import main
from supervisor.config import StorageConfig
from supervisor.store.backends import open_parts
from supervisor.store.base import NewNotification, Timer
from supervisor.store.journal import NewEvent
from supervisor.store.kv import KVStore


async def _fill(url: str) -> None:
    parts = await open_parts(StorageConfig(url=url), Path, "test")
    try:
        timer = ("tmr-1", "tea", 1_800_000_300.0, 1.0, "C1", "U1", "timer", None, {})
        await parts.timers.add(Timer(*timer, "pending", 0, None, None))
        created = datetime(2027, 1, 15, tzinfo=UTC)
        record = AuditRecord("login", {"n": 1}, "U1", "auth", "int-1", None, created)
        await parts.audit.append_many([record])
        await KVStore(parts.kv).for_role("standup").set("notes", ["db upgrade"])
        await parts.journal.append([NewEvent("evt-1", "PING", {}, "http", "http", 1.0)])
        await parts.journal.claim("gone", 1, 60.0, 2.0)
        await parts.journal.park("gone", "evt-1", "no handler", 3.0)
        note = ("int-9", "slack", "#gone", "slack:#gone", "hi", "medium", None, None, False)
        entry_id, _ = await parts.outbox.enqueue(NewNotification(*note, 1.0))
        await parts.outbox.update(entry_id, {"state": "dead", "last_error": "channel_not_found"})
    finally:
        await parts.close()


@pytest.fixture
def config(tmp_path: Path, postgres_url: str, restore_logging: None) -> Path:
    asyncio.run(_fill(postgres_url))
    path = tmp_path / "config.yaml"
    path.write_text(f"storage: {{url: '{postgres_url}'}}\n")
    return path


def test_timers_audit_and_kv_are_read_from_postgres(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timers", "list", "--json", "--config", str(config)]) == 0
    assert main(["audit", "tail", "--json", "--config", str(config)]) == 0
    assert main(["kv", "standup", "notes", "--config", str(config)]) == 0
    timer, record, *kv = capsys.readouterr().out.splitlines()
    assert (json.loads(timer)["timer_id"], json.loads(timer)["due"]) == (
        "tmr-1",
        "2027-01-15T08:05:00Z",
    )
    assert (json.loads(record)["action"], json.loads(record)["details"]) == ("login", {"n": 1})
    assert json.loads("\n".join(kv)) == ["db upgrade"]


def test_dead_events_and_letters_on_postgres_are_listed_and_retried(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "list", "--json", "--config", str(config)]) == 0
    assert main(["dead-letters", "list", "--json", "--config", str(config)]) == 0
    event, letter = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (event["event_id"], event["error"]) == ("evt-1", "no handler")
    assert (letter["channel"], letter["error"]) == ("slack:#gone", "channel_not_found")
    assert main(["events", "retry", "evt-1", "--config", str(config)]) == 0
    assert main(["dead-letters", "retry", "--all", "--config", str(config)]) == 0
    assert main(["events", "list", "--config", str(config)]) == 0
    assert main(["dead-letters", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "re-queued 1 dead event(s): evt-1",
        f"re-queued 1 dead letter(s): [{letter['id']}]",
        "no dead events",
        "no dead letters",
    ]
