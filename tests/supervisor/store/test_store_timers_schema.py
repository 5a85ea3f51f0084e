"""Store behaviour the timer, audit and schedule tables rely on."""

import sqlite3
from pathlib import Path

import pytest

from common.errors import StoreError
from supervisor.store.sqlite import Store
from supervisor.store.timers import MIGRATIONS as TIMER_MIGRATIONS
from supervisor.store.timers import SqliteTimers


def test_a_corrupt_database_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "intentd.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=f"store.path {str(path)!r}: cannot open the database"):
        Store(path)


def test_a_migration_may_create_a_trigger(tmp_path: Path) -> None:
    store = Store(tmp_path / "intentd.db")
    store.migrate(
        "demo",
        [
            """
            CREATE TABLE log (x INTEGER);
            CREATE TRIGGER log_append_only BEFORE DELETE ON log
            BEGIN SELECT RAISE(ABORT, 'append-only'); END;
            INSERT INTO log VALUES (1);
            """
        ],
    )
    with pytest.raises(Exception, match="append-only"):
        store.db.execute("DELETE FROM log")
    assert store.db.execute("SELECT x FROM log").fetchall()[0][0] == 1


async def test_timers_stored_before_the_clustered_table_keep_every_field(tmp_path: Path) -> None:
    store = Store(tmp_path / "intentd.db")
    store.migrate("timers", TIMER_MIGRATIONS[:2])
    store.db.execute(
        "INSERT INTO timers (timer_id, label, due_at, created_at, channel_id, user_id, role, "
        "original_request, data, state, attempts, claimed_by, lease_until) "
        "VALUES ('tmr-1', 'tea', 100.5, 10.0, 'C1', 'U1', 'timer', 'tea in 90 s', "
        "'{\"n\": 1}', 'pending', 2, 'gone', 99.0)"
    )
    timers = SqliteTimers(store)  # applies the rest
    assert store.db.execute(
        "SELECT version FROM schema_versions WHERE component = 'timers'"
    ).fetchone()[0] == len(TIMER_MIGRATIONS)
    without_rowid = store.db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'timers'"
    ).fetchone()[0]
    assert "WITHOUT ROWID" in without_rowid
    timer = await timers.get("tmr-1")
    assert timer is not None
    assert (timer.label, timer.due_at, timer.channel_id, timer.original_request, timer.data) == (
        "tea",
        100.5,
        "C1",
        "tea in 90 s",
        {"n": 1},
    )
    assert (timer.state, timer.attempts) == ("pending", 2)
    assert await timers.pending() == {"tmr-1": 100.5}
    await timers.recover()  # the claim of the old run is dropped, as before
    _, claimed, _ = await timers.advance([], ["tmr-1"], "me", 101.0, 106.0)
    assert [t.attempts for t in claimed] == [3]
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(
            "INSERT INTO timers (timer_id, due_at, created_at, state) "
            "VALUES ('tmr-2', 1, 1, 'bogus')"
        )
