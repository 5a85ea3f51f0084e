import pytest

from common.errors import EventNameError
from common.events import TIMER_EXPIRED, check_event_type


@pytest.mark.parametrize("name", [TIMER_EXPIRED, "A", "HTTP2_READY", "X_1_Y"])
def test_upper_snake_case_names_pass(name):
    assert check_event_type(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("timer_expired", "use 'TIMER_EXPIRED'"),
        ("Timer-Expired", "use 'TIMER_EXPIRED'"),
        ("TIMER__EXPIRED", "use 'TIMER_EXPIRED'"),
        ("_TIMER", "use 'TIMER'"),
        ("", "such as 'TIMER_EXPIRED'"),
        ("1ST_EVENT", "such as 'TIMER_EXPIRED'"),
        (None, "such as 'TIMER_EXPIRED'"),
        ("A" * 129, "at most 128 characters"),
    ],
)
def test_malformed_names_are_rejected_with_a_fix(name, message):
    with pytest.raises(EventNameError, match=message):
        check_event_type(name)


@pytest.mark.parametrize("name", [["TIMER_EXPIRED"], {"a": 1}, 42])
def test_a_name_that_is_not_text_is_an_event_name_error(name):
    with pytest.raises(EventNameError, match="is not an UPPER_SNAKE_CASE name"):
        check_event_type(name)
