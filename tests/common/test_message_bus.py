import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from common.errors import (
    BusClosedError,
    BusFullError,
    EventDataError,
    EventNameError,
    WrongThreadError,
)
from common.intents import AuditIntent, EventIntent, NotificationIntent
from common.message_bus import HandlerFailure, MessageBus
from tests.factories import make_bus


def recorder(calls, tag, result=None):
    def handler(data, context):
        calls.append((tag, data, context))
        return result if result is not None else []

    return handler


async def test_handler_receives_the_data_and_a_context_with_the_event_id():
    bus, _ = make_bus(clock=lambda: 1234.5)
    calls = []
    bus.subscribe("echo", "THING_HAPPENED", recorder(calls, "echo"))
    event_id = bus.publish("tester", "THING_HAPPENED", {"channel_id": "C1", "user_id": "U1"})
    await bus.drain()
    [(_, data, context)] = calls
    assert data == {"channel_id": "C1", "user_id": "U1"}
    assert (context.event_id, context.event_type, context.source, context.timestamp) == (
        event_id,
        "THING_HAPPENED",
        "tester",
        1234.5,
    )
    assert (context.channel_id, context.user_id, context.parent_id) == ("C1", "U1", None)


async def test_events_arrive_in_publish_order_and_fan_out_in_subscription_order():
    bus, _ = make_bus()
    calls = []
    bus.subscribe("first", "A_HAPPENED", recorder(calls, "first"))
    bus.subscribe("second", "A_HAPPENED", recorder(calls, "second"))
    bus.subscribe("first", "B_HAPPENED", recorder(calls, "first"))
    bus.start()
    bus.publish("t", "A_HAPPENED", 1)
    bus.publish("t", "B_HAPPENED", 2)
    bus.publish("t", "A_HAPPENED", 3)
    await bus.drain()
    await bus.stop()
    assert [(tag, data) for tag, data, _ in calls] == [
        ("first", 1),
        ("second", 1),
        ("first", 2),
        ("first", 3),
        ("second", 3),
    ]


async def test_publish_only_enqueues_and_returns_before_any_handler_runs():
    bus, _ = make_bus()
    calls = []
    bus.subscribe("r", "A_HAPPENED", recorder(calls, "r"))
    bus.publish("t", "A_HAPPENED", 1)
    assert (calls, bus.queue_depth) == ([], 1)
    await bus.drain()
    assert (len(calls), bus.queue_depth) == (1, 0)


async def test_async_handlers_are_awaited_and_their_intents_processed():
    bus, processor = make_bus()

    async def handler(data, context):
        await asyncio.sleep(0)
        return [AuditIntent("async_seen", {"n": data})]

    bus.subscribe("r", "A_HAPPENED", handler)
    bus.publish("t", "A_HAPPENED", 7)
    await bus.drain()
    assert [(r.action, r.details, r.role) for r in processor.audit_sink.records] == [
        ("async_seen", {"n": 7}, "r")
    ]


async def test_a_raising_handler_is_logged_and_counted_and_the_others_still_run():
    bus, processor = make_bus()
    failures: list[HandlerFailure] = []
    bus.failure_hooks.append(failures.append)

    def broken(data, context):
        raise KeyError("missing")

    bus.subscribe("broken", "A_HAPPENED", broken)
    bus.subscribe("good", "A_HAPPENED", lambda d, c: [AuditIntent("good_ran", {})])
    with capture_logs() as logs:
        event_id = bus.publish("t", "A_HAPPENED", {})
        await bus.drain()
    assert [r.action for r in processor.audit_sink.records] == ["good_ran"]
    assert bus.stats.failed[("broken", "A_HAPPENED")] == 1
    assert bus.stats.handled[("good", "A_HAPPENED")] == 1
    [entry] = [e for e in logs if e["event"] == "handler_failed"]
    assert (entry["role"], entry["event_type"], entry["event_id"]) == (
        "broken",
        "A_HAPPENED",
        event_id,
    )
    assert failures == [
        HandlerFailure(
            "broken",
            "A_HAPPENED",
            event_id,
            broken.__qualname__,
            "handler raised KeyError: 'missing'",
        )
    ]


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ("done", "handler returned str 'done'; expected a list of intents"),
        (AuditIntent("x", {}), "handler returned AuditIntent"),
        ({"intents": []}, "handler returned dict"),
    ],
)
async def test_a_handler_returning_a_non_list_is_a_counted_failure(result, error):
    bus, processor = make_bus()
    failures: list[HandlerFailure] = []
    bus.failure_hooks.append(failures.append)
    bus.subscribe("sloppy", "A_HAPPENED", lambda d, c: result)
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert failures[0].error.startswith(error)
    assert processor.audit_sink.records == []


async def test_valid_intents_next_to_garbage_still_run():
    bus, processor = make_bus()
    failures: list[HandlerFailure] = []
    bus.failure_hooks.append(failures.append)
    bus.subscribe("mixed", "A_HAPPENED", lambda d, c: [AuditIntent("kept", {}), "junk", None])
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert [r.action for r in processor.audit_sink.records] == ["kept"]
    assert [f.error for f in failures] == [
        "handler returned 'junk' in its list; expected only Intent objects"
    ]


async def test_returning_none_means_nothing_to_do():
    bus, _ = make_bus()
    bus.subscribe("quiet", "A_HAPPENED", lambda d, c: None)
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert (bus.stats.handled[("quiet", "A_HAPPENED")], bus.stats.failed) == (1, {})


async def test_an_async_handler_over_its_budget_is_cancelled_and_counted():
    bus, processor = make_bus(handler_timeout=0.01)
    cancelled = asyncio.Event()

    async def slow(data, context):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return []

    bus.subscribe("slow", "A_HAPPENED", slow)
    bus.subscribe("fast", "A_HAPPENED", lambda d, c: [AuditIntent("fast_ran", {})])
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert cancelled.is_set()
    assert bus.stats.timed_out[("slow", "A_HAPPENED")] == 1
    assert [r.action for r in processor.audit_sink.records] == ["fast_ran"]


@pytest.mark.parametrize("name", ["workflow_completed", "Timer-Expired", ""])
def test_malformed_event_names_are_rejected_at_subscribe_and_publish(name):
    bus, _ = make_bus()
    with pytest.raises(EventNameError):
        bus.subscribe("r", name, lambda d, c: [])
    with pytest.raises(EventNameError):
        bus.publish("t", name, {})
    assert (bus.queue_depth, bus.subscriptions()) == (0, [])


def test_subscribing_something_not_callable_is_an_error():
    bus, _ = make_bus()
    with pytest.raises(TypeError, match="role 'r' subscribed 'handle_x' to A_HAPPENED"):
        bus.subscribe("r", "A_HAPPENED", "handle_x")  # type: ignore[arg-type]


def test_publishing_into_a_full_queue_fails_loudly_and_keeps_the_queue():
    bus, _ = make_bus(max_queue=2)
    bus.publish("t", "A_HAPPENED", 1)
    bus.publish("t", "A_HAPPENED", 2)
    with pytest.raises(BusFullError, match=r"queue is full \(2 events\); event 'A_HAPPENED'"):
        bus.publish("t", "A_HAPPENED", 3)
    assert (bus.queue_depth, bus.stats.rejected_full) == (2, 1)


async def test_publish_from_another_thread_is_a_clear_error():
    bus, _ = make_bus()
    bus.start()
    errors = []

    def publish_elsewhere():
        try:
            bus.publish("thread", "A_HAPPENED", {})
        except WrongThreadError as err:
            errors.append(str(err))

    worker = threading.Thread(target=publish_elsewhere, name="worker")
    worker.start()
    worker.join()
    await bus.stop()
    assert errors == [
        "MessageBus.publish('A_HAPPENED') was called from thread 'worker', not the event "
        "loop's thread; use loop.call_soon_threadsafe(bus.publish, ...)"
    ]
    assert bus.stats.published == {}


async def test_intents_carry_the_event_id_and_chained_events_the_intent_id():
    bus, processor = make_bus()
    seen = []
    bus.subscribe("a", "STEP_ONE", lambda d, c: [EventIntent("STEP_TWO", {"n": d["n"] + 1})])

    def second(data, context):
        seen.append(context)
        return [AuditIntent("chain_end", data)]

    bus.subscribe("b", "STEP_TWO", second)
    first_id = bus.publish("t", "STEP_ONE", {"n": 1})
    await bus.drain()
    [record] = processor.audit_sink.records
    [context] = seen
    assert record.details == {"n": 2}
    assert record.parent_id == context.event_id
    assert context.parent_id.startswith("int-")
    assert context.parent_id != first_id


async def test_drain_waits_for_chained_events_with_a_running_dispatcher():
    bus, processor = make_bus()

    def countdown(data, context):
        if data["n"]:
            return [EventIntent("COUNTDOWN", {"n": data["n"] - 1})]
        return [AuditIntent("liftoff", {})]

    bus.subscribe("loop", "COUNTDOWN", countdown)
    bus.start()
    bus.publish("t", "COUNTDOWN", {"n": 20})
    await bus.drain()
    assert [r.action for r in processor.audit_sink.records] == ["liftoff"]
    assert bus.stats.published["COUNTDOWN"] == 21
    await bus.stop()


async def test_unsubscribe_role_removes_only_that_role():
    bus, _ = make_bus()
    calls = []
    bus.subscribe("gone", "A_HAPPENED", recorder(calls, "gone"))
    bus.subscribe("gone", "B_HAPPENED", recorder(calls, "gone"))
    bus.subscribe("kept", "A_HAPPENED", recorder(calls, "kept"))
    assert bus.unsubscribe_role("gone") == 2
    bus.publish("t", "A_HAPPENED", 1)
    bus.publish("t", "B_HAPPENED", 2)
    await bus.drain()
    assert [tag for tag, _, _ in calls] == ["kept"]


async def test_a_stopped_bus_refuses_new_events():
    bus, _ = make_bus()
    bus.start()
    await bus.stop()
    with pytest.raises(BusClosedError, match="the message bus is stopping"):
        bus.publish("t", "A_HAPPENED", {})


async def test_notification_intents_from_handlers_reach_the_processor():
    bus, processor = make_bus()
    bus.subscribe("n", "A_HAPPENED", lambda d, c: [NotificationIntent("hi", "log")])
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert processor.stats.processed[NotificationIntent.type_name()] == 1


async def test_a_bare_bus_carries_intents_out_with_its_own_processor():
    bus = MessageBus()
    bus.subscribe("r", "A_HAPPENED", lambda d, c: [AuditIntent("seen", {"n": d})])
    bus.publish("t", "A_HAPPENED", 5)
    await bus.drain()
    assert [(r.action, r.details) for r in bus.intent_processor.audit_sink.records] == [
        ("seen", {"n": 5})
    ]


@pytest.mark.parametrize(
    "make_error", [lambda: asyncio.CancelledError("not ours"), lambda: SystemExit(3)]
)
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_handler_raising_cancelled_or_exit_fails_alone_and_the_dispatcher_lives(
    make_error, is_async
):
    bus, processor = make_bus()

    def sync_raiser(data, context):
        raise make_error()

    async def async_raiser(data, context):
        raise make_error()

    bus.subscribe("odd", "A_HAPPENED", async_raiser if is_async else sync_raiser)
    bus.subscribe("good", "A_HAPPENED", lambda d, c: [AuditIntent("still_ran", {})])
    bus.start()
    bus.publish("t", "A_HAPPENED", {})
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    assert [r.action for r in processor.audit_sink.records] == ["still_ran", "still_ran"]
    assert bus.stats.failed[("odd", "A_HAPPENED")] == 2
    await bus.stop()


async def test_the_same_intent_object_returned_twice_is_carried_out_twice():
    bus, processor = make_bus()
    shared = AuditIntent("constant", {})
    bus.subscribe("lazy", "A_HAPPENED", lambda d, c: [shared, shared])
    first = bus.publish("t", "A_HAPPENED", {})
    second = bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    records = processor.audit_sink.records
    assert [r.parent_id for r in records] == [first, first, second, second]
    assert len({r.intent_id for r in records}) == 4


async def test_intents_for_an_event_with_an_idempotency_key_get_the_same_ids_each_time():
    bus, processor = make_bus()
    shared = AuditIntent("constant", {})
    bus.subscribe("timer", "A_HAPPENED", lambda d, c: [AuditIntent("first", {}), shared])
    bus.subscribe("other", "A_HAPPENED", lambda d, c: [AuditIntent("third", {})])
    for _ in range(2):
        bus.publish("t", "A_HAPPENED", {}, idempotency_key="timer:tmr-1")
    bus.publish("t", "A_HAPPENED", {})
    await bus.drain()
    ids = [r.intent_id for r in processor.audit_sink.records]
    assert ids[:6] == ["timer:tmr-1:timer:0", "timer:tmr-1:timer:1", "timer:tmr-1:other:0"] * 2
    assert ids[6].startswith("int-") and ids[8].startswith("int-")


async def test_a_handler_refusing_its_event_data_is_one_warning_not_a_failure():
    bus, _ = make_bus()
    failures: list[HandlerFailure] = []
    bus.failure_hooks.append(failures.append)

    def strict(data, context):
        raise EventDataError("A_HAPPENED data 'n' must be a whole number, got str")

    bus.subscribe("strict", "A_HAPPENED", strict)
    with capture_logs() as logs:
        event_id = bus.publish("t", "A_HAPPENED", {"n": "soon"})
        await bus.drain()
    assert failures == [] and bus.stats.failed == {}
    assert bus.stats.rejected_data == {("strict", "A_HAPPENED"): 1}
    assert [e for e in logs if e["log_level"] != "debug"] == [
        {
            "event": "event_data_rejected",
            "log_level": "warning",
            "role": "strict",
            "event_type": "A_HAPPENED",
            "event_id": event_id,
            "handler": strict.__qualname__,
            "error": "A_HAPPENED data 'n' must be a whole number, got str",
        }
    ]
