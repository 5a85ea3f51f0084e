"""POST /roles/{role}/tools/{tool} over real HTTP: one role tool run with its intent carried out."""

import io
from pathlib import Path

from tests.fakes.clock import FakeClock
from tests.supervisor.http_daemon import make_config, running_daemon

ROLES = Path(__file__).resolve().parents[3] / "roles"


def timer_config(tmp_path: Path):
    """Return a daemon config whose roles are the echo role and the real timer role."""
    config = make_config(tmp_path)
    (config.roles.directory / "timer.py").symlink_to(ROLES / "timer.py")
    return config


async def pending(daemon) -> list[tuple[str, str | None, str | None]]:
    """Return (label, channel_id, user_id) of the daemon's pending timers."""
    return [(t.label, t.channel_id, t.user_id) for t in await daemon.supervisor.timers.list()]


async def test_a_tool_call_sets_a_timer_the_daemon_lists(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer?channel=%23ops&user=U1")
        async with daemon.session.post(url, json={"duration": "5m", "label": "tea"}) as response:
            status, reply = response.status, await response.json()
        async with daemon.session.get(daemon.url("/timers")) as response:
            listed = (await response.json())["timers"]
        timers = await pending(daemon)
    assert status == 200 and reply["success"] is True
    assert reply["message"].startswith(f"Timer {reply['result']['timer_id']}")
    assert [t["timer_id"] for t in listed] == [reply["result"]["timer_id"]]
    assert timers == [("tea", "#ops", "U1")]


async def test_a_tool_call_without_a_channel_acts_for_the_default_channel(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json={"duration": "90s"}) as response:
            assert response.status == 200
        assert await pending(daemon) == [("", "console", None)]


async def test_a_timer_set_over_http_fires_at_its_deadline(tmp_path):
    clock, out = FakeClock(), io.StringIO()
    async with running_daemon(timer_config(tmp_path), clock=clock, stdout=out) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json={"duration": "60s", "label": "tea"}) as response:
            assert response.status == 200
        await clock.advance(59)
        await daemon.supervisor.message_bus.drain()
        assert "Timer expired: tea" not in out.getvalue()
        await clock.advance(1)
        await daemon.supervisor.message_bus.drain()
    assert "Timer expired: tea" in out.getvalue()


async def test_a_bad_duration_is_422_with_the_tools_reply_and_sets_no_timer(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json={"duration": "soon"}) as response:
            status, reply = response.status, await response.json()
        assert await pending(daemon) == []
    assert status == 422 and reply["success"] is False
    assert "'soon'" in reply["message"]


async def test_a_failing_intent_is_422_with_its_error(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/cancel_timer")
        async with daemon.session.post(url, json={"timer_id": "tmr-nope"}) as response:
            status, reply = response.status, await response.json()
    assert status == 422 and reply["success"] is False
    assert "no timer has id 'tmr-nope'" in reply["error"]


async def test_arguments_of_the_wrong_type_are_422_with_the_validation_message(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json={"duration": ["5m"]}) as response:
            status, reply = response.status, await response.json()
        assert await pending(daemon) == []
    assert (status, reply) == (
        422,
        {
            "success": False,
            "message": "tool 'set_timer' got invalid arguments: duration: Input should be a "
            "valid string (got ['5m'])",
        },
    )


async def test_an_unknown_role_is_404_naming_the_loaded_roles(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/weather/tools/forecast")
        async with daemon.session.post(url, json={}) as response:
            status, answer = response.status, await response.json()
    assert (status, answer) == (
        404,
        {"error": "no loaded role is named 'weather'; the roles are ['echo', 'timer']"},
    )


async def test_an_unknown_tool_is_404_naming_the_roles_tools(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/snooze")
        async with daemon.session.post(url, json={}) as response:
            status, answer = response.status, await response.json()
    assert (status, answer) == (
        404,
        {
            "error": "role 'timer' has no tool 'snooze'; its tools are "
            "['cancel_timer', 'list_timers', 'set_timer']"
        },
    )


async def test_a_tool_call_without_the_token_is_401_and_sets_no_timer(tmp_path):
    async with running_daemon(timer_config(tmp_path), auth=False, clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json={"duration": "5m"}) as response:
            assert (response.status, await response.json()) == (
                401,
                {
                    "error": "this route needs an 'Authorization: Bearer <token>' header with "
                    "http.token"
                },
            )
        assert await pending(daemon) == []


async def test_a_body_that_is_not_a_json_object_is_422_and_runs_nothing(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        async with daemon.session.post(url, json=["5m"]) as response:
            status, answer = response.status, await response.json()
        assert await pending(daemon) == []
    assert status == 422 and answer["error"].startswith("request body must be a JSON object")


async def test_invalid_json_is_400_and_runs_nothing(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        headers = {"Content-Type": "application/json"}
        async with daemon.session.post(url, data=b"{duration", headers=headers) as response:
            status, answer = response.status, await response.json()
        assert await pending(daemon) == []
    assert status == 400 and answer["error"].startswith("request body: the text is not valid JSON")


async def test_a_body_that_is_not_json_is_415(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        headers = {"Content-Type": "text/plain"}
        async with daemon.session.post(url, data=b"duration=5m", headers=headers) as response:
            assert response.status == 415
        assert await pending(daemon) == []


async def test_a_body_over_the_limit_is_413(tmp_path):
    async with running_daemon(timer_config(tmp_path), clock=FakeClock()) as daemon:
        url = daemon.url("/roles/timer/tools/set_timer")
        body = {"duration": "5m", "label": "x" * (64 * 1024)}
        async with daemon.session.post(url, json=body) as response:
            assert response.status == 413
        assert await pending(daemon) == []
