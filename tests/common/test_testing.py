"""The role authors' test kit: the harness drives real role files; the stand-ins behave."""

from pathlib import Path

import pytest

from common.errors import EventNameError, TimerError
from common.intents import AuditIntent, NotificationIntent
from common.testing import RecordingServices, RecordingTimers, RoleHarness, make_context
from roles.timer import TimerIntent

REPO = Path(__file__).resolve().parents[2]
TIMER = REPO / "roles" / "timer.py"
BROKEN = REPO / "tests" / "roles" / "broken"


async def test_an_event_goes_through_the_role_wiring_and_its_intents_come_back():
    role = RoleHarness(TIMER)
    intents = await role.event("TIMER_EXPIRED", {"label": "tea", "timer_id": "tmr-1"},
                               channel_id="C1", user_id="U1")  # fmt: skip
    assert intents == [
        NotificationIntent(message="Timer expired: tea", channel="C1", user_id="U1"),
        AuditIntent(
            action="timer_expired",
            details={
                "timer_id": "tmr-1",
                "label": "tea",
                "channel": "C1",
                "late_by_s": 0,
                "attempt": 1,
            },
            user_id="U1",
        ),
    ]


async def test_the_harness_loads_the_module_the_daemon_would_so_intent_classes_are_the_same():
    assert RoleHarness(TIMER).module.TimerIntent is TimerIntent


async def test_an_intent_is_carried_out_with_recording_timers_at_the_harness_time():
    role = RoleHarness(TIMER, now=1_800_000_000.0)
    reply = await role.carry_out(TimerIntent(action="create", duration="5m", label="tea"))
    (timer,) = await role.services.timers.list()
    assert (reply["timer_id"], timer.label, timer.due_at, timer.role) == (
        "tmr-test-1",
        "tea",
        1_800_000_300.0,
        "timer",
    )
    assert reply["due_at"] == "2027-01-15T08:05:00Z"


async def test_an_event_the_role_does_not_subscribe_to_names_what_it_does():
    with pytest.raises(AssertionError, match=r"does not subscribe to 'TIMER_EXPIERD'; .* maps "
                       r"\['FAST_HEARTBEAT_TICK', 'TIMER_EXPIRED'\]"):  # fmt: skip
        await RoleHarness(TIMER).event("TIMER_EXPIERD", {})


async def test_a_handler_that_returns_none_fails_the_test_with_the_fix():
    role = RoleHarness(BROKEN / "returns_none_async.py")
    with pytest.raises(AssertionError, match=r"returned None; it must return a list of intents"):
        await role.event("HEARTBEAT_TICK", {"timestamp": 1.0})


async def test_an_invalid_or_foreign_intent_is_not_carried_out():
    role = RoleHarness(TIMER)
    with pytest.raises(AssertionError, match=r"TimerIntent.validate\(\) returned False"):
        await role.carry_out(TimerIntent(action="snooze"))
    with pytest.raises(AssertionError, match="core intents are carried out by intentd"):
        await role.carry_out(NotificationIntent(message="x", channel="console"))


async def test_recording_timers_refuse_what_the_timer_service_refuses():
    timers = RecordingTimers(now=100.0)
    with pytest.raises(TimerError, match="exactly one of deadline or duration"):
        await timers.create(label="x")
    with pytest.raises(TimerError, match="not after now"):
        await timers.create(deadline=50.0)
    timer_id = await timers.create(deadline=200.0, user_id="U1")
    cancelled = await timers.cancel(timer_id)
    everything = await timers.list(include_done=True)
    assert (cancelled.state, await timers.list(), len(everything)) == ("cancelled", [], 1)
    with pytest.raises(TimerError, match="no pending timer has id"):
        await timers.cancel(timer_id)


def test_recording_services_record_published_events_and_check_their_names():
    services = RecordingServices(role="standup", settings={"channel": "team"})
    services.publish("STANDUP_NOTES_READY", {"notes": ["a"]})
    with pytest.raises(EventNameError):
        services.publish("standup-ready")
    assert (services.published, services.kv.role, services.settings["channel"]) == (
        [("STANDUP_NOTES_READY", {"notes": ["a"]})],
        "standup",
        "team",
    )


def test_make_context_fills_test_defaults_and_takes_overrides():
    context = make_context("PING", channel_id="C1", timestamp=5.0)
    assert (context.event_type, context.source, context.channel_id, context.timestamp) == (
        "PING",
        "test",
        "C1",
        5.0,
    )
