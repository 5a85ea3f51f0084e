"""The ScheduleBackend on PostgreSQL: instances save the same schedule's timing, the latest wins."""

import asyncpg


class PostgresSchedules:
    """Each schedule's timing in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self) -> dict[str, tuple[str, float]]:
        """Return each saved schedule's spec and next run time, by name."""
        rows = await self.pool.fetch("SELECT name, spec, next_run_at FROM schedule_state")
        return {row["name"]: (row["spec"], row["next_run_at"]) for row in rows}

    async def save(
        self, name: str, spec: str, next_run_at: float, last_run_at: float | None
    ) -> None:
        """Save a schedule's timing; with the same spec, a later next run saved elsewhere stays."""
        await self.pool.execute(
            "INSERT INTO schedule_state (name, spec, next_run_at, last_run_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
            "next_run_at = CASE WHEN schedule_state.spec = excluded.spec "
            "THEN greatest(schedule_state.next_run_at, excluded.next_run_at) "
            "ELSE excluded.next_run_at END, "
            "last_run_at = coalesce(excluded.last_run_at, schedule_state.last_run_at)",
            name,
            spec,
            next_run_at,
            last_run_at,
        )
