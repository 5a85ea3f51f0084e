"""``intentd dead-letters list`` and ``retry`` read and change the outbox without a daemon."""

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from common.errors import DeliveryError
from common.intents import NotificationIntent
from supervisor.cli.main import main
from supervisor.config import OutboxConfig
from supervisor.delivery.outbox import Outbox
from supervisor.store.outbox import SqliteOutbox
from supervisor.store.sqlite import Store
from tests.fakes.clock import FakeClock


class Refusing:
    """A durable channel that refuses every post, as Slack does for an unknown channel."""

    durable = True

    def split(self, text: str) -> list[str]:
        return [text]

    async def post(self, target: str, text: str, key: str, *, check_since: float | None) -> str:
        raise DeliveryError(
            "chat.postMessage: Slack refused the request (channel_not_found)", permanent=True
        )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: var/intentd.db}\n")
    return path


async def _dead(config: Path, capsys: pytest.CaptureFixture[str], count: int) -> list[int]:
    store = Store(config.parent / "var" / "intentd.db")
    outbox = Outbox(
        SqliteOutbox(store), {"slack": Refusing()}, FakeClock(), OutboxConfig(per_channel_rate=0)
    )
    ids = []
    for n in range(count):
        intent = NotificationIntent(message=f"note {n}", channel="slack:#gone")
        ids.append(await outbox.enqueue("slack", "#gone", intent.message, intent))
    worker = asyncio.create_task(outbox.run())
    async with asyncio.timeout(5):
        await outbox.wait_idle()  # one attempt each: a permanent error
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    store.close()
    capsys.readouterr()
    return ids


def test_dead_letters_list_prints_each_with_its_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = asyncio.run(_dead(config, capsys, 2))
    assert main(["dead-letters", "list", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["channel"], r["attempts"], r["text"]) for r in rows] == [
        (first, "slack:#gone", 1, "note 0"),
        (first + 1, "slack:#gone", 1, "note 1"),
    ]
    assert "channel_not_found" in rows[0]["error"]


def test_dead_letters_list_without_a_store_says_there_are_none(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dead-letters", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no dead letters\n"


def test_retry_one_puts_only_that_one_back_in_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = asyncio.run(_dead(config, capsys, 2))
    assert main(["dead-letters", "retry", str(second), "--config", str(config)]) == 0
    store = Store(config.parent / "var" / "intentd.db")
    states = store.db.execute("SELECT id, state, attempts FROM outbox ORDER BY id").fetchall()
    assert [tuple(row) for row in states] == [(first, "dead", 1), (second, "pending", 0)]
    assert capsys.readouterr().out == f"re-queued 1 dead letter(s): [{second}]\n"


def test_retry_all_puts_every_dead_letter_back(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = asyncio.run(_dead(config, capsys, 3))
    assert main(["dead-letters", "retry", "--all", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"re-queued 3 dead letter(s): {ids}\n"


def test_retry_of_an_unknown_id_is_a_clear_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_dead(config, capsys, 1))
    assert main(["dead-letters", "retry", "99", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "intentd: no dead letter has id 99; list them with 'intentd dead-letters list'\n"
    )
    assert captured.out == ""  # nothing was re-queued, and only the error says so
