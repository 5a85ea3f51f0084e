"""The ScheduleBackend on the SQLite store: one ``schedule_state`` row per schedule."""

from supervisor.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE schedule_state (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        next_run_at REAL NOT NULL,
        last_run_at REAL
    );
    """,
]


class SqliteSchedules:
    """Each schedule's timing in the daemon's SQLite file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("schedules", MIGRATIONS)

    async def load(self) -> dict[str, tuple[str, float]]:
        """Return each saved schedule's spec and next run time, by name."""
        rows = self.store.db.execute("SELECT name, spec, next_run_at FROM schedule_state")
        return {row["name"]: (row["spec"], row["next_run_at"]) for row in rows}

    async def save(
        self, name: str, spec: str, next_run_at: float, last_run_at: float | None
    ) -> None:
        """Save a schedule's timing; with the same spec, a later next run already saved stays."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO schedule_state (name, spec, next_run_at, last_run_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
                "next_run_at = CASE WHEN spec = excluded.spec "
                "THEN max(next_run_at, excluded.next_run_at) ELSE excluded.next_run_at END, "
                "last_run_at = coalesce(excluded.last_run_at, last_run_at)",
                (name, spec, next_run_at, last_run_at),
            )
