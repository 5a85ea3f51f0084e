"""The daemon on ``storage.url``: events journaled, handled and audited in PostgreSQL, chained
events, timers and the outbox on the shared store."""

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from supervisor.config import Config
from tests.fakes.slack import FakeSlack
from tests.supervisor.http_daemon import TOKEN, running_daemon, write_role
from tests.supervisor.test_journal_daemon import CHAIN_ROLE, settled


def make_config(tmp_path: Path, url: str, **sections: object) -> Config:
    roles = tmp_path / "roles"
    if not roles.exists():
        write_role(roles, "orders", CHAIN_ROLE)
    return Config.model_validate(
        {
            "storage": {"url": url},
            "roles": {"directory": str(roles)},
            "http": {"port": 0, "token": TOKEN},
            "cluster": {"instance": "node-a"},
            **sections,
        }
    )


async def fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_an_event_posted_to_a_daemon_on_postgres_is_journaled_handled_and_audited(
    tmp_path: Path, postgres_url: str
) -> None:
    async with running_daemon(make_config(tmp_path, postgres_url)) as daemon:
        for order in (1, 2):
            async with daemon.session.post(
                daemon.url("/events/ORDER_PLACED"), json={"order": order}
            ) as response:
                assert response.status == 202
        await settled(daemon.supervisor)
        assert daemon.supervisor.store is None  # nothing of this run is in SQLite
    audited = await fetch(
        postgres_url, "SELECT action, details::text FROM audit_log ORDER BY action, details::text"
    )
    journal = await fetch(postgres_url, "SELECT event_type, state FROM journal ORDER BY seq")
    assert audited == [
        ("checked", '{"order": 1, "attempt": 1}'),
        ("checked", '{"order": 2, "attempt": 1}'),
        ("placed", '{"order": 1}'),
        ("placed", '{"order": 2}'),
    ]
    assert sorted(journal) == [("ORDER_CHECKED", "done")] * 2 + [("ORDER_PLACED", "done")] * 2


async def test_a_notification_on_postgres_goes_through_the_shared_outbox(
    tmp_path: Path, postgres_url: str
) -> None:
    async with FakeSlack(channels={"C0GEN": "general"}) as slack:
        slack_config = {
            "enabled": True,
            "bot_token": "xoxb-test",
            "mode": "none",
            "base_url": slack.base_url,
        }
        config = make_config(tmp_path, postgres_url, slack=slack_config)
        async with running_daemon(config) as daemon:
            async with daemon.session.post(
                daemon.url("/events/ORDER_PLACED"), json={"order": 7, "post": True}
            ) as response:
                assert response.status == 202
            await settled(daemon.supervisor)
        posts = [post.text for post in slack.posts]
    assert posts == ["order 7"]
    assert await fetch(postgres_url, "SELECT lane, state FROM outbox") == [
        ("slack:#general", "delivered")
    ]


async def answer(daemon: Any, path: str) -> tuple[int, dict[str, Any]]:
    async with daemon.session.get(daemon.url(path)) as response:
        return response.status, await response.json()


async def wait_for(check: Any) -> None:
    async with asyncio.timeout(10):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)  # the heartbeat runs on real time, in its own task


async def set_connections(url: str, allowed: bool) -> None:
    """Let sessions into the test's database, or refuse them and end those it has."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allowed).lower()}")
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def test_readyz_is_503_while_the_database_is_away_and_ready_again_when_it_returns(
    tmp_path: Path, postgres_url: str
) -> None:
    config = make_config(tmp_path, postgres_url, cluster={"instance": "node-a", "heartbeat": 0.05})
    async with running_daemon(config) as daemon:
        await wait_for(lambda: ready_is(daemon, 200))
        await set_connections(postgres_url, False)
        try:
            await wait_for(lambda: ready_is(daemon, 503))
            _, report = await answer(daemon, "/readyz")
        finally:
            await set_connections(postgres_url, True)
        await wait_for(lambda: ready_is(daemon, 200))
        async with daemon.session.post(
            daemon.url("/events/ORDER_PLACED"), json={"order": 9}
        ) as response:
            assert response.status == 202
        await settled(daemon.supervisor)
    assert report["ready"] is False and "does not answer" in report["checks"]["store"]
    assert await fetch(postgres_url, "SELECT details::text FROM audit_log WHERE action = 'placed'")
    assert [
        row[0] for row in await fetch(postgres_url, "SELECT instance FROM cluster_instances")
    ] == ["node-a"]


async def test_metrics_and_status_answer_while_the_database_is_away(
    tmp_path: Path, postgres_url: str
) -> None:
    config = make_config(tmp_path, postgres_url, cluster={"instance": "node-a", "heartbeat": 0.05})
    async with running_daemon(config) as daemon:
        await wait_for(lambda: ready_is(daemon, 200))
        await set_connections(postgres_url, False)
        try:
            await wait_for(lambda: ready_is(daemon, 503))
            metrics_status, _ = await answer_text(daemon, "/metrics")
            status_status, status = await answer(daemon, "/status")
        finally:
            await set_connections(postgres_url, True)
    assert (metrics_status, status_status, status["journal_backlog"]) == (200, 200, 0)


async def answer_text(daemon: Any, path: str) -> tuple[int, str]:
    async with daemon.session.get(daemon.url(path)) as response:
        return response.status, await response.text()


async def ready_is(daemon: Any, status: int) -> bool:
    return (await answer(daemon, "/readyz"))[0] == status


async def test_status_lists_the_instances_seen_recently_with_their_claims(
    tmp_path: Path, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    config = make_config(tmp_path, postgres_url, cluster={"instance": "node-a", "heartbeat": 0.05})
    async with running_daemon(config) as daemon:
        await conn.execute(  # another instance, alive, holding one timer claim
            "INSERT INTO cluster_instances (instance, started_at, seen_at) "
            "VALUES ('node-b', extract(epoch FROM now()) - 60, extract(epoch FROM now()) + 3600)"
        )
        await conn.execute(  # and one that stopped long ago
            "INSERT INTO cluster_instances (instance, started_at, seen_at) "
            "VALUES ('node-old', 1, 2)"
        )
        await conn.execute(
            "INSERT INTO timers (timer_id, due_at, created_at, claimed_by, lease_until) "
            "VALUES ('tmr-b', 1, 1, 'node-b', extract(epoch FROM now()) + 3600)"
        )

        async def both_listed() -> bool:
            _, status = await answer(daemon, "/status")
            return len(status["instances"] or []) == 2

        await wait_for(both_listed)
        _, status = await answer(daemon, "/status")
    await conn.close()
    listed = {i["instance"]: (i["journal_claims"], i["timer_claims"]) for i in status["instances"]}
    assert listed == {"node-a": (0, 0), "node-b": (0, 1)}
