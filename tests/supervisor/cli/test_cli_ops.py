"""`intentd status` and `intentd emit`: the command line talking to a running daemon over HTTP."""

import io
import re
import socket

import pytest

from common.errors import IntentdError
from supervisor.cli.api_client import emit, show_status
from supervisor.cli.main import main
from supervisor.config import HTTPConfig
from tests.fakes.clock import FakeClock
from tests.supervisor.http_daemon import TOKEN, make_config, running_daemon


def client_config(daemon, token: str | None = TOKEN) -> HTTPConfig:
    return HTTPConfig(port=daemon.supervisor.http.port, token=token)


async def test_status_prints_one_field_per_line(tmp_path):
    out = io.StringIO()
    async with running_daemon(make_config(tmp_path), clock=FakeClock()) as daemon:
        await show_status(client_config(daemon), out)
    printed = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.getvalue().splitlines())
    assert re.fullmatch(r"\d+\.\d", printed.pop("loop lag (ms)"))  # real time: the loop's own
    assert printed == {
        "uptime (s)": "0.0",
        "ready": "True",
        "not ready": "none",
        "roles": "echo",
        "pending timers": "0",
        "outbox depth": "0",
        "dead letters": "0",
        "journal backlog": "0",
        "oldest event age (s)": "0.0",
        "dead events": "0",
        "last heartbeat": "n/a",
        "bus queue depth": "0",
        "events published": "1",  # ROLE_LOADED
        "active workflows": "0",
        "schedules": "none",
        "instances": "n/a",
    }


async def test_emit_publishes_through_the_daemon(tmp_path):
    out = io.StringIO()
    async with running_daemon(make_config(tmp_path)) as daemon:
        await emit(client_config(daemon), "PING", '{"n": 2}', out)
        await daemon.supervisor.message_bus.drain()
        [record] = await daemon.supervisor.intent_processor.audit_sink.recent(1)
    assert out.getvalue().startswith("accepted PING as evt-")
    assert record.details == {"n": 2}


async def test_emit_reports_the_daemons_refusal(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        with pytest.raises(IntentdError) as err:
            await emit(client_config(daemon), "PING", "[1]", io.StringIO())
    assert str(err.value) == (
        "the daemon refused POST /events/PING: request body must be a JSON object, got a JSON "
        'array; wrap it as {"value": ...}'
    )


async def test_status_with_a_wrong_token_says_so(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        with pytest.raises(IntentdError) as err:
            await show_status(client_config(daemon, token="wrong"), io.StringIO())
    assert str(err.value) == (
        "the daemon refused GET /status: the bearer token does not match http.token"
    )


def test_status_when_the_daemon_is_not_running_exits_1_with_one_line(tmp_path, capsys):
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"http:\n  port: {port}\n", encoding="utf-8")
        code = main(["status", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"intentd: the daemon is not running at http://127.0.0.1:{port} (")
    assert err.endswith("); start it with 'intentd run' or check http.host and http.port\n")
    assert err.count("\n") == 1


def test_emit_checks_the_event_name_before_calling_the_daemon(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("http:\n  port: 1\n", encoding="utf-8")
    assert main(["emit", "timer-expired", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        "intentd: EVENT_TYPE 'timer-expired' is not an UPPER_SNAKE_CASE name; use 'TIMER_EXPIRED'\n"
    )


def test_a_random_port_in_the_config_cannot_be_found(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("http:\n  port: 0\n", encoding="utf-8")
    assert main(["status", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        "intentd: http.port is 0 (a random port), so the command line cannot find the daemon; "
        "set a fixed http.port\n"
    )
