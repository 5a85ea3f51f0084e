"""``intentd events list|show|retry`` read and change the journal without a daemon."""

import asyncio
import json
from pathlib import Path

import pytest

from supervisor.cli.main import main
from supervisor.store.journal import EntryState, NewEvent, SqliteJournal
from supervisor.store.sqlite import Store

NOW = 1_800_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: var/intentd.db}\n")
    return path


def _park(config: Path, *event_ids: str) -> None:
    async def park() -> None:
        store = Store(config.parent / "var" / "intentd.db")
        journal = SqliteJournal(store)
        await journal.append(
            [
                NewEvent(event_id, "ORDER_PLACED", {"order": n}, "http", "http", NOW + n)
                for n, event_id in enumerate(event_ids)
            ]
        )
        await journal.claim("old", 10, 60, NOW + 10)
        for event_id in event_ids:
            await journal.park("old", event_id, "1 handler or intent failure(s)", NOW + 10)
        store.close()

    asyncio.run(park())


def _state(config: Path, event_id: str) -> EntryState:
    store = Store(config.parent / "var" / "intentd.db")
    entry = asyncio.run(SqliteJournal(store).get(event_id))
    store.close()
    assert entry is not None
    return entry.state


def test_list_prints_each_dead_event_with_its_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _park(config, "evt-a", "evt-b")
    assert main(["events", "list", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {
            "event_id": "evt-a",
            "event_type": "ORDER_PLACED",
            "source": "http",
            "attempts": 1,
            "created": "2027-01-15T08:00:00Z",
            "error": "1 handler or intent failure(s)",
        },
        {
            "event_id": "evt-b",
            "event_type": "ORDER_PLACED",
            "source": "http",
            "attempts": 1,
            "created": "2027-01-15T08:00:01Z",
            "error": "1 handler or intent failure(s)",
        },
    ]


def test_list_without_a_store_says_there_are_none(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no dead events\n"


def test_show_prints_the_entry_with_its_data(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _park(config, "evt-a")
    assert main(["events", "show", "evt-a", "--config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["data"], shown["attempts"]) == ("dead", {"order": 0}, 1)


def test_show_of_an_unknown_event_is_one_clear_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _park(config, "evt-a")
    assert main(["events", "show", "evt-zz", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        "intentd: the journal has no event 'evt-zz'; list dead events with 'intentd events "
        "list' (done events are kept for journal.retention seconds)\n"
    )


def test_retry_one_makes_only_that_one_pending(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _park(config, "evt-a", "evt-b")
    assert main(["events", "retry", "evt-b", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "re-queued 1 dead event(s): evt-b\n"
    assert (_state(config, "evt-a"), _state(config, "evt-b")) == (
        EntryState.DEAD,
        EntryState.PENDING,
    )


def test_retry_all_and_an_unknown_id(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _park(config, "evt-a", "evt-b")
    assert main(["events", "retry", "evt-a", "evt-x", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "intentd: no dead event has id evt-x; list them with 'intentd events list'\n"
    )
    assert main(["events", "retry", "--all", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "re-queued 1 dead event(s): evt-b\n"
