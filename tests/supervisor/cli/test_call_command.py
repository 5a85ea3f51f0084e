"""``intentd call ROLE.TOOL key=value``: one tool, its intent carried out, no model, no daemon."""

import io
import json
from pathlib import Path

import pytest

from common.errors import IntentdError
from supervisor.cli.call import call_tool, parse_arguments
from supervisor.cli.main import main
from supervisor.config import load_config
from supervisor.store.sqlite import Store
from supervisor.store.timers import query_timers
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock

ROLES = Path(__file__).resolve().parents[3] / "roles"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"roles:\n  directory: {ROLES}\nstorage:\n  path: intentd.db\nhttp:\n  port: 0\n"
    )
    return path


def stored_timers(tmp_path: Path) -> list[tuple[str, str | None, str | None]]:
    store = Store(tmp_path / "intentd.db")
    try:
        return [(t.label, t.channel_id, t.user_id) for t in query_timers(store.db)]
    finally:
        store.close()


def test_call_sets_a_timer_in_the_store_and_prints_what_happened(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["call", "timer.set_timer", "duration=20m", "label=check the deploy",
            "--channel", "#ops", "--user", "U1", "--config", str(config_file)]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("Timer tmr-")
    assert stored_timers(tmp_path) == [("check the deploy", "#ops", "U1")]


def test_call_with_json_prints_the_whole_reply(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "timer.set_timer", "duration=90", "--json",
                 "--config", str(config_file)]) == 0  # fmt: skip
    reply = json.loads(capsys.readouterr().out)
    assert reply["success"] is True and reply["result"]["timer_id"].startswith("tmr-")


def test_a_failing_intent_exits_1_with_its_error(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["call", "timer.cancel_timer", "timer_id=tmr-nope", "--config", str(config_file)]
    assert main(argv) == 1
    assert "no timer has id 'tmr-nope'" in capsys.readouterr().out


def test_an_unknown_tool_names_the_tools_there_are(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "timer.snooze", "--config", str(config_file)]) == 1
    assert capsys.readouterr().err == (
        "intentd: role 'timer' has no tool 'snooze'; its tools are "
        "['cancel_timer', 'list_timers', 'set_timer']\n"
    )


def test_an_unknown_role_names_the_roles_there_are(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "weather.forecast", "--config", str(config_file)]) == 1
    assert capsys.readouterr().err.startswith(
        "intentd: no loaded role is named 'weather'; the roles are ["
    )


def test_a_target_without_a_dot_is_refused(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "timer", "--config", str(config_file)]) == 1
    assert capsys.readouterr().err == (
        "intentd: call target 'timer' is not ROLE.TOOL; write e.g. timer.set_timer\n"
    )


def test_values_are_text_where_the_tool_wants_text_and_json_elsewhere() -> None:
    schema = {"properties": {"duration": {"type": "string"}}}
    pairs = ["duration=5", "count=5", "on=true", "tags=[1, 2]", "name=tea", "empty="]
    assert parse_arguments(pairs, schema) == {
        "duration": "5",
        "count": 5,
        "on": True,
        "tags": [1, 2],
        "name": "tea",
        "empty": "",
    }


def test_a_pair_without_equals_is_refused() -> None:
    with pytest.raises(IntentdError, match="tool argument 'duration' is not key=value"):
        parse_arguments(["duration"], {})


async def test_a_running_daemon_arms_a_timer_set_by_call_on_its_next_fast_heartbeat(
    config_file: Path,
) -> None:
    clock, out = FakeClock(), io.StringIO()
    config = load_config(config_file)
    supervisor = Supervisor(config=config, clock=clock, stdout=out)
    async with supervisor.running():
        origin = {"channel_id": "console:ops", "user_id": None}
        await call_tool(config, "timer.set_timer", ["duration=60s", "label=tea"], origin, clock)
        await clock.advance(5)  # the fast heartbeat: the timer role asks for a store check
        await clock.advance(60)
        await supervisor.message_bus.drain()
    assert "ops Timer expired: tea" in out.getvalue()
