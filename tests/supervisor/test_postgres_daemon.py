"""The daemon on ``storage.url``: events journaled, handled and audited in PostgreSQL, chained
events, timers and the outbox on the shared store."""

from pathlib import Path

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
