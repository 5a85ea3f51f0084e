"""The bus's ``on_done`` hook: called after every subscriber ran and its intents were processed."""

from typing import Any

from common.intent_processor import IntentProcessor
from common.intents import AuditIntent, NotificationIntent
from common.message_bus import EventOutcome, MessageBus


def _bus_with_audit_sink() -> tuple[MessageBus, IntentProcessor]:
    processor = IntentProcessor()
    bus = MessageBus(processor)
    return bus, processor


async def test_on_done_runs_after_every_subscriber_and_its_intents() -> None:
    bus, processor = _bus_with_audit_sink()
    seen: list[str] = []

    def first(data: Any, context: Any) -> list[AuditIntent]:
        seen.append("first")
        return [AuditIntent(action="first", details={})]

    def second(data: Any, context: Any) -> list[AuditIntent]:
        seen.append("second")
        return [AuditIntent(action="second", details={})]

    bus.subscribe("a", "TIMER_EXPIRED", first)
    bus.subscribe("b", "TIMER_EXPIRED", second)
    audited = processor.audit_sink.records  # type: ignore[attr-defined]
    bus.publish(
        "test", "TIMER_EXPIRED", {}, on_done=lambda o: seen.append(f"done:{len(audited)}:{o}")
    )
    await bus.drain()
    assert seen == ["first", "second", "done:2:EventOutcome(handlers=2, failures=0)"]


async def test_on_done_reports_a_raising_handler_as_a_failure() -> None:
    bus, _ = _bus_with_audit_sink()
    done: list[EventOutcome] = []

    def broken(data: Any, context: Any) -> list[AuditIntent]:
        raise RuntimeError("boom")

    bus.subscribe("a", "TIMER_EXPIRED", broken)
    bus.subscribe("b", "TIMER_EXPIRED", lambda d, c: [])
    bus.publish("test", "TIMER_EXPIRED", {}, on_done=done.append)
    await bus.drain()
    assert done == [EventOutcome(handlers=2, failures=1)]
    assert not done[0].ok


async def test_on_done_reports_failed_intents() -> None:
    bus, _ = _bus_with_audit_sink()
    done: list[EventOutcome] = []
    bus.subscribe("a", "TIMER_EXPIRED", lambda d, c: [NotificationIntent("", "console")])
    bus.publish("test", "TIMER_EXPIRED", {}, on_done=done.append)
    await bus.drain()
    assert done == [EventOutcome(handlers=1, failures=1)]


async def test_on_done_reports_an_event_nobody_handled_as_not_ok() -> None:
    bus, _ = _bus_with_audit_sink()
    done: list[EventOutcome] = []
    bus.publish("test", "TIMER_EXPIRED", {}, on_done=done.append)
    await bus.drain()
    assert (done, done[0].ok) == ([EventOutcome(handlers=0, failures=0)], False)


async def test_on_done_is_not_called_for_an_event_never_dispatched() -> None:
    bus, _ = _bus_with_audit_sink()
    done: list[bool] = []
    bus.publish("test", "TIMER_EXPIRED", {}, on_done=lambda o: done.append(True))
    assert done == [] and bus.queue_depth == 1


async def test_a_raising_on_done_is_logged_and_the_next_event_still_runs() -> None:
    bus, _ = _bus_with_audit_sink()
    done: list[str] = []

    def failing(outcome: EventOutcome) -> None:
        raise RuntimeError("disk full")

    bus.publish("test", "TIMER_EXPIRED", {}, on_done=failing)
    bus.publish("test", "TIMER_EXPIRED", {}, on_done=lambda o: done.append("second"))
    await bus.drain()
    assert done == ["second"]
