"""``intentd timers list`` and ``intentd audit tail`` read the store without a daemon."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.audit import AuditRecord
from common.message_bus import MessageBus
from supervisor.cli.main import main
from supervisor.scheduling.timers import TimerService
from supervisor.store.audit import SqliteAudit
from supervisor.store.kv import KVStore, SqliteKV
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import FakeClock


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage: {path: var/intentd.db}\n")
    return path


def _fill(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    store = Store(config.parent / "var" / "intentd.db")
    service = TimerService(SqliteTimers(store), MessageBus(), FakeClock(), arms=False)

    async def create() -> list[str]:
        ids = [
            await service.create(duration=300, label="tea", channel_id="C1", user_id="U1"),
            await service.create(duration=60, label="eggs"),
        ]
        await service.cancel(ids[1])
        return ids

    ids = asyncio.run(create())
    sink, records = SqliteAudit(store), []
    for i, action in enumerate(["timer_expired", "login", "timer_expired"]):
        records.append(
            AuditRecord(
                action,
                {"n": i},
                "U1",
                "timer",
                f"int-{i}",
                None,
                datetime(2027, 1, 15, 8, i, tzinfo=UTC),
            )
        )
    asyncio.run(sink.append_many(records))
    store.close()
    capsys.readouterr()  # drop the log lines written while filling
    return ids


def test_timers_list_prints_pending_timers(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tea, _ = _fill(config, capsys)
    assert main(["timers", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"{tea}  pending    due 2027-01-15T08:05:00Z  'tea'  channel=C1 user=U1\n"
    )


def test_timers_list_all_as_json_includes_cancelled_ones(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tea, eggs = _fill(config, capsys)
    assert main(["timers", "list", "--all", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["timer_id"], r["state"]) for r in rows] == [(eggs, "cancelled"), (tea, "pending")]


def test_audit_tail_filters_by_action_and_limits(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(config, capsys)
    assert (
        main(
            [
                "audit",
                "tail",
                "-n",
                "1",
                "--action",
                "timer_expired",
                "--json",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["intent_id"], row["details"]) == ("int-2", {"n": 2})


def test_audit_tail_prints_readable_lines(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config, capsys)
    assert main(["audit", "tail", "-n", "1", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        '2027-01-15T08:02:00Z  timer_expired  role=timer user=U1  {"n": 2}\n'
    )


def test_commands_without_a_store_say_there_is_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timers", "list", "--config", str(config)]) == 0
    assert main(["audit", "tail", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no pending timers\nno audit records\n"
    assert not (config.parent / "var").exists()


def test_audit_tail_refuses_a_negative_count(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "tail", "-n", "-1", "--config", str(config)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(
        "argument -n: -n must be a whole number of records, 0 or more; got '-1'\n"
    )


def _fill_kv(config: Path) -> None:
    store = Store(config.parent / "var" / "intentd.db")
    kv = KVStore(SqliteKV(store))

    async def fill() -> None:
        await kv.for_role("standup").set("notes", ["db upgrade", "on-call"])
        await kv.for_role("standup").set("last_run", 1.5)
        await kv.for_role("other").set("secret", "not shown")

    asyncio.run(fill())
    store.close()


def test_kv_prints_one_roles_keys_with_their_json_values(config, capsys):
    _fill_kv(config)
    assert main(["kv", "standup", "--config", str(config)]) == 0
    assert capsys.readouterr().out == ('last_run  1.5\nnotes  ["db upgrade", "on-call"]\n')


def test_kv_prints_one_keys_value(config, capsys):
    _fill_kv(config)
    assert main(["kv", "standup", "notes", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == ["db upgrade", "on-call"]


def test_kv_names_the_keys_when_the_key_is_missing(config, capsys):
    _fill_kv(config)
    assert main(["kv", "standup", "note", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        "intentd: role 'standup' has no key 'note'; its keys are ['last_run', 'notes']\n"
    )


def test_kv_of_a_role_without_keys_or_without_a_store_says_so(config, capsys):
    assert main(["kv", "standup", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "role 'standup' has no keys\n"
