import sqlite3

import pytest

from common.errors import StoreError
from supervisor.store.sqlite import Store


def test_migrations_run_once_each_in_order(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    steps = ["CREATE TABLE notes (id INTEGER)", "ALTER TABLE notes ADD COLUMN text TEXT"]
    assert store.migrate("notes", steps) == 2
    assert store.migrate("notes", steps) == 2
    store.db.execute("INSERT INTO notes (id, text) VALUES (1, 'kept')")
    assert [tuple(r) for r in store.db.execute("SELECT id, text FROM notes")] == [(1, "kept")]


def test_a_newer_schema_than_this_version_knows_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    Store(path).migrate("notes", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    with pytest.raises(StoreError, match="notes schema version 2 is newer than this intentd"):
        Store(path).migrate("notes", ["CREATE TABLE a (x)"])


def test_a_failing_transaction_rolls_back_and_keeps_its_error(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate("notes", ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"])
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as db:
        db.execute("INSERT INTO notes VALUES (1)")
        db.execute("INSERT INTO notes VALUES (1)")
    assert store.db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0
    assert not store.db.in_transaction


def test_a_full_disk_error_is_not_hidden_by_the_rollback(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate("blobs", ["CREATE TABLE blobs (data BLOB)"])
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(sqlite3.OperationalError, match="full"), store.transaction() as db:
        db.execute("INSERT INTO blobs VALUES (?)", (b"x" * 100_000,))
    assert not store.db.in_transaction


def test_an_unwritable_folder_is_a_store_error_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create folder"):
        Store(blocker / "sub" / "db.sqlite")
