from common.message_bus import HandlerFailure
from llm_provider.role_quarantine import FailureWindow
from tests.fakes.clock import FakeClock


def failure(role: str = "echo", error: str = "boom") -> HandlerFailure:
    return HandlerFailure(role, "PING", "evt-1", "handle_ping", error)


def make_window(limit: int = 3, window: float = 10.0):
    clock = FakeClock()
    tripped: list[tuple] = []
    return clock, tripped, FailureWindow(limit, window, clock.time, lambda *a: tripped.append(a))


def test_limit_failures_within_the_window_trip_once_with_the_last_error():
    _, tripped, window = make_window()
    for error in ("a", "b", "c", "d", "e"):  # the trip starts the history afresh: d, e are 2
        window.record(failure(error=error))
    assert tripped == [("echo", 3, 10.0, "c")]


def test_failures_older_than_the_window_are_forgotten():
    clock, tripped, window = make_window()
    window.record(failure())
    window.record(failure())
    clock.now += 10.0
    window.record(failure())
    window.record(failure())
    assert tripped == []


def test_roles_are_counted_apart():
    _, tripped, window = make_window(limit=2)
    window.record(failure("a"))
    window.record(failure("b"))
    assert tripped == []
