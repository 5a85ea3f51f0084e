"""The SQLite audit log: on disk for another connection, append-only, upgraded in place.

What both backends share is in test_contract.py.
"""

import sqlite3
from pathlib import Path

import pytest

from common.intent_processor import IntentProcessor
from common.intents import AuditIntent
from supervisor.store.audit import MIGRATIONS, DurableAuditSink, SqliteAudit
from supervisor.store.sqlite import Store
from tests.supervisor.store.test_contract import make_record


async def test_an_appended_record_is_on_disk_for_another_connection(tmp_path: Path) -> None:
    await DurableAuditSink(SqliteAudit(Store(tmp_path / "a.db"))).append(make_record())
    reader = DurableAuditSink(SqliteAudit(Store(tmp_path / "a.db")))
    assert await reader.tail() == [make_record()]


async def test_the_audit_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    backend = SqliteAudit(Store(tmp_path / "a.db"))
    await DurableAuditSink(backend).append(make_record())
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        backend.store.db.execute("DELETE FROM audit_log")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        backend.store.db.execute("UPDATE audit_log SET action = 'x'")
    assert len(await backend.tail(20)) == 1


async def test_the_processor_appends_audit_intents_to_the_durable_sink(tmp_path: Path) -> None:
    sink = DurableAuditSink(SqliteAudit(Store(tmp_path / "a.db")))
    processor = IntentProcessor(audit_sink=sink)
    intent = AuditIntent(action="login", details={"ip": "127.0.0.1"}, user_id="U1")
    await processor.process_intents([intent], role="auth")
    (record,) = await sink.tail()
    assert (record.action, record.details, record.role, record.intent_id) == (
        "login",
        {"ip": "127.0.0.1"},
        "auth",
        intent.intent_id,
    )


async def test_an_audit_log_from_before_the_unique_intent_ids_is_upgraded(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.migrate("audit", MIGRATIONS[:1])
    store.db.execute(
        "INSERT INTO audit_log (created_at, action, details, intent_id) "
        "VALUES ('2027-01-15T08:00:00+00:00', 'timer_expired', '{}', 'int-1')"
    )
    sink = DurableAuditSink(SqliteAudit(store))
    await sink.append(make_record())
    assert [r.intent_id for r in await sink.tail()] == ["int-1"]
