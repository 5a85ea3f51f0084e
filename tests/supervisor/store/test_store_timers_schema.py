"""Store behaviour the timer, audit and schedule tables rely on."""

from pathlib import Path

import pytest

from common.errors import StoreError
from supervisor.store.sqlite import Store


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
