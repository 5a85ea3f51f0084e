"""What the bus reports about mistakes no static check can see: None returned, no subscriber."""

from structlog.testing import capture_logs

from tests.factories import make_bus


def forgets_its_return(data, context):
    intents = [data]  # noqa: F841


async def forgets_its_return_too(data, context):
    intents = [data]  # noqa: F841


async def test_handler_returning_none_is_logged_once_per_handler_with_its_line_and_the_fix():
    bus, _ = make_bus()
    bus.subscribe("quiet", "A_HAPPENED", forgets_its_return)
    bus.subscribe("quiet", "A_HAPPENED", forgets_its_return_too)
    with capture_logs() as logs:
        for _ in range(3):
            bus.publish("t", "A_HAPPENED", {})
        await bus.drain()
    reports = [(e["handler"], e["where"]) for e in logs if e["event"] == "handler_returned_none"]
    assert reports == [
        ("forgets_its_return", f"{__file__}:{forgets_its_return.__code__.co_firstlineno}"),
        ("forgets_its_return_too", f"{__file__}:{forgets_its_return_too.__code__.co_firstlineno}"),
    ]
    assert {e["log_level"] for e in logs if e["event"] == "handler_returned_none"} == {"warning"}
    assert bus.stats.handled[("quiet", "A_HAPPENED")] == 6


async def test_handler_returning_an_empty_list_is_not_reported():
    bus, _ = make_bus()
    bus.subscribe("quiet", "A_HAPPENED", lambda data, context: [])
    with capture_logs() as logs:
        bus.publish("t", "A_HAPPENED", {})
        await bus.drain()
    assert [e for e in logs if e["event"] == "handler_returned_none"] == []


async def test_event_without_subscriber_is_counted_per_type_and_logged_once_per_type_at_info():
    bus, _ = make_bus()
    bus.subscribe("r", "HEARD", lambda data, context: [])
    with capture_logs() as logs:
        for event_type in ("DEPLOY_FINISHED", "DEPLOY_FINISHED", "HEARD", "DEPLOY_STARTED"):
            bus.publish("http", event_type, {}, source="http")
        await bus.drain()
    assert dict(bus.stats.unsubscribed) == {"DEPLOY_FINISHED": 2, "DEPLOY_STARTED": 1}
    assert [
        (e["event_type"], e["source"], e["log_level"])
        for e in logs
        if e["event"] == "event_unsubscribed"
    ] == [("DEPLOY_FINISHED", "http", "info"), ("DEPLOY_STARTED", "http", "info")]


async def test_a_daemon_event_nobody_takes_is_counted_but_not_logged():
    bus, _ = make_bus()
    with capture_logs() as logs:
        bus.publish("supervisor", "HEARTBEAT_TICK", {"timestamp": 0}, source="supervisor")
        await bus.drain()
    assert dict(bus.stats.unsubscribed) == {"HEARTBEAT_TICK": 1}
    assert [e for e in logs if e["event"] == "event_unsubscribed"] == []
