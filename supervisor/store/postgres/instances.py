"""The instances of a cluster: each process says it is alive, and reads who else is.

Rules kept here:
- Every ``cluster.heartbeat`` seconds (5 by default) a process upserts its ``cluster_instances`` row
  (``seen_at``); that write is also its check that the database answers, for ``/readyz``.
- An instance counts as seen recently when its row is younger than ``SEEN_WITHIN`` seconds. Its
  claims are read from the journal (owner ``<instance>/<run>``), the timers and the outbox lanes.
- The result is kept in memory, so ``/status`` and ``/readyz`` never wait on the database.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from supervisor.store.postgres.pool import DOWN_ERRORS

log = structlog.get_logger("intentd.postgres")

SEEN_WITHIN = 30.0  # an instance whose last heartbeat is older than this is not listed

_SEEN = """
SELECT i.instance, i.started_at, i.seen_at,
       (SELECT count(*) FROM journal j WHERE j.state = 'claimed'
        AND split_part(j.owner, '/', 1) = i.instance) AS journal_claims,
       (SELECT max(j.lease_until) FROM journal j WHERE j.state = 'claimed'
        AND split_part(j.owner, '/', 1) = i.instance) AS journal_lease_until,
       (SELECT count(*) FROM timers t WHERE t.state = 'pending' AND t.claimed_by = i.instance
        AND t.lease_until > $1) AS timer_claims,
       (SELECT count(*) FROM outbox_lanes l WHERE split_part(l.owner, '/', 1) = i.instance
        AND l.lease_until > $1) AS lanes
FROM cluster_instances i WHERE i.seen_at > $1 - $2 ORDER BY i.instance
"""


class Instances:
    """This process's heartbeat row, and the instances seen recently as last read."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        instance: str,
        shown: str,
        every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.every = every
        self.instance = instance
        self.shown = shown
        self.clock = clock
        self.started_at = clock()
        self.problem: str | None = None  # why the database cannot be used now, as last seen
        self.seen: list[dict[str, Any]] = []

    async def beat(self) -> None:
        """Write this process's heartbeat and read the instances seen recently."""
        now = self.clock()
        try:
            async with self.pool.acquire(timeout=2.0) as conn:
                await conn.execute(
                    "INSERT INTO cluster_instances (instance, started_at, seen_at) "
                    "VALUES ($1, $2, $3) ON CONFLICT (instance) DO UPDATE SET "
                    "started_at = excluded.started_at, seen_at = excluded.seen_at",
                    self.instance,
                    self.started_at,
                    now,
                    timeout=2.0,
                )
                rows = await conn.fetch(_SEEN, now, SEEN_WITHIN, timeout=2.0)
        except DOWN_ERRORS as err:
            if self.problem is None:
                log.warning("postgres_unreachable", url=self.shown, error=type(err).__name__)
            self.problem = (
                f"the PostgreSQL store at {self.shown!r} does not answer ({type(err).__name__})"
            )
            return
        if self.problem is not None:
            log.info("postgres_reachable", url=self.shown)
        self.problem = None
        self.seen = [
            {
                "instance": row["instance"],
                "age_s": round(now - row["seen_at"], 1),
                "up_s": round(now - row["started_at"], 1),
                "journal_claims": row["journal_claims"],
                "lease_left_s": (
                    round(row["journal_lease_until"] - now, 1)
                    if row["journal_lease_until"] is not None
                    else None
                ),
                "timer_claims": row["timer_claims"],
                "outbox_lanes": row["lanes"],
            }
            for row in rows
        ]

    async def run(self) -> None:
        """Beat every ``every`` seconds until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self.every)
