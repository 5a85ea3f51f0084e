"""SIGHUP and Supervisor.reload(): re-read the config, apply what can change live, rescan roles."""

import logging
import os
import signal

import pytest
import structlog

from supervisor.supervisor import Supervisor
from tests.fakes.clock import settle
from tests.supervisor.http_daemon import ECHO_ROLE, write_role

NEW_ROLE = '''
"""Reacts to PONG."""
from common.intents import AuditIntent

ROLE_CONFIG = {
    "name": "late", "version": "1.0.0", "description": "Added while running", "llm_type": "WEAK"
}


def handle_pong(event_data, context):
    return [AuditIntent(action="pong_seen", details=event_data)]


def register_role():
    handlers = {"PONG": handle_pong}
    return {"config": ROLE_CONFIG, "event_handlers": handlers, "tools": [], "intents": {}}
'''


def write_config(path, *, level="INFO", aliases="{}", port=0):
    path.write_text(
        f"roles:\n  directory: roles\nlogging:\n  level: {level}\n"
        f"channels:\n  aliases: {aliases}\nhttp:\n  port: {port}\n",
        encoding="utf-8",
    )


@pytest.fixture
def config_file(tmp_path):
    write_role(tmp_path / "roles", "echo", ECHO_ROLE)
    path = tmp_path / "config.yaml"
    write_config(path)
    root = logging.getLogger()
    level, handlers, structlog_config = root.level, root.handlers[:], structlog.get_config()
    yield path
    root.setLevel(level)
    root.handlers[:] = handlers  # a reload that changes logging reconfigures it
    structlog.configure(**structlog_config)


async def test_reload_applies_channel_aliases_and_log_level(config_file):
    async with Supervisor(config_file).running() as sup:
        write_config(config_file, level="WARNING", aliases="{ops: log}")
        sup.reload()
        assert sup.config.channels.aliases == {"ops": "log"}
        assert sup.communication_manager.resolve("ops").kind == "log"
        assert logging.getLogger().level == logging.WARNING


async def test_reload_keeps_sections_that_need_a_restart_and_says_so(config_file):
    async with Supervisor(config_file).running() as sup:
        write_config(config_file, port=9)
        with structlog.testing.capture_logs() as logs:
            sup.reload()
        assert sup.config.http.port == 0
    [warning] = [entry for entry in logs if entry["event"] == "reload_needs_restart"]
    assert warning["sections"] == ["http"]


async def test_a_broken_config_file_is_logged_and_changes_nothing(config_file):
    async with Supervisor(config_file).running() as sup:
        before = sup.config
        config_file.write_text("logging: [not, a, mapping\n", encoding="utf-8")
        with structlog.testing.capture_logs() as logs:
            sup.reload()
        assert sup.config is before
    [failure] = [entry for entry in logs if entry["event"] == "reload_failed"]
    assert "config.yaml:" in failure["error"] and "not valid YAML" in failure["error"]


async def test_reload_loads_a_role_file_added_while_running(config_file):
    async with Supervisor(config_file).running() as sup:
        write_role(config_file.parent / "roles", "late", NEW_ROLE)
        sup.reload()
        await sup.roles_rescanned()
        sup.message_bus.publish("test", "PONG", {"n": 1})
        await sup.message_bus.drain()
        assert sorted(sup.role_registry.roles) == ["echo", "late"]
        records = await sup.intent_processor.audit_sink.recent(5)
        assert [(r.role, r.action, r.details) for r in records] == [("late", "pong_seen", {"n": 1})]
        assert len(sup.message_bus.subscriptions("PING")) == 1


async def test_sighup_reloads_the_running_daemon(config_file):
    async with Supervisor(config_file).running() as sup:
        write_config(config_file, aliases="{ops: log}")
        os.kill(os.getpid(), signal.SIGHUP)
        await settle()
        assert sup.config.channels.aliases == {"ops": "log"}


async def test_a_broken_new_role_file_is_logged_and_the_daemon_carries_on(config_file):
    async with Supervisor(config_file).running() as sup:
        write_role(config_file.parent / "roles", "broken", "raise RuntimeError('nope')\n")
        with structlog.testing.capture_logs() as logs:
            sup.reload()
            await sup.roles_rescanned()
        assert sorted(sup.role_registry.roles) == ["echo"]
    [failure] = [entry for entry in logs if entry["event"] == "role_failed"]
    assert failure["role"] == "broken"
    assert "importing the file raised RuntimeError: nope" in failure["problems"][0]
    [reloaded] = [entry for entry in logs if entry["event"] == "reloaded"]
    assert reloaded["roles"] == ["broken.py"]


async def test_a_channels_section_that_no_longer_resolves_is_refused(config_file):
    async with Supervisor(config_file).running() as sup:
        before = sup.config
        write_config(config_file, aliases="{ops: 'slack:#ops'}")  # Slack is not configured
        with structlog.testing.capture_logs() as logs:
            sup.reload()
        assert sup.config is before
        assert sup.communication_manager.config == before.channels
    [failure] = [entry for entry in logs if entry["event"] == "reload_failed"]
    assert failure["error"].startswith("channels.aliases.ops is 'slack:#ops', which names no")


async def test_a_strict_start_reloads_an_unchanged_file_without_a_restart_warning(config_file):
    supervisor = Supervisor(config_file)
    supervisor.config = supervisor.config.model_copy(
        update={"roles": supervisor.config.roles.model_copy(update={"strict": True})}
    )  # as `intentd run --strict` does
    async with supervisor.running() as sup:
        with structlog.testing.capture_logs() as logs:
            sup.reload()
    assert [entry for entry in logs if entry["event"] == "reload_needs_restart"] == []


async def test_alerts_follow_the_admin_channel_a_reload_sets(config_file):
    async with Supervisor(config_file).running() as sup:
        write_config(config_file, aliases="{}\n  admin: 'log:alerts'")
        sup.reload()
        assert sup.communication_manager.resolve("admin").target == "alerts"
