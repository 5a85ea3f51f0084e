"""Batched audit row: 100 AuditIntents in one ``process_intents`` call, on the durable store.

Anchor, in the same rounds: plain sqlite3 writing the same rows (details as JSON, the time as
ISO text) into the same audit table, with the same pragmas, 100 rows per transaction.
Run: .venv/bin/python bench/audit_batch.py [batches] [rounds]
"""

import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import structlog
from _rounds import interleave, median, median_ratio, row

from common.intent_processor import IntentProcessor
from common.intents import AuditIntent
from supervisor.store.audit import DurableAuditSink, SqliteAudit
from supervisor.store.sqlite import Store

BATCH = 100
INSERT = (
    "INSERT OR IGNORE INTO audit_log "
    "(created_at, action, details, user_id, role, intent_id, parent_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def intents(batches: int) -> list[list[AuditIntent]]:
    return [
        [
            AuditIntent(
                "order_seen", {"order": n, "note": "tea" * 10}, user_id="U1", parent_id="e1"
            )
            for n in range(BATCH)
        ]
        for _ in range(batches)
    ]


async def through_processor(folder: Path, batches: int) -> float:
    """Rows/s through IntentProcessor.process_intents onto the DurableAuditSink."""
    store = Store(folder / f"intentd-{time.perf_counter_ns()}.db")
    processor = IntentProcessor(audit_sink=DurableAuditSink(SqliteAudit(store)))
    work = intents(batches)
    started = time.perf_counter()
    for batch in work:
        result = await processor.process_intents(batch, role="bench")
        assert result["processed"] == BATCH, result
    elapsed = time.perf_counter() - started
    store.close()
    return batches * BATCH / elapsed


async def plain_sqlite(folder: Path, batches: int) -> float:
    """Rows/s for plain sqlite3 writing the same rows, one transaction per 100."""
    path = folder / f"plain-{time.perf_counter_ns()}.db"
    SqliteAudit(Store(path)).store.close()  # the same table, indexes and triggers
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    work = intents(batches)
    started = time.perf_counter()
    for batch in work:
        rows = [
            (
                i.created_at.isoformat(),
                i.action,
                json.dumps(i.details),
                i.user_id,
                "bench",
                i.intent_id,
                i.parent_id,
            )
            for i in batch
        ]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return batches * BATCH / elapsed


async def main(batches: int, rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = await interleave(
            rounds,
            {
                "intentd": lambda: through_processor(folder, batches),
                "sqlite3": lambda: plain_sqlite(folder, batches),
            },
        )
    ratio = median_ratio(rates["intentd"], rates["sqlite3"])
    row(
        f"{BATCH} AuditIntents in one process_intents call",
        f"{median(rates['intentd']):,.0f} rows/s (one commit per call)",
        f"sqlite3, {BATCH} rows per transaction: {median(rates['sqlite3']):,.0f} rows/s",
        ratio,
        ">= 0.8x",
        ratio >= 0.8,
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 200,
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
