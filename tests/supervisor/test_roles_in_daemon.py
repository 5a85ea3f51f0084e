"""A running daemon with role files that are broken, edited, deleted and misbehaving."""

import asyncio
import io
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from common.errors import RoleContractError
from common.message_bus import MessageBus
from llm_provider.role_contract import check_role
from llm_provider.role_registry import RoleRegistry
from llm_provider.role_template import render_role
from llm_provider.tool_runner import run_tool
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock, settle
from tests.role_files import echo_role, make_config, write_role

BROKEN = Path(__file__).resolve().parents[1] / "roles" / "broken"
ROLES = Path(__file__).resolve().parents[2] / "roles"
TICK = 5.0


def lines(out: io.StringIO) -> list[str]:
    return [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]


async def tick(supervisor: Supervisor, clock: FakeClock) -> None:
    """Move to the next fast heartbeat and wait for the roles rescan it starts."""
    await clock.advance(TICK)
    await supervisor.roles_rescanned()


async def ping(supervisor: Supervisor, text: str = "hi") -> None:
    supervisor.message_bus.publish("test", "PING", {"text": text})
    await supervisor.message_bus.drain()


@pytest.fixture
def out():
    return io.StringIO()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def daemon(tmp_path, clock, out):
    def build(**roles):
        return Supervisor(config=make_config(tmp_path, **roles), clock=clock, stdout=out)

    return build


async def test_good_role_serves_next_to_every_broken_file(tmp_path, daemon, out):
    roles = tmp_path / "roles"
    roles.mkdir()
    for path in BROKEN.glob("*.py"):
        shutil.copy(path, roles / path.name)
    write_role(roles, "echo", echo_role("v1"))
    only_warned = sorted(path.stem for path in BROKEN.glob("*.py") if check_role(path)[0])
    async with daemon().running() as supervisor:
        await ping(supervisor)
        assert sorted(supervisor.role_registry.roles) == sorted(["echo", *only_warned])
        assert sorted(p.stem for p in supervisor.role_registry.failed) == sorted(
            path.stem for path in BROKEN.glob("*.py") if path.stem not in only_warned
        )
    announced = [line for line in lines(out) if line.startswith("admin role ")]
    assert len(announced) == len(list(BROKEN.glob("*.py"))) - len(only_warned)
    assert len(only_warned) == 7
    assert "v1 hi" in lines(out)


async def test_failed_file_is_announced_on_the_admin_channel_with_its_problems(
    tmp_path, daemon, out
):
    roles = tmp_path / "roles"
    roles.mkdir()
    shutil.copy(BROKEN / "handler_wrong_arity.py", roles / "handler_wrong_arity.py")
    async with daemon().running() as supervisor:
        await supervisor.message_bus.drain()
    assert lines(out) == [
        "admin role 'handler_wrong_arity' was not loaded; its file fails the role checks: / "
        f"{roles / 'handler_wrong_arity.py'}:6: event handler 'handle_timer_expired' for "
        "'TIMER_EXPIRED' has signature (event_data); it must accept (event_data, context)"
    ]


async def test_strict_daemon_refuses_to_start_with_a_broken_role(tmp_path, daemon):
    write_role(tmp_path / "roles", "echo", echo_role())
    shutil.copy(BROKEN / "returns_list.py", tmp_path / "roles" / "returns_list.py")
    with pytest.raises(RoleContractError, match=r"roles.strict is on and 1 role file\(s\) fail"):
        async with daemon(strict=True).running():
            pass


async def test_edited_role_answers_the_next_event_with_the_new_version(
    tmp_path, daemon, clock, out
):
    write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        await ping(supervisor, "one")
        write_role(tmp_path / "roles", "echo", echo_role("v2", "1.0.1"))
        await tick(supervisor, clock)
        await ping(supervisor, "two")
    assert lines(out) == ["v1 one", "admin role 'echo' was reloaded (version 1.0.1)", "v2 two"]


async def test_broken_edit_keeps_the_last_good_version_and_is_announced(
    tmp_path, daemon, clock, out
):
    path = write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        write_role(tmp_path / "roles", "echo", echo_role("v2").replace("event_data, context", "x"))
        await tick(supervisor, clock)
        await ping(supervisor, "still")
    assert lines(out) == [
        "admin role 'echo' keeps running its last good version; the edited file fails the role "
        f"checks: / {path}:8: event handler 'handle_ping' for 'PING' has signature (x); it must "
        "accept (event_data, context)",
        "v1 still",
    ]


async def test_fixed_file_after_a_broken_edit_goes_live(tmp_path, daemon, clock, out):
    write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        write_role(tmp_path / "roles", "echo", "def register_role(:\n")
        await tick(supervisor, clock)
        write_role(tmp_path / "roles", "echo", echo_role("v3", "1.1.0"))
        await tick(supervisor, clock)
        await ping(supervisor, "fixed")
        assert supervisor.role_registry.failed == {}
    assert lines(out)[-2:] == ["admin role 'echo' was reloaded (version 1.1.0)", "v3 fixed"]


async def test_deleted_role_is_unloaded(tmp_path, daemon, clock, out):
    path = write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        path.unlink()
        await tick(supervisor, clock)
        await ping(supervisor, "gone")
        assert (supervisor.role_registry.roles, supervisor.message_bus.subscriptions("PING")) == (
            {},
            [],
        )
    assert lines(out) == ["admin role 'echo' was unloaded because its file 'echo.py' was deleted"]


async def test_added_role_is_loaded_on_the_next_fast_heartbeat(tmp_path, daemon, clock, out):
    (tmp_path / "roles").mkdir()
    async with daemon().running() as supervisor:
        await ping(supervisor, "nobody")
        write_role(tmp_path / "roles", "echo", echo_role("v1"))
        await tick(supervisor, clock)
        await ping(supervisor, "somebody")
    assert lines(out) == ["v1 somebody"]


async def test_hundred_reloads_leave_one_subscription_and_one_intent_handler(
    tmp_path, daemon, clock
):
    write_role(tmp_path / "roles", "greeter", render_role("greeter"))
    async with daemon().running() as supervisor:
        for n in range(100):
            module = supervisor.role_registry.roles["greeter"].module
            write_role(tmp_path / "roles", "greeter", render_role("greeter") + f"\n# edit {n}\n")
            await tick(supervisor, clock)
            assert supervisor.role_registry.roles["greeter"].module is not module, n
        bus, processor = supervisor.message_bus, supervisor.intent_processor
        assert (
            [sub.role for sub in bus.subscriptions() if sub.role == "greeter"],
            [t.__name__ for t in processor.role_intent_types],
        ) == (["greeter"], ["GreeterNoteIntent"])


async def test_a_timer_survives_a_reload_of_the_role_that_created_it(tmp_path, daemon, clock, out):
    roles = tmp_path / "roles"
    source = (ROLES / "timer.py").read_text()
    write_role(roles, "timer", source)
    async with daemon().running() as supervisor:
        module = supervisor.role_registry.roles["timer"].module
        reply = await run_tool(
            module.set_timer,
            {"duration": "10m", "label": "tea"},
            supervisor.intent_processor,
            "timer",
            {"user_id": "U7"},
        )
        assert reply["success"], reply
        write_role(roles, "timer", source + "\n# edited while a timer is pending\n")
        await tick(supervisor, clock)
        assert supervisor.role_registry.roles["timer"].module is not module
        await clock.advance(600)
        await supervisor.message_bus.drain()
        expired = [line for line in lines(out) if "Timer expired" in line]
        assert expired == ["@U7 Timer expired: tea"]  # delivered once, by the reloaded role
        assert (await supervisor.timers.get(reply["result"]["timer_id"])).state == "fired"


async def test_unchanged_file_is_not_imported_again(tmp_path, daemon, clock):
    write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        module = supervisor.role_registry.roles["echo"].module
        path = tmp_path / "roles" / "echo.py"
        write_role(tmp_path / "roles", "echo", path.read_text())  # new mtime, same bytes
        await clock.advance(TICK * 3)
        assert supervisor.role_registry.roles["echo"].module is module


async def test_reloaded_role_is_a_fresh_module(tmp_path, daemon, clock):
    write_role(tmp_path / "roles", "echo", echo_role("v1"))
    async with daemon().running() as supervisor:
        module = supervisor.role_registry.roles["echo"].module
        write_role(tmp_path / "roles", "echo", echo_role("v2"))
        await tick(supervisor, clock)
        assert supervisor.role_registry.roles["echo"].module is not module


FLAKY_ROLE = echo_role("v1").replace(
    'return [NotificationIntent(message="v1 " + event_data["text"], channel="console")]',
    'raise ValueError("boom " + event_data["text"])',
)


async def test_role_that_keeps_failing_is_quarantined_until_its_file_changes(
    tmp_path, daemon, clock, out
):
    write_role(tmp_path / "roles", "echo", FLAKY_ROLE)
    async with daemon(quarantine_failures=3, quarantine_window=60).running() as supervisor:
        for n in range(4):
            await ping(supervisor, str(n))
        assert supervisor.role_registry.quarantined == {"echo"}
        assert supervisor.message_bus.stats.failed["echo", "PING"] == 3
        write_role(tmp_path / "roles", "echo", echo_role("v2"))
        await tick(supervisor, clock)
        await ping(supervisor, "back")
    assert lines(out) == [
        "admin role 'echo' is quarantined after 3 handler failures within 60.0 s (last: handler "
        "raised ValueError: boom 2); edit its file to load it again",
        "admin role 'echo' was reloaded (version 1.0.0)",
        "v2 back",
    ]


async def test_failures_spread_beyond_the_window_do_not_quarantine(tmp_path, daemon, clock):
    write_role(tmp_path / "roles", "echo", FLAKY_ROLE)
    async with daemon(quarantine_failures=2, quarantine_window=10).running() as supervisor:
        await ping(supervisor, "1")
        await clock.advance(11)
        await ping(supervisor, "2")
        assert supervisor.role_registry.quarantined == set()


async def test_intent_handler_gets_the_role_kv_and_settings(tmp_path, clock, out):
    write_role(tmp_path / "roles", "greeter", render_role("greeter"))
    config = make_config(tmp_path, settings={"greeter": {"tone": "dry"}})
    async with Supervisor(config=config, clock=clock, stdout=out).running() as supervisor:
        role = supervisor.role_registry.roles["greeter"].module
        note = role.GreeterNoteIntent(key="k", text="v")
        await supervisor.intent_processor.process_intents([note])
        services = supervisor.services_for("greeter")
        assert (await services.kv.get("k"), services.settings) == ("v", {"tone": "dry"})


async def test_sync_handler_blocking_the_loop_is_reported_by_name(tmp_path, daemon):
    blocking = echo_role("v1").replace(
        "def handle_ping(event_data, context):\n",
        "import time\n\n\ndef handle_ping(event_data, context):\n"
        "    started = time.perf_counter()\n"
        "    while time.perf_counter() - started < 0.2:\n        pass\n",
    )
    write_role(tmp_path / "roles", "echo", blocking)
    async with daemon().running() as supervisor:
        with capture_logs() as logs:
            await ping(supervisor)
    blocked = [entry for entry in logs if entry["event"] == "handler_blocked_loop"]
    assert [(e["role"], e["handler"], e["blocked_ms"] >= 200) for e in blocked] == [
        ("echo", "handle_ping", True)
    ]


GATED_ROLE = echo_role("TAG").replace(
    "def handle_ping(event_data, context):\n",
    "async def handle_ping(event_data, context):\n    await event_data['gate'].wait()\n",
)


async def test_event_in_flight_finishes_on_the_old_version_and_the_next_uses_the_new(
    tmp_path, daemon, clock, out
):
    write_role(tmp_path / "roles", "echo", GATED_ROLE.replace("TAG", "v1"))
    gate = asyncio.Event()
    async with daemon().running() as supervisor:
        supervisor.message_bus.publish("test", "PING", {"text": "first", "gate": gate})
        await settle()
        write_role(tmp_path / "roles", "echo", GATED_ROLE.replace("TAG", "v2"))
        await tick(supervisor, clock)
        supervisor.message_bus.publish("test", "PING", {"text": "second", "gate": gate})
        gate.set()
        await supervisor.message_bus.drain()
    assert lines(out) == ["v1 first", "admin role 'echo' was reloaded (version 1.0.0)", "v2 second"]


async def test_role_kv_data_survives_a_reload(tmp_path, daemon, clock):
    write_role(tmp_path / "roles", "greeter", render_role("greeter"))
    async with daemon().running() as supervisor:
        old = supervisor.role_registry.roles["greeter"].module
        note = old.GreeterNoteIntent(key="k", text="v")
        await supervisor.intent_processor.process_intents([note])
        write_role(tmp_path / "roles", "greeter", render_role("greeter") + "\n# edited\n")
        await tick(supervisor, clock)
        assert supervisor.role_registry.roles["greeter"].module is not old
        assert await supervisor.services_for("greeter").kv.get("k") == "v"


async def test_async_handler_over_its_budget_is_cancelled_and_counted(tmp_path, daemon, out):
    slow = (
        echo_role("v1")
        .replace(
            "def handle_ping(event_data, context):\n",
            "async def handle_ping(event_data, context):\n    await asyncio.Event().wait()\n",
        )
        .replace(
            '"""Echo: replies to PING events with the text of the ping."""\n',
            '"""Echo, slow."""\n\nimport asyncio\n',
        )
    )
    write_role(tmp_path / "roles", "echo", slow)
    async with daemon(handler_timeout=0.05).running() as supervisor:
        await ping(supervisor)
        assert supervisor.message_bus.stats.timed_out["echo", "PING"] == 1
    assert lines(out) == []


async def test_deleting_a_broken_file_forgets_its_problems(tmp_path, daemon, clock):
    roles = tmp_path / "roles"
    roles.mkdir()
    shutil.copy(BROKEN / "returns_list.py", roles / "returns_list.py")
    async with daemon().running() as supervisor:
        (roles / "returns_list.py").unlink()
        await tick(supervisor, clock)
        assert supervisor.role_registry.failed == {}


async def test_role_registry_alone_subscribes_only_role_handlers(tmp_path):
    write_role(tmp_path / "roles", "echo", echo_role())
    bus = MessageBus()
    RoleRegistry(tmp_path / "roles", bus).discover_roles()
    assert [(s.role, s.event_type) for s in bus.subscriptions()] == [("echo", "PING")]


async def test_services_exist_only_while_running_and_carry_the_kv(tmp_path, daemon):
    supervisor = daemon()
    with pytest.raises(RuntimeError, match="the supervisor is not running"):
        supervisor.services_for("echo")
    async with supervisor.running():
        await supervisor.services_for("echo").kv.set("k", 1)
        assert await supervisor.services_for("echo").kv.get("k") == 1


async def test_bad_timer_expired_data_is_refused_and_never_quarantines_the_timer_role(
    tmp_path, daemon, clock, out
):
    (tmp_path / "roles").mkdir()
    shutil.copy(ROLES / "timer.py", tmp_path / "roles" / "timer.py")
    async with daemon(quarantine_failures=3, quarantine_window=60).running() as supervisor:
        bus = supervisor.message_bus
        for _ in range(6):
            bus.publish("timers", "TIMER_EXPIRED", {"late_by_s": "soon"}, source="timers")
        await bus.drain()
        assert supervisor.role_registry.quarantined == set()
        assert bus.stats.rejected_data["timer", "TIMER_EXPIRED"] == 6
        assert bus.stats.failed["timer", "TIMER_EXPIRED"] == 0
        bus.publish("timers", "TIMER_EXPIRED", {"label": "tea", "channel_id": "console"})
        await bus.drain()
    assert lines(out) == ["Timer expired: tea"]
