"""The event journal: an event from outside the process is stored before it is acknowledged.

The interface a backend implements (``Journal``; SQLite here, PostgreSQL with
``FOR UPDATE SKIP LOCKED`` and the same leases), every operation one short transaction:

- ``append(events, owner=None, lease_until=None)``: store new events, in order; each result
  names its entry's ``seq``. An event whose ``key`` is already stored is not stored again; its
  result names the first event's id and seq (``duplicate=True``). With ``owner``, the new events
  are stored claimed by it (one attempt counted, held until ``lease_until``; ``claimed=True``):
  a dispatcher that appends events while no older entry is due takes them in the same
  transaction instead of claiming them after (``INSERT ... 'claimed'`` in PostgreSQL too).
- ``claim(owner, limit, lease, now)``: take up to ``limit`` due entries, oldest first: pending ones
  whose ``next_attempt_at`` has come, and claims of *other* owners whose lease ran out (their
  process died). Each claim counts an attempt and holds the entry until ``now + lease``.
- ``renew(owner, event_ids, lease_until)``: extend the owner's claims while their events run.
- ``finish(owner, event_ids, now)``: the handlers ran and their intents were carried out; one
  statement per call (``WHERE event_id IN (...)`` / ``= ANY($1)``), however many ids.
- ``finish_and_append(owner, event_ids, now, events, lease_until)``: ``finish`` and then
  ``append(events, owner=owner, lease_until=lease_until)`` in one transaction, so a dispatcher's
  turn commits its done marks and its new events at once; returns the finished count and the
  append's results. Either both are stored or neither.
- ``fail(owner, event_id, error, retry_at)``: back to pending, due again at ``retry_at``.
- ``park(owner, event_id, error, now)``: give up: the entry is dead until retried.
- ``release(owner)``: the owner's unfinished claims go back to pending (a clean shutdown).
- ``recover(now)``: claims no live owner can hold go back to pending (a start after a crash).
- ``get(event_id)``, ``dead(limit)``, ``retry(event_ids | None, now)``: inspect and replay the
  dead; ``stats(now)``: backlog, oldest unfinished entry, dead count, next due time;
  ``prune(before)``: drop done entries finished before ``before`` (keys expire with them).

Only the owner holding a claim may finish, fail or park it. States and the operations that move
between them are the ``TRANSITIONS`` table below; the SQL takes its ``WHERE state`` from it.
"""

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from common.errors import StoreError
from supervisor.store.sqlite import Store


class EntryState(StrEnum):
    """Where a journal entry is in its life."""

    PENDING = "pending"  # stored, waiting to be claimed (new, retried or released)
    CLAIMED = "claimed"  # a dispatcher owns it until its lease runs out
    DONE = "done"  # handled; kept until pruned, so its key still dedupes
    DEAD = "dead"  # parked after too many failures; ``retry`` makes it pending again


_P, _C, _D, _X = EntryState.PENDING, EntryState.CLAIMED, EntryState.DONE, EntryState.DEAD
TRANSITIONS: dict[str, tuple[frozenset[EntryState], EntryState]] = {
    # operation: (the states it may start from, the state it leaves)
    "claim": (frozenset({_P, _C}), _C),  # from CLAIMED only when another owner's lease ran out
    "finish": (frozenset({_C}), _D),
    "fail": (frozenset({_C}), _P),
    "park": (frozenset({_C}), _X),
    "release": (frozenset({_C}), _P),
    "recover": (frozenset({_C}), _P),
    "retry": (frozenset({_X}), _P),
}


def next_state(state: EntryState, operation: str) -> EntryState:
    """Return the state ``operation`` moves an entry in ``state`` to; raise if not allowed."""
    sources, target = TRANSITIONS[operation]
    if state not in sources:
        raise StoreError(
            f"journal: {operation!r} is not allowed on an entry in state {state.value!r}; "
            f"it applies to {sorted(s.value for s in sources)}"
        )
    return target


@dataclass(frozen=True)
class NewEvent:
    """An event to append; ``key`` (optional) makes a second append of it a no-op."""

    event_id: str
    event_type: str
    data: Any
    publisher: str
    source: str
    created_at: float
    channel_id: str | None = None
    user_id: str | None = None
    parent_id: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Appended:
    """The result of one append: the stored entry's id and seq, whether it was new, and claimed."""

    event_id: str
    event_type: str
    duplicate: bool = False
    seq: int = 0
    claimed: bool = False  # stored claimed by the appending owner (``append(owner=...)``)


@dataclass(frozen=True)
class JournalEntry:
    """One stored event with its delivery state."""

    seq: int
    event: NewEvent
    state: EntryState
    attempts: int
    next_attempt_at: float
    owner: str | None = None
    lease_until: float | None = None
    finished_at: float | None = None
    last_error: str | None = None

    @property
    def event_id(self) -> str:
        """Return the event's id."""
        return self.event.event_id

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event.event_type,
            "source": self.event.source,
            "state": self.state.value,
            "attempts": self.attempts,
            "created_at": self.event.created_at,
            "finished_at": self.finished_at,
            "last_error": self.last_error,
            "key": self.event.key,
            "parent_id": self.event.parent_id,
            "data": self.event.data,
        }


@dataclass(frozen=True)
class JournalStats:
    """What ``/status`` and ``/metrics`` show about the journal."""

    backlog: int = 0  # pending and claimed entries
    oldest_at: float | None = None  # when the oldest of them was accepted
    dead: int = 0
    next_due_at: float | None = None  # the earliest time a pending entry is due


class Journal(Protocol):
    """The journal's operations; see the module docstring for their rules."""

    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Appended]: ...

    async def finish_and_append(
        self,
        owner: str,
        event_ids: Sequence[str],
        now: float,
        events: Sequence[NewEvent],
        lease_until: float,
    ) -> tuple[int, list[Appended]]: ...

    async def claim(
        self, owner: str, limit: int, lease: float, now: float
    ) -> list[JournalEntry]: ...

    async def renew(self, owner: str, event_ids: Sequence[str], lease_until: float) -> int: ...

    async def finish(self, owner: str, event_ids: Sequence[str], now: float) -> int: ...

    async def fail(self, owner: str, event_id: str, error: str, retry_at: float) -> bool: ...

    async def park(self, owner: str, event_id: str, error: str, now: float) -> bool: ...

    async def release(self, owner: str) -> int: ...

    async def recover(self, now: float) -> int: ...

    async def get(self, event_id: str) -> JournalEntry | None: ...

    async def dead(self, limit: int = 1000) -> list[JournalEntry]: ...

    async def retry(self, event_ids: Sequence[str] | None, now: float) -> list[str]: ...

    async def stats(self, now: float) -> JournalStats: ...

    async def prune(self, before: float) -> int: ...

    def watch(self, wake: Callable[[], None]) -> None: ...


MIGRATIONS = [
    """
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        key TEXT UNIQUE,
        event_type TEXT NOT NULL,
        data TEXT NOT NULL,
        publisher TEXT NOT NULL,
        source TEXT NOT NULL,
        channel_id TEXT,
        user_id TEXT,
        parent_id TEXT,
        created_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'claimed', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        owner TEXT,
        lease_until REAL,
        finished_at REAL,
        last_error TEXT
    );
    CREATE INDEX journal_open ON journal (seq) WHERE state IN ('claimed', 'pending');
    CREATE INDEX journal_dead ON journal (seq) WHERE state = 'dead';
    CREATE INDEX journal_done ON journal (finished_at) WHERE state = 'done';
    """,
]

_INSERT = (
    "INSERT INTO journal (event_id, key, event_type, data, publisher, source, channel_id, "
    "user_id, parent_id, created_at, next_attempt_at, state, owner, lease_until, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING"
)
FINISH_CHUNK = 500  # ids per ``finish`` statement, under SQLite's bound-parameter limit
# an event's data as stored: JSON, a value JSON has no type for written as its str; built once,
# as ``json.dumps(data, default=str)`` builds an encoder per call
encode_data = json.JSONEncoder(default=str).encode


def source_states(operation: str) -> list[str]:
    """Return the states ``operation`` may start from, in name order (for SQL on any backend)."""
    return sorted(state.value for state in TRANSITIONS[operation][0])


def target_state(operation: str) -> str:
    """Return the state ``operation`` moves an entry to."""
    return TRANSITIONS[operation][1].value


def _states(operation: str) -> str:
    """Return the SQL list of the states ``operation`` may start from, in name order.

    The order matters: SQLite uses the partial index ``journal_open`` only for the very same
    ``state IN ('claimed', 'pending')`` term.
    """
    return ", ".join(f"'{state}'" for state in source_states(operation))


def _values(event: NewEvent, claim: tuple[str, str | None, float | None, int]) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.key,
        event.event_type,
        encode_data(event.data),
        event.publisher,
        event.source,
        event.channel_id,
        event.user_id,
        event.parent_id,
        event.created_at,
        *claim,
    )


def entry_from_row(row: Any) -> JournalEntry:
    """Build a JournalEntry from a ``journal`` row (sqlite3.Row or asyncpg Record)."""
    event = NewEvent(
        event_id=row["event_id"],
        event_type=row["event_type"],
        data=json.loads(row["data"]),
        publisher=row["publisher"],
        source=row["source"],
        created_at=row["created_at"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        parent_id=row["parent_id"],
        key=row["key"],
    )
    return JournalEntry(
        seq=row["seq"],
        event=event,
        state=EntryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        finished_at=row["finished_at"],
        last_error=row["last_error"],
    )


def _append(
    db: sqlite3.Connection,
    events: Sequence[NewEvent],
    owner: str | None,
    lease_until: float | None,
) -> list[Appended]:
    """Insert ``events`` inside the open transaction ``db``; claimed by ``owner`` if given."""
    claimed = owner is not None
    claim = (target_state("claim"), owner, lease_until, 1) if claimed else (_P.value, None, None, 0)
    results: list[Appended] = []
    # The common case in one executemany: events without a key, all new, given consecutive seqs
    # (AUTOINCREMENT in one write transaction).
    unkeyed = [event for event in events if event.key is None]
    db.execute("SAVEPOINT unkeyed")
    before = db.total_changes
    db.executemany(_INSERT, [_values(event, claim) for event in unkeyed])
    all_new = db.total_changes - before == len(unkeyed)
    db.execute("RELEASE unkeyed" if all_new else "ROLLBACK TO unkeyed")
    (seq,) = db.execute("SELECT last_insert_rowid()").fetchone()
    seq -= len(unkeyed) - 1
    for event in events:
        if all_new and event.key is None:
            results.append(Appended(event.event_id, event.event_type, seq=seq, claimed=claimed))
            seq += 1
            continue
        cursor = db.execute(_INSERT, _values(event, claim))
        if cursor.rowcount == 1:
            results.append(
                Appended(
                    event.event_id, event.event_type, seq=cursor.lastrowid or 0, claimed=claimed
                )
            )
            continue
        row = db.execute(
            "SELECT seq, event_id, event_type FROM journal WHERE key = ? OR event_id = ?",
            (event.key, event.event_id),
        ).fetchone()
        results.append(Appended(row["event_id"], row["event_type"], duplicate=True, seq=row["seq"]))
    return results


def _finish(db: sqlite3.Connection, owner: str, event_ids: Sequence[str], now: float) -> int:
    """Mark ``owner``'s claimed entries done inside the open transaction ``db``; count them."""
    finished = 0
    for at in range(0, len(event_ids), FINISH_CHUNK):
        chunk = event_ids[at : at + FINISH_CHUNK]
        finished += db.execute(
            f"UPDATE journal SET state = '{target_state('finish')}', finished_at = ?, "
            "owner = NULL, lease_until = NULL "
            f"WHERE event_id IN ({', '.join('?' * len(chunk))}) AND owner = ? "
            f"AND state IN ({_states('finish')})",
            (now, *chunk, owner),
        ).rowcount
    return finished


class SqliteJournal:
    """The journal in the daemon's SQLite store: plain sqlite3 on the loop, short transactions.

    SQLite serves one process, so ``recover`` returns every claim to pending: a claim found when
    the daemon opens the store belongs to a process that died.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("journal", MIGRATIONS)

    def _fail(self, doing: str, err: sqlite3.Error) -> StoreError:
        return StoreError(f"store.path {str(self.store.path)!r}: cannot {doing} ({err})")

    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Appended]:
        """Store ``events`` in one transaction, claimed by ``owner`` if given; see the module."""
        try:
            with self.store.transaction() as db:
                return _append(db, events, owner, lease_until)
        except sqlite3.Error as err:
            raise self._fail("append to the event journal", err) from err

    async def finish_and_append(
        self,
        owner: str,
        event_ids: Sequence[str],
        now: float,
        events: Sequence[NewEvent],
        lease_until: float,
    ) -> tuple[int, list[Appended]]:
        """``finish`` then ``append(owner=...)`` in one transaction; see the module."""
        try:
            with self.store.transaction() as db:
                finished = _finish(db, owner, event_ids, now)
                return finished, _append(db, events, owner, lease_until)
        except sqlite3.Error as err:
            raise self._fail("mark journal entries done and append new events", err) from err

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[JournalEntry]:
        """Claim up to ``limit`` due entries for ``owner``, oldest first."""
        try:
            with self.store.transaction() as db:
                rows = db.execute(
                    f"UPDATE journal SET state = '{target_state('claim')}', owner = ?, "
                    "lease_until = ?, attempts = attempts + 1 WHERE seq IN ("
                    f"SELECT seq FROM journal WHERE state IN ({_states('claim')}) AND ("
                    "(state = 'pending' AND next_attempt_at <= ?) "
                    "OR (lease_until <= ? AND owner != ?)) ORDER BY seq LIMIT ?) RETURNING *",
                    (owner, now + lease, now, now, owner, limit),
                ).fetchall()
        except sqlite3.Error as err:
            raise self._fail("claim journal entries", err) from err
        return sorted((entry_from_row(row) for row in rows), key=lambda entry: entry.seq)

    def _owned_update(self, operation: str, sets: str, params: tuple[Any, ...], doing: str) -> int:
        try:
            with self.store.transaction() as db:
                return db.execute(
                    f"UPDATE journal SET state = '{target_state(operation)}', {sets} "
                    f"WHERE event_id = ? AND owner = ? AND state IN ({_states(operation)})",
                    params,
                ).rowcount
        except sqlite3.Error as err:
            raise self._fail(doing, err) from err

    def watch(self, wake: Callable[[], None]) -> None:
        """Do nothing: one process appends and claims, so it never needs waking from outside."""

    async def renew(self, owner: str, event_ids: Sequence[str], lease_until: float) -> int:
        """Extend ``owner``'s claims on ``event_ids``; return how many it still holds."""
        try:
            with self.store.transaction() as db:
                return db.executemany(
                    "UPDATE journal SET lease_until = ? "
                    "WHERE event_id = ? AND owner = ? AND state = 'claimed'",
                    [(lease_until, event_id, owner) for event_id in event_ids],
                ).rowcount
        except sqlite3.Error as err:
            raise self._fail("renew journal claims", err) from err

    async def finish(self, owner: str, event_ids: Sequence[str], now: float) -> int:
        """Mark ``owner``'s claimed entries done; return how many were."""
        try:
            with self.store.transaction() as db:
                return _finish(db, owner, event_ids, now)
        except sqlite3.Error as err:
            raise self._fail("mark journal entries done", err) from err

    async def fail(self, owner: str, event_id: str, error: str, retry_at: float) -> bool:
        """Put ``owner``'s claimed entry back, due again at ``retry_at``."""
        sets = "next_attempt_at = ?, last_error = ?, owner = NULL, lease_until = NULL"
        params = (retry_at, error, event_id, owner)
        return self._owned_update("fail", sets, params, "record a failed event") == 1

    async def park(self, owner: str, event_id: str, error: str, now: float) -> bool:
        """Park ``owner``'s claimed entry as dead."""
        sets = "finished_at = ?, last_error = ?, owner = NULL, lease_until = NULL"
        return self._owned_update("park", sets, (now, error, event_id, owner), "park an event") == 1

    async def release(self, owner: str) -> int:
        """Return ``owner``'s unfinished claims to pending."""
        return self._reset("release", "owner = ?", (owner,))

    async def recover(self, now: float) -> int:
        """Return every claim to pending (one process: a claim found at open is a dead one's)."""
        return self._reset("recover", "1", ())

    def _reset(self, operation: str, where: str, params: tuple[Any, ...]) -> int:
        try:
            with self.store.transaction() as db:
                return db.execute(
                    f"UPDATE journal SET state = '{target_state(operation)}', owner = NULL, "
                    f"lease_until = NULL WHERE state IN ({_states(operation)}) AND {where}",
                    params,
                ).rowcount
        except sqlite3.Error as err:
            raise self._fail("release journal claims", err) from err

    async def get(self, event_id: str) -> JournalEntry | None:
        """Return the entry of ``event_id``, or None."""
        row = self.store.db.execute(
            "SELECT * FROM journal WHERE event_id = ?", (event_id,)
        ).fetchone()
        return entry_from_row(row) if row is not None else None

    async def dead(self, limit: int = 1000) -> list[JournalEntry]:
        """Return the dead entries, oldest first."""
        rows = self.store.db.execute(
            "SELECT * FROM journal WHERE state = 'dead' ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [entry_from_row(row) for row in rows]

    async def retry(self, event_ids: Sequence[str] | None, now: float) -> list[str]:
        """Make the given dead entries (every one with None) pending again; return their ids."""
        where, params = "", [now]
        if event_ids is not None:
            where = f" AND event_id IN ({', '.join('?' * len(event_ids))})"
            params.extend(event_ids)  # type: ignore[arg-type]
        try:
            with self.store.transaction() as db:
                rows = db.execute(
                    f"UPDATE journal SET state = '{target_state('retry')}', attempts = 0, "
                    "next_attempt_at = ?, finished_at = NULL "
                    f"WHERE state IN ({_states('retry')}){where} RETURNING event_id",
                    params,
                ).fetchall()
        except sqlite3.Error as err:
            raise self._fail("retry dead events", err) from err
        return sorted(row["event_id"] for row in rows)

    async def stats(self, now: float) -> JournalStats:
        """Return the backlog, its oldest entry's time, the dead count and the next due time."""
        db = self.store.db
        backlog, oldest_seq = db.execute(
            "SELECT count(*), min(seq) FROM journal WHERE state IN ('claimed', 'pending')"
        ).fetchone()
        oldest = None
        if oldest_seq is not None:
            (oldest,) = db.execute(
                "SELECT created_at FROM journal WHERE seq = ?", (oldest_seq,)
            ).fetchone()
        (dead,) = db.execute("SELECT count(*) FROM journal WHERE state = 'dead'").fetchone()
        (due,) = db.execute(
            "SELECT min(next_attempt_at) FROM journal WHERE state = 'pending'"
        ).fetchone()
        return JournalStats(backlog=backlog, oldest_at=oldest, dead=dead, next_due_at=due)

    async def prune(self, before: float) -> int:
        """Delete done entries finished before ``before``; return how many."""
        try:
            with self.store.transaction() as db:
                return db.execute(
                    "DELETE FROM journal WHERE state = 'done' AND finished_at < ?", (before,)
                ).rowcount
        except sqlite3.Error as err:
            raise self._fail("prune the event journal", err) from err
