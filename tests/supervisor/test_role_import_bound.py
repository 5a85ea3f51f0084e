"""Role files that sleep or loop at import cannot stall the daemon: the HTTP API is up before the
roles load, a trial import in a child process is bounded, and the good roles serve."""

import asyncio
import io

import aiohttp
import pytest
from structlog.testing import capture_logs

from llm_provider.role_trial import trial_import
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock, settle
from tests.role_files import echo_role, make_config, write_role

BOUND = 2.0
SLEEPY = "import time\ntime.sleep(60)\n"
SPINNING = "while True:\n    pass\n"
EXITING = "import os\nos._exit(3)\n"


def stalled(name: str) -> str:
    return (
        f"{name}: import did not finish within 2 s; a role file must do no work at import (no "
        "sleep, loop or network call): move it into a handler or raise roles.import_timeout"
    )


async def test_a_trial_import_of_a_good_file_passes(tmp_path):
    path = write_role(tmp_path / "roles", "echo", echo_role())
    assert await trial_import(path, path.read_bytes(), BOUND) is None


async def test_a_trial_import_of_a_file_that_raises_passes_to_be_reported_in_process(tmp_path):
    path = write_role(tmp_path / "roles", "broken", "raise RuntimeError('nope')\n")
    assert await trial_import(path, path.read_bytes(), BOUND) is None


@pytest.mark.parametrize("source", [SLEEPY, SPINNING], ids=["sleep", "loop"])
async def test_a_trial_import_that_does_not_finish_is_killed_and_reported(tmp_path, source):
    path = write_role(tmp_path / "roles", "stuck", source)
    assert await trial_import(path, path.read_bytes(), BOUND) == stalled("stuck").split(": ", 1)[1]


async def test_a_trial_import_that_exits_the_interpreter_is_reported(tmp_path):
    path = write_role(tmp_path / "roles", "quitter", EXITING)
    assert await trial_import(path, path.read_bytes(), BOUND) == (
        "importing the file ended its process (exit code 3); a role file must not exit or "
        "crash the interpreter at import"
    )


async def test_healthz_answers_at_once_and_the_good_role_serves_beside_two_stalling_files(
    tmp_path,
):
    roles = tmp_path / "roles"
    write_role(roles, "asleep", SLEEPY)
    write_role(roles, "busy", SPINNING)
    write_role(roles, "echo", echo_role("v1"))
    out = io.StringIO()
    config = make_config(tmp_path, import_timeout=BOUND)
    supervisor = Supervisor(config=config, clock=FakeClock(), stdout=out)
    with capture_logs() as logs:
        run = asyncio.create_task(supervisor.run())
        try:
            while supervisor.http is None or supervisor.http.port is None:  # up first
                assert not run.done()
                await asyncio.sleep(0.01)
            base = f"http://127.0.0.1:{supervisor.http.port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(base + "/healthz") as health:
                    assert (health.status, await health.json()) == (200, {"status": "ok"})
                async with session.get(base + "/readyz") as ready:
                    status, body = ready.status, await ready.json()
            assert status == 503
            assert body["checks"]["roles"].startswith("loading ")
            assert str(roles / "asleep.py") in body["checks"]["roles"]
            await supervisor.wait_ready()
            supervisor.message_bus.publish("test", "PING", {"text": "hi"})
            await supervisor.message_bus.drain()
        finally:
            supervisor.stop()
            await run
    assert out.getvalue().splitlines()[-1].endswith("v1 hi")
    assert sorted(supervisor.role_registry.roles) == ["echo"]
    failed = {str(problems[0]) for problems in supervisor.role_registry.failed.values()}
    assert failed == {stalled(str(roles / "asleep.py")), stalled(str(roles / "busy.py"))}
    named = [e["problems"] for e in logs if e["event"] == "role_failed"]
    assert sorted(named) == [[stalled(str(roles / "asleep.py"))], [stalled(str(roles / "busy.py"))]]


async def test_a_hot_reload_into_a_stalling_file_keeps_the_old_version_serving(tmp_path):
    roles = tmp_path / "roles"
    write_role(roles, "echo", echo_role("v1"))
    out = io.StringIO()
    clock = FakeClock()
    config = make_config(tmp_path, import_timeout=BOUND)
    async with Supervisor(config=config, clock=clock, stdout=out).running() as supervisor:
        write_role(roles, "echo", echo_role("v2") + SPINNING)
        write_role(roles, "other", SLEEPY)
        with capture_logs() as logs:
            await clock.advance(config.supervisor.fast_heartbeat_interval)
            await settle()
            supervisor.message_bus.publish("test", "PING", {"text": "during"})
            await supervisor.message_bus.drain()
            await supervisor.roles_rescanned()
        supervisor.message_bus.publish("test", "PING", {"text": "after"})
        await supervisor.message_bus.drain()
    pings = [line.split("] ", 1)[1] for line in out.getvalue().splitlines() if "] v" in line]
    assert pings == ["v1 during", "v1 after"]
    assert [(e["event"], e["path"]) for e in logs if e["event"].startswith("role_")] == [
        ("role_reload_failed", str(roles / "echo.py")),
        ("role_failed", str(roles / "other.py")),
    ]
