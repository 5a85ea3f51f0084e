"""The durable store: one SQLite database in WAL mode, used from the loop in short transactions.

Rules kept here:
- Plain ``sqlite3`` on the event loop's thread (aiosqlite would start a thread per connection);
  every transaction is small, so the loop is never held for long.
- Each component (timers, audit, outbox...) owns its tables and a numbered list of migrations,
  applied once, in order, at open; ``schema_versions`` records how far each component got.
- A database that cannot be opened, is corrupt or is not writable is a StoreError naming the path.
"""

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common.errors import StoreError
from supervisor.config import StorageConfig

Migration = str  # one SQL script


class Store:
    """One SQLite connection with per-component versioned migrations."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        location = str(self.path)
        if location != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"store.path {location!r}: cannot create folder {str(self.path.parent)!r} "
                    f"({err.strerror})"
                ) from err
        try:
            self.db = sqlite3.connect(location, isolation_level=None, check_same_thread=True)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=2000")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions "
                "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"store.path {location!r}: cannot open the database ({err}); "
                "check the path and its permissions, or move a corrupt file aside"
            ) from err

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Apply ``component``'s migrations not yet applied; return its schema version."""
        row = self.db.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        current = row["version"] if row else 0
        if current > len(migrations):
            raise StoreError(
                f"store.path {str(self.path)!r}: {component} schema version {current} is newer "
                f"than this intentd knows ({len(migrations)}); upgrade intentd"
            )
        for version, script in enumerate(migrations[current:], start=current + 1):
            try:
                with self.transaction() as db:
                    for statement in _statements(script):
                        db.execute(statement)
                    db.execute(
                        "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                        "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                        (component, version),
                    )
            except sqlite3.DatabaseError as err:
                raise StoreError(
                    f"store.path {str(self.path)!r}: {component} migration {version} failed ({err})"
                ) from err
        return len(migrations)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the body in one IMMEDIATE transaction; commit on success, roll back on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (disk full, I/O error): keep the real error.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def not_ready(self) -> str | None:
        """Return why the database cannot be read now, or None when it can (for ``/readyz``)."""
        try:
            self.db.execute("SELECT 1").fetchone()
        except sqlite3.Error as err:
            return f"the store at {str(self.path)!r} cannot be read ({err})"
        return None

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


def open_store(config: StorageConfig, resolve: Callable[[Path], Path]) -> Store:
    """Open the store a config's ``storage`` section describes; ``resolve`` anchors its path."""
    return Store(resolve(config.path), synchronous=config.synchronous.upper())


def _statements(script: str) -> Iterator[str]:
    # Split on ";" but keep a CREATE TRIGGER body (which contains ";") in one statement.
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n\t;"):
                yield statement
            statement = ""
    if statement.strip(" \n\t;"):
        yield statement
