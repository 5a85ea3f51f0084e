"""Wiring roles in: a role the IntentProcessor refuses fails alone; a reload never half-wires."""

import sys
from dataclasses import dataclass
from pathlib import Path

from structlog.testing import capture_logs

from common.intents import Intent
from llm_provider.role_contract import display_path
from llm_provider.role_registry import RoleRegistry
from tests.factories import make_bus
from tests.role_files import write_role

BROKEN = Path(__file__).resolve().parents[1] / "roles" / "broken"
PING_ROLE = '''\
"""Ping: answers PING_SENT with a PingIntent, carried out by its own intent handler."""

from dataclasses import dataclass

from common.intents import Intent

ROLE_CONFIG = {"name": "ping", "version": "1.0.0", "description": "Ping.", "llm_type": "WEAK"}


@dataclass
class PingIntent(Intent):
    n: int

    def validate(self):
        return True


def handle_ping_sent(event_data, context):
    return [PingIntent(n=1)]


async def process_ping(intent):
    REPLIES.append("TAG")


REPLIES = []


def register_role():
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {"PING_SENT": handle_ping_sent},
        "tools": [],
        "intents": INTENTS,
    }
'''


def ping_role(tag: str, signature: str = "(intent)", intents: str = "{PingIntent: process_ping}"):
    """Return the ping role's source, replying ``tag`` through ``process_ping<signature>``."""
    source = PING_ROLE.replace("TAG", tag).replace("INTENTS", intents)
    return source.replace("process_ping(intent)", f"process_ping{signature}")


@dataclass
class ForeignPingIntent(Intent):
    n: int

    def validate(self) -> bool:
        return True


async def process_foreign(intent):
    return None


def claim_ping_intent_for_another_role(processor):
    """Register a handler for the type name ``roles.ping.PingIntent`` under role 'other'."""
    ForeignPingIntent.__module__ = "roles.ping"
    ForeignPingIntent.__qualname__ = "PingIntent"
    processor.register_role_intent_handler(ForeignPingIntent, process_foreign, role="other")


def listen(bus, event_type):
    seen = []
    bus.subscribe("listener", event_type, lambda data, context: seen.append(data))
    return seen


async def replies_to_a_ping(bus) -> list[str]:
    module = sys.modules["roles.ping"]
    module.REPLIES.clear()
    bus.publish("test", "PING_SENT", {})
    await bus.drain()
    return list(module.REPLIES)


async def test_edit_the_processor_would_refuse_keeps_the_old_version_and_is_announced(tmp_path):
    path = write_role(tmp_path, "ping", ping_role("v1", intents="{}"))
    bus, processor = make_bus()
    registry = RoleRegistry(tmp_path, bus)
    registry.discover_roles()
    registry.set_intent_processor(processor)
    claim_ping_intent_for_another_role(processor)
    v1 = registry.roles["ping"].module
    failed = listen(bus, "ROLE_RELOAD_FAILED")
    write_role(tmp_path, "ping", ping_role("v2"))
    assert registry.check_for_changes() == ["ping.py"]
    await bus.drain()
    assert (failed, [s.role for s in bus.subscriptions("PING_SENT")]) == (
        [
            {
                "role": "ping",
                "path": str(path),
                "problems": [
                    f"{path}:10: role 'ping' cannot handle 'roles.ping.PingIntent': "
                    "role 'other' already handles it; a role handles only the intents it defines"
                ],
            }
        ],
        ["ping"],
    )
    assert sys.modules["roles.ping"] is registry.roles["ping"].module is v1


async def test_edit_with_an_intent_handler_of_optional_extras_goes_live_whole(tmp_path):
    write_role(tmp_path, "ping", ping_role("v1"))
    bus, processor = make_bus()
    processor.services_factory = lambda role: None
    registry = RoleRegistry(tmp_path, bus)
    registry.discover_roles()
    registry.set_intent_processor(processor)
    write_role(tmp_path, "ping", ping_role("v2", "(intent, services=None, extra=None)"))
    assert registry.check_for_changes() == ["ping.py"]
    assert (registry.failed, await replies_to_a_ping(bus)) == ({}, ["v2"])


async def test_role_the_processor_refuses_at_start_fails_alone(tmp_path):
    path = write_role(tmp_path, "ping", ping_role("v1"))
    write_role(tmp_path, "pong", ping_role("pong", intents="{}").replace('"ping"', '"pong"'))
    bus, processor = make_bus()
    claim_ping_intent_for_another_role(processor)
    failed = listen(bus, "ROLE_FAILED")
    registry = RoleRegistry(tmp_path, bus)
    registry.discover_roles()
    registry.set_intent_processor(processor)
    await bus.drain()
    problem = (
        f"{path}:10: role 'ping' cannot handle 'roles.ping.PingIntent': role 'other' already "
        "handles it; a role handles only the intents it defines"
    )
    assert (list(registry.roles), [s.role for s in bus.subscriptions("PING_SENT")], failed) == (
        ["pong"],
        ["pong"],
        [{"role": "ping", "path": str(path), "problems": [problem]}],
    )


async def test_role_with_warnings_loads_logs_them_and_reports_none_returned_at_run_time(tmp_path):
    path = write_role(tmp_path, "returns_none_sync", (BROKEN / "returns_none_sync.py").read_text())
    bus, _ = make_bus()
    registry = RoleRegistry(tmp_path, bus)
    with capture_logs() as logs:
        registry.discover_roles()
        bus.publish("t", "HEARTBEAT_TICK", {"timestamp": 1.0})
        bus.publish("t", "HEARTBEAT_TICK", {"timestamp": 2.0})
        await bus.drain()
    reported = [
        (e["event"], e.get("problems") or e.get("where"))
        for e in logs
        if e["event"] in ("role_warnings", "handler_returned_none")
    ]
    assert (list(registry.roles), reported) == (
        ["returns_none_sync"],
        [
            (
                "role_warnings",
                [
                    f"{display_path(path)}:8: warning: event handler 'handle_tick' can reach "
                    "its end without 'return', so it returns None and asks for nothing; end "
                    "every path with 'return [...]' ('return []' when there is nothing to do)"
                ],
            ),
            ("handler_returned_none", f"{path}:8"),
        ],
    )


def test_the_folder_state_changes_exactly_when_a_rescan_could_find_something(tmp_path):
    registry = RoleRegistry(tmp_path / "roles")
    assert registry.folder_state() == ()  # no folder yet
    roles = tmp_path / "roles"
    roles.mkdir()
    (roles / "_helpers.py").write_text("x = 1\n")
    (roles / "notes.txt").write_text("not a role\n")
    assert registry.folder_state() == ()
    (roles / "ping.py").write_text("one\n")
    first = registry.folder_state()
    assert [name for name, _, _ in first] == ["ping.py"]
    assert registry.folder_state() == first  # nothing changed: the heartbeat skips the rescan
    (roles / "ping.py").write_text("one, edited\n")
    edited = registry.folder_state()
    assert edited != first
    (roles / "ping.py").rename(roles / "pong.py")
    assert [name for name, _, _ in registry.folder_state()] == ["pong.py"]
    (roles / "pong.py").unlink()
    assert registry.folder_state() == ()
