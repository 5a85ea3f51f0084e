"""The transition tables of durable records, tested on their own."""

import pytest

from common.errors import IllegalTransition
from supervisor.delivery.outbox import OUTBOX_STATES, OutboxState
from supervisor.scheduling.timers import TIMER_STATES, TimerState


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (TimerState.PENDING, TimerState.FIRED),
        (TimerState.PENDING, TimerState.CANCELLED),
    ],
)
def test_a_pending_timer_may_fire_or_be_cancelled(old: TimerState, new: TimerState) -> None:
    assert TIMER_STATES.check("tmr-1", old, new) is new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (TimerState.FIRED, TimerState.PENDING),
        (TimerState.FIRED, TimerState.CANCELLED),
        (TimerState.CANCELLED, TimerState.FIRED),
        (TimerState.PENDING, TimerState.PENDING),
    ],
)
def test_a_finished_timer_never_moves_again(old: TimerState, new: TimerState) -> None:
    with pytest.raises(IllegalTransition):
        TIMER_STATES.check("tmr-1", old, new)


def test_an_illegal_move_names_the_record_the_states_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as caught:
        OUTBOX_STATES.check(7, OutboxState.DELIVERED, OutboxState.PENDING)
    assert str(caught.value) == (
        "notification 7 cannot go from 'delivered' to 'pending'; allowed from 'delivered': none"
    )


def test_a_dead_letter_may_only_go_back_in_line() -> None:
    assert [s for s in OutboxState if OUTBOX_STATES.allows(OutboxState.DEAD, s)] == [
        OutboxState.PENDING
    ]


def test_a_pending_notification_ends_delivered_or_dead() -> None:
    assert [s for s in OutboxState if OUTBOX_STATES.allows(OutboxState.PENDING, s)] == [
        OutboxState.DELIVERED,
        OutboxState.DEAD,
    ]
