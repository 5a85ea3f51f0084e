"""The durable audit log: committed on append, append-only, read back by the CLI's query."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.audit import AuditRecord
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent
from supervisor.store.audit import MIGRATIONS, DurableAuditSink
from supervisor.store.sqlite import Store


def make_record(action: str = "timer_expired", **overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "action": action,
        "details": {"timer_id": "tmr-1"},
        "user_id": "U1",
        "role": "timer",
        "intent_id": "int-1",
        "parent_id": "evt-1",
        "created_at": datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def test_an_appended_record_is_on_disk_for_another_connection(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    sink.append(make_record())
    reader = DurableAuditSink(Store(tmp_path / "a.db"))
    assert reader.tail() == [make_record()]


def test_tail_returns_the_last_n_oldest_first_and_filters_by_action(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    sink.append_many(make_record(a, intent_id=f"int-{i}") for i, a in enumerate("abab"))
    assert [r.intent_id for r in sink.tail(3)] == ["int-1", "int-2", "int-3"]
    assert [r.intent_id for r in sink.tail(5, action="a")] == ["int-0", "int-2"]


def test_recent_returns_the_last_limit_records_newest_first(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    sink.append_many(make_record(intent_id=f"int-{i}") for i in range(4))
    assert [r.intent_id for r in sink.recent(3)] == ["int-3", "int-2", "int-1"]


def test_the_audit_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    sink.append(make_record())
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        sink.store.db.execute("DELETE FROM audit_log")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        sink.store.db.execute("UPDATE audit_log SET action = 'x'")
    assert len(sink.tail()) == 1


async def test_the_processor_appends_audit_intents_to_the_durable_sink(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    processor = IntentProcessor(audit_sink=sink)
    intent = AuditIntent(action="login", details={"ip": "127.0.0.1"}, user_id="U1")
    await processor.process_intents([intent], role="auth")
    (record,) = sink.tail()
    assert (record.action, record.details, record.role, record.intent_id) == (
        "login",
        {"ip": "127.0.0.1"},
        "auth",
        intent.intent_id,
    )


def test_a_record_whose_intent_is_already_logged_is_not_logged_again(tmp_path: Path) -> None:
    sink = DurableAuditSink(Store(tmp_path / "a.db"))
    sink.append(make_record(details={"attempt": 1}))
    sink.append_many([make_record(details={"attempt": 2}), make_record(intent_id="int-2")])
    assert [(r.intent_id, r.details) for r in sink.tail()] == [
        ("int-1", {"attempt": 1}),
        ("int-2", {"timer_id": "tmr-1"}),
    ]


def test_an_audit_log_from_before_the_unique_intent_ids_is_upgraded(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.migrate("audit", MIGRATIONS[:1])
    store.db.execute(
        "INSERT INTO audit_log (created_at, action, details, intent_id) "
        "VALUES ('2027-01-15T08:00:00+00:00', 'timer_expired', '{}', 'int-1')"
    )
    sink = DurableAuditSink(store)
    sink.append(make_record())
    assert [r.intent_id for r in sink.tail()] == ["int-1"]
