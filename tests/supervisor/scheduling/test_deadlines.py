"""Deadlines: one handle ``lead`` before the earliest, every deadline up to the horizon at once."""

from supervisor.scheduling.deadlines import Deadlines
from tests.fakes.clock import START, FakeClock, SteppingClock

LEAD = 0.02


def make() -> tuple[FakeClock, Deadlines, list[dict[str, float]]]:
    clock = FakeClock()
    woken: list[dict[str, float]] = []
    return clock, Deadlines(clock, woken.append, lead=LEAD), woken


async def test_a_wake_up_comes_lead_before_the_earliest_and_takes_the_horizon_in_order() -> None:
    clock, deadlines, woken = make()
    for key, at in [("c", 10.03), ("a", 10.0), ("b", 10.02), ("later", 10.05)]:
        deadlines.arm(key, START + at)
    assert deadlines.next_wake() == START + 10.0 - LEAD
    await clock.advance(10.0 - LEAD - 0.001)
    assert woken == []
    await clock.advance(0.001)
    assert woken == [{"a": START + 10.0, "b": START + 10.02}]  # up to lead after the earliest
    assert len(deadlines) == 2 and "a" not in deadlines and deadlines.earliest == START + 10.03
    await clock.advance(1)
    assert [list(due) for due in woken] == [["a", "b"], ["c", "later"]]
    assert deadlines.next_wake() is None and clock.pending == 0


async def test_arming_again_replaces_the_deadline_and_disarming_moves_the_handle() -> None:
    clock, deadlines, woken = make()
    deadlines.arm("a", START + 5)
    deadlines.arm("b", START + 8)
    deadlines.arm("a", START + 20)  # re-armed later: its old entry is stale
    assert deadlines.earliest == START + 8
    deadlines.disarm(["b", "unknown"])
    assert deadlines.earliest == START + 20 and clock.pending == 1
    await clock.advance(30)
    assert woken == [{"a": START + 20}]


async def test_a_wake_up_with_nothing_due_only_points_the_handle_again() -> None:
    clock = SteppingClock()
    woken: list[dict[str, float]] = []
    deadlines = Deadlines(clock, woken.append, lead=LEAD)
    deadlines.arm("a", START + 5)
    clock.step(-60)  # the wall clock went back before the handle fired
    await clock.advance(5)
    assert woken == [{}] and "a" in deadlines and deadlines.earliest == START + 5
    await clock.advance(60)
    assert woken == [{}, {"a": START + 5}]


async def test_many_re_arms_fire_once_at_the_last_deadline_and_clear_cancels_the_handle() -> None:
    clock, deadlines, woken = make()
    for n in range(200):
        deadlines.arm("same", START + 300 - n)
    deadlines.arm_all({"x": START + 50, "y": START + 60})
    deadlines.disarm(["x"])
    await clock.advance(150)
    assert woken == [{"y": START + 60}, {"same": START + 101}]
    deadlines.arm("z", START + 200)
    deadlines.clear()
    assert len(deadlines) == 0 and deadlines.earliest is None and clock.pending == 0
    await clock.advance(400)
    assert len(woken) == 2
