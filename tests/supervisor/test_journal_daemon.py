"""The journal inside the daemon: 202 after the commit, idempotency keys, the backlog bound,
replays that keep one copy of every effect, chains, and events parked dead."""

import asyncio
import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import Config
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack
from tests.supervisor.http_daemon import TOKEN, running_daemon, write_role

CHAIN_ROLE = '''
"""Reacts to ORDER_PLACED (audit, a Slack post, ORDER_CHECKED next), ORDER_CHECKED and BOOM."""
from common.intents import AuditIntent, EventIntent, NotificationIntent

ROLE_CONFIG = {"name": "orders", "version": "1.0.0", "description": "Test role",
               "llm_type": "WEAK"}


def handle_placed(event_data, context):
    intents = [AuditIntent(action="placed", details={"order": event_data["order"]}),
               EventIntent(event_type="ORDER_CHECKED", data={"order": event_data["order"]})]
    if event_data.get("post"):
        intents.append(NotificationIntent(message=f"order {event_data['order']}",
                                          channel="slack:#general"))
    return intents


def handle_checked(event_data, context):
    return [AuditIntent(action="checked", details={"order": event_data["order"],
                                                   "attempt": context.attempt})]


def handle_boom(event_data, context):
    raise RuntimeError("boom")


def register_role():
    return {"config": ROLE_CONFIG, "tools": [], "intents": {},
            "event_handlers": {"ORDER_PLACED": handle_placed, "ORDER_CHECKED": handle_checked,
                               "BOOM": handle_boom}}
'''


def make_config(tmp_path: Path, **sections: Any) -> Config:
    roles = tmp_path / "roles"
    if not roles.exists():
        write_role(roles, "orders", CHAIN_ROLE)
    return Config.model_validate(
        {
            "storage": {"path": str(tmp_path / "intentd.db")},
            "roles": {"directory": str(roles)},
            "http": {"port": 0, "token": TOKEN},
            **sections,
        }
    )


async def settled(supervisor: Supervisor) -> None:
    """Wait until every journaled event, chained ones included, is handled or waiting."""
    assert supervisor.intake is not None
    async with asyncio.timeout(5):
        await supervisor.intake.drain()
        await supervisor.message_bus.drain()
        await supervisor.intake.drain()
        if supervisor.outbox is not None:
            await supervisor.outbox.wait_idle()


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "intentd.db") as db:
        return db.execute(sql).fetchall()


def lose_done_marks(tmp_path: Path, event_type: str) -> None:
    """Leave ``event_type``'s entries as a daemon killed before its done mark would."""
    with sqlite3.connect(tmp_path / "intentd.db") as db:
        db.execute(
            "UPDATE journal SET state = 'claimed', owner = 'killed', finished_at = NULL "
            "WHERE event_type = ?",
            (event_type,),
        )


async def test_202_is_answered_once_the_event_is_committed(tmp_path: Path) -> None:
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.post(
            daemon.url("/events/ORDER_PLACED"), json={"order": 1}
        ) as response:
            answer = await response.json()
            stored = rows(tmp_path, "SELECT event_id, event_type, source FROM journal")
        await settled(daemon.supervisor)
    assert response.status == 202
    assert stored[0] == (answer["event_id"], "ORDER_PLACED", "http")


async def test_a_repeated_idempotency_key_gets_the_first_answer_and_stores_nothing(
    tmp_path: Path,
) -> None:
    async with running_daemon(make_config(tmp_path)) as daemon:
        answers = []
        for order, key in [(1, "k-1"), (2, "k-1"), (3, "k-2")]:
            async with daemon.session.post(
                daemon.url("/events/ORDER_PLACED"),
                json={"order": order},
                headers={"Idempotency-Key": key},
            ) as response:
                answers.append(
                    (
                        response.status,
                        await response.json(),
                        response.headers.get("Idempotent-Replayed"),
                    )
                )
        await settled(daemon.supervisor)
    assert answers[1] == (202, answers[0][1], "true")
    assert (answers[0][2], answers[2][2]) == (None, None)
    assert answers[2][1]["event_id"] != answers[0][1]["event_id"]
    assert rows(tmp_path, "SELECT details FROM audit_log WHERE action = 'placed'") == [
        ('{"order": 1}',),
        ('{"order": 3}',),
    ]


async def test_a_malformed_idempotency_key_is_400_and_stores_nothing(tmp_path: Path) -> None:
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.post(
            daemon.url("/events/ORDER_PLACED"),
            json={"order": 1},
            headers={"Idempotency-Key": "x" * 256},
        ) as response:
            answer = (response.status, await response.json())
    assert answer == (
        400,
        {
            "error": "header Idempotency-Key must be 1 to 255 printable ASCII "
            "characters; send a UUID, for example"
        },
    )
    assert rows(tmp_path, "SELECT count(*) FROM journal") == [(0,)]


async def test_a_full_backlog_is_503_with_retry_after_and_stores_nothing(tmp_path: Path) -> None:
    async with running_daemon(make_config(tmp_path, journal={"max_backlog": 1})) as daemon:
        release = asyncio.Event()

        async def held(data: Any, context: Any) -> list[Any]:
            await release.wait()
            return []

        daemon.supervisor.message_bus.handler_timeout = 60
        daemon.supervisor.message_bus.subscribe("held", "HELD", held)
        async with daemon.session.post(daemon.url("/events/HELD"), json={}) as first:
            assert first.status == 202
        async with daemon.session.post(
            daemon.url("/events/ORDER_PLACED"), json={"order": 9}
        ) as refused:
            answer = (refused.status, refused.headers.get("Retry-After"), await refused.json())
        async with daemon.session.get(daemon.url("/status")) as response:
            status = await response.json()
        release.set()
        await settled(daemon.supervisor)
    assert answer == (
        503,
        "1",
        {
            "error": (
                "the event journal holds 1 unfinished events, its journal.max_backlog; event "
                "'ORDER_PLACED' was not accepted; retry later or raise journal.max_backlog"
            )
        },
    )
    assert status["journal_backlog"] == 1 and status["journal_oldest_age_s"] >= 0
    assert rows(tmp_path, "SELECT event_type FROM journal") == [("HELD",)]


@pytest.fixture
async def slack() -> Any:
    async with FakeSlack(channels={"C0GEN": "general"}) as fake:
        yield fake


async def test_a_replayed_event_keeps_its_intent_ids_so_audit_and_outbox_keep_one_copy(
    tmp_path: Path, slack: FakeSlack
) -> None:
    slack_config = {
        "enabled": True,
        "bot_token": "xoxb-test",
        "mode": "none",
        "base_url": slack.base_url,
    }
    config = make_config(tmp_path, slack=slack_config)
    async with running_daemon(config) as daemon:
        async with daemon.session.post(
            daemon.url("/events/ORDER_PLACED"), json={"order": 7, "post": True}
        ) as response:
            event_id = (await response.json())["event_id"]
        await settled(daemon.supervisor)
    lose_done_marks(tmp_path, "ORDER_PLACED")
    first_ids = rows(tmp_path, "SELECT intent_id FROM audit_log ORDER BY seq")
    async with running_daemon(config) as daemon:
        await settled(daemon.supervisor)
        replayed = daemon.supervisor.intake.replayed  # type: ignore[union-attr]
    assert replayed == 1
    assert rows(tmp_path, f"SELECT state, attempts FROM journal WHERE event_id = '{event_id}'") == [
        ("done", 2)
    ]
    assert (
        rows(tmp_path, "SELECT intent_id FROM audit_log ORDER BY seq")
        == first_ids
        == [
            (f"{event_id}:orders:0",),
            (f"{rows(tmp_path, 'SELECT event_id FROM journal WHERE seq = 2')[0][0]}:orders:0",),
        ]
    )
    assert rows(tmp_path, "SELECT key FROM outbox") == [(f"{event_id}:orders:2",)]
    assert [post.text for post in slack.posts] == ["order 7"]


async def test_a_chain_interrupted_between_its_two_events_finishes_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, supervisor={"shutdown_timeout": 0.2})
    async with running_daemon(config) as daemon:
        daemon.supervisor.message_bus.subscribe(
            "test", "ORDER_CHECKED", _never_finishes
        )  # the second event stays open
        daemon.supervisor.message_bus.handler_timeout = 60
        async with daemon.session.post(daemon.url("/events/ORDER_PLACED"), json={"order": 5}):
            pass
        async with asyncio.timeout(5):
            while rows(tmp_path, "SELECT count(*) FROM journal") != [(2,)]:  # noqa: ASYNC110
                await asyncio.sleep(0)
        daemon.supervisor.intake.close()  # type: ignore[union-attr]
    lose_done_marks(tmp_path, "ORDER_PLACED")  # and the first event's done mark is lost too
    async with running_daemon(config) as daemon:
        await settled(daemon.supervisor)
    assert rows(tmp_path, "SELECT event_type, state, attempts FROM journal ORDER BY seq") == [
        ("ORDER_PLACED", "done", 2),
        ("ORDER_CHECKED", "done", 2),
    ]
    # the second delivery of ORDER_CHECKED asked for its audit record again, under the same id
    assert rows(tmp_path, "SELECT action, details FROM audit_log ORDER BY seq") == [
        ("placed", '{"order": 5}'),
        ("checked", '{"order": 5, "attempt": 1}'),
    ]


async def _never_finishes(data: Any, context: Any) -> list[Any]:
    await asyncio.Event().wait()
    return []


async def test_an_event_that_keeps_failing_is_parked_dead_with_one_admin_alert(
    tmp_path: Path,
) -> None:
    clock, out = FakeClock(), io.StringIO()
    config = make_config(tmp_path, journal={"max_attempts": 3, "retry_initial": 1, "retry_max": 4})
    async with running_daemon(config, clock=clock, stdout=out) as daemon:
        async with daemon.session.post(daemon.url("/events/BOOM"), json={}) as response:
            event_id = (await response.json())["event_id"]
        for _ in range(3):
            await settled(daemon.supervisor)
            await clock.advance(4)
        await settled(daemon.supervisor)
        async with daemon.session.get(daemon.url("/metrics")) as metrics:
            text = await metrics.text()
    assert rows(tmp_path, "SELECT state, attempts FROM journal") == [("dead", 3)]
    alerts = [line for line in out.getvalue().splitlines() if "parked" in line]
    assert len(alerts) == 1 and f"event BOOM {event_id} failed 3 times" in alerts[0]
    assert "intentd_journal_dead_events 1.0" in text
    assert "intentd_journal_backlog 0.0" in text
