"""The timer role: pure handlers compared with one assert, tools run through the tool runner."""

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from common.errors import EventDataError
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent, NotificationIntent
from common.message_bus import MessageBus
from llm_provider.role_registry import RoleRegistry
from llm_provider.tool_runner import run_tool
from roles.timer import (
    ROLE_CONFIG,
    TimerIntent,
    _parse_duration,
    cancel_timer,
    handle_heartbeat_monitoring,
    handle_timer_expiry,
    list_timers,
    process_timer,
    register_role,
    set_timer,
)
from supervisor.scheduling.timers import TimerService
from supervisor.services import DaemonServices
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import START, FakeClock
from tests.timer_runner import TimerRunner

ROLES = Path(__file__).resolve().parents[2] / "roles"
ORIGIN = {"channel_id": "C42", "user_id": "U7", "event_id": "evt-1"}


class Setup:
    """A real bus, processor, store and timer service, wired the way the Supervisor wires them."""

    def __init__(self, path: Path) -> None:
        self.clock = FakeClock()
        self.bus = MessageBus(clock=self.clock.time)
        self.timers = TimerService(SqliteTimers(Store(path)), self.bus, self.clock)
        self.runner = TimerRunner(self.timers)
        self.services = DaemonServices(role="timer", bus=self.bus, timers=self.timers, kv=None)
        self.processor = IntentProcessor(
            message_bus=self.bus, services_factory=lambda role: self.services
        )
        self.bus.set_intent_processor(self.processor)
        self.sent: list[NotificationIntent] = []
        self.processor.communication_manager = self  # type: ignore[assignment]
        registry = RoleRegistry(ROLES, self.bus)
        registry.discover_roles()
        registry.set_intent_processor(self.processor)

    async def drain(self) -> None:
        await self.bus.drain()
        await self.timers.settled()
        await self.bus.drain()

    async def send(self, intent: NotificationIntent) -> None:
        self.sent.append(intent)

    async def tool(self, tool: Any, **arguments: Any) -> dict[str, Any]:
        return await run_tool(tool, arguments, self.processor, "timer", ORIGIN)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    made = Setup(tmp_path / "intentd.db")
    yield made
    await made.runner.stop()


# -- contract ---------------------------------------------------------------------------------


def test_role_config_has_the_contract_keys() -> None:
    assert {k: type(v) for k, v in ROLE_CONFIG.items()} == {
        "name": str,
        "version": str,
        "description": str,
        "llm_type": str,
        "fast_reply": bool,
        "when_to_use": str,
    } and (ROLE_CONFIG["name"], ROLE_CONFIG["llm_type"]) == ("timer", "WEAK")


def test_register_role_wires_handlers_tools_and_the_intent() -> None:
    registration = register_role()
    assert registration == {
        "config": ROLE_CONFIG,
        "event_handlers": {
            "TIMER_EXPIRED": handle_timer_expiry,
            "FAST_HEARTBEAT_TICK": handle_heartbeat_monitoring,
        },
        "tools": [set_timer, cancel_timer, list_timers],
        "intents": {TimerIntent: process_timer},
    }


@pytest.mark.parametrize(
    ("action", "valid"),
    [("create", True), ("cancel", True), ("check", True), ("list", False), ("", False)],
)
def test_timer_intent_is_valid_only_for_create_cancel_and_check(action: str, valid: bool) -> None:
    assert TimerIntent(action, timer_id=None, duration=None, label=None).validate() is valid


# -- event handlers ---------------------------------------------------------------------------


def test_expiry_notifies_the_timers_channel_and_audits() -> None:
    event = {
        "timer_id": "tmr-1",
        "label": "tea",
        "channel_id": "C9",
        "user_id": "U1",
        "late_by_s": 0.002,
        "attempt": 1,
    }
    context = SimpleNamespace(channel_id="C0", user_id="U0")
    assert handle_timer_expiry(event, context) == [
        NotificationIntent(message="Timer expired: tea", channel="C9", user_id="U1"),
        AuditIntent(
            action="timer_expired",
            details={
                "timer_id": "tmr-1",
                "label": "tea",
                "channel": "C9",
                "late_by_s": 0.002,
                "attempt": 1,
            },
            user_id="U1",
        ),
    ]


@pytest.mark.parametrize(
    "context",
    [SimpleNamespace(channel_id="C1", user_id="U1"), {"channel_id": "C1", "user_id": "U1"}],
)
def test_expiry_from_a_list_uses_the_context_channel(context: Any) -> None:
    intents = handle_timer_expiry(["tmr-1", "stretch"], context)
    assert [(type(i), i.validate()) for i in intents] == [
        (NotificationIntent, True),
        (AuditIntent, True),
    ]
    assert (intents[0].message, intents[0].channel, intents[0].user_id) == (
        "Timer expired: stretch",
        "C1",
        "U1",
    )


def test_expiry_without_any_channel_goes_to_the_default_channel() -> None:
    intents = handle_timer_expiry({"timer_id": "tmr-1"}, {"channel_id": None, "user_id": None})
    assert (intents[0].channel, intents[0].message) == ("default", "Your timer has expired.")


def test_expiry_after_downtime_says_how_late_it_is() -> None:
    intents = handle_timer_expiry({"label": "tea", "late_by_s": 3725}, {})
    assert intents[0].message == "Timer expired: tea (due 1h 2m ago, while intentd was not running)"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {"late_by_s": "soon"},
            "TIMER_EXPIRED data 'late_by_s' must be a number of seconds, got str",
        ),
        (
            {"late_by_s": True},
            "TIMER_EXPIRED data 'late_by_s' must be a number of seconds, got bool",
        ),
        ({"label": ["x"]}, "TIMER_EXPIRED data 'label' must be text, got list"),
        ({"channel_id": 5}, "TIMER_EXPIRED data 'channel_id' must be text, got int"),
        ({"attempt": "2"}, "TIMER_EXPIRED data 'attempt' must be a whole number, got str"),
        ("tea", "TIMER_EXPIRED data must be an object or [timer_id, request], got str"),
    ],
)
def test_expiry_with_bad_data_is_refused_naming_the_field(event: Any, error: str) -> None:
    with pytest.raises(EventDataError) as refused:
        handle_timer_expiry(event, {})
    assert str(refused.value) == error


def test_heartbeat_leaves_the_store_check_to_the_timer_service() -> None:
    assert handle_heartbeat_monitoring({"timestamp": START}, {}) == []


# -- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (90, 90),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h 15m", 4500),
        ("10 seconds", 10),
        ("5 minutes", 300),
        ("2 hours", 7200),
        ("1 day", 86400),
        ("1 hour and 30 minutes", 5400),
        ("2.5 min", 150),
    ],
)
def test_durations_people_write_are_understood(text: Any, seconds: float) -> None:
    assert _parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0", "is zero"),
        ("0m", "is zero"),
        ("-5m", "is negative"),
        (-5, "is negative"),
        ("400 days", "longer than a year"),
        ("soon", "not understood"),
        ("5 potatoes", "not understood"),
        ("5m later", "not understood"),
        ("", "not understood"),
        (None, "not text or a number"),
    ],
)
def test_bad_durations_get_a_message_naming_the_input(text: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=f"duration {text!r:.20}.*{problem}"):
        _parse_duration(text)


# -- tools ------------------------------------------------------------------------------------


async def test_set_timer_replies_with_the_real_id_and_due_time(setup: Setup) -> None:
    reply = await setup.tool(set_timer, duration="5m", label="tea")
    timer = (await setup.timers.list())[0]
    assert reply == {
        "success": True,
        "message": f"Timer {timer.timer_id} set for 2027-01-15T08:05:00Z (5m from now).",
        "result": {
            "message": reply["message"],
            "timer_id": timer.timer_id,
            "due_at": "2027-01-15T08:05:00Z",
            "label": "tea",
        },
    }
    assert (timer.channel_id, timer.user_id, timer.due_at) == ("C42", "U7", START + 300)


async def test_set_timer_with_a_bad_duration_stores_nothing(setup: Setup) -> None:
    reply = await setup.tool(set_timer, duration="5 potatoes")
    assert reply["success"] is False and "'5 potatoes' is not understood" in reply["message"]
    assert await setup.timers.list(include_done=True) == []


async def test_cancel_timer_cancels_for_real(setup: Setup) -> None:
    created = await setup.tool(set_timer, duration="5m", label="tea")
    timer_id = created["result"]["timer_id"]
    reply = await setup.tool(cancel_timer, timer_id=timer_id)
    assert (reply["success"], reply["message"]) == (True, f"Timer {timer_id} cancelled.")
    assert (await setup.timers.get(timer_id)).state == "cancelled"  # type: ignore[union-attr]


async def test_cancel_timer_of_an_unknown_id_reports_the_failure(setup: Setup) -> None:
    reply = await setup.tool(cancel_timer, timer_id="tmr-nope")
    assert reply["success"] is False and "no timer has id 'tmr-nope'" in reply["message"]


async def test_list_timers_returns_the_users_real_pending_timers(setup: Setup) -> None:
    await setup.tool(set_timer, duration="10m", label="pasta")
    await setup.tool(set_timer, duration="1m", label="tea")
    await setup.timers.create(duration=30, label="someone else's", user_id="U8")
    reply = await setup.tool(list_timers)
    assert [(t["label"], t["due_at"]) for t in reply["result"]["timers"]] == [
        ("tea", "2027-01-15T08:01:00Z"),
        ("pasta", "2027-01-15T08:10:00Z"),
    ]
    assert reply["message"] == "2 pending timer(s)."


async def test_list_timers_says_nothing_about_other_users_timers(setup: Setup) -> None:
    await setup.timers.create(duration=30, label="someone else's", user_id="U8")
    reply = await setup.tool(list_timers)
    assert reply["result"] == {"pending": 0, "timers": [], "message": "No pending timers."}


async def test_a_timer_set_by_tool_notifies_its_channel_when_it_expires(setup: Setup) -> None:
    await setup.tool(set_timer, duration="90s", label="tea")
    await setup.clock.advance(90)
    await setup.drain()
    assert setup.sent == [
        NotificationIntent(message="Timer expired: tea", channel="C42", user_id="U7")
    ]
    records = setup.processor.audit_sink.records  # type: ignore[attr-defined]
    assert [(r.action, r.details["label"], r.role) for r in records] == [
        ("timer_expired", "tea", "timer")
    ]
    assert await setup.timers.list() == []
