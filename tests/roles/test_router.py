"""The router role: USER_REQUEST becomes a "route" workflow for the same channel and user."""

import pytest

from common.errors import EventDataError
from common.intents import NotificationIntent, WorkflowIntent
from common.testing import make_context
from roles.router import handle_user_request


def test_a_request_becomes_a_route_workflow_for_its_thread() -> None:
    data = {"text": " remind me in 20 minutes ", "channel_id": "slack:C1/17.5", "user_id": "U7"}
    assert handle_user_request(data, make_context(event_type="USER_REQUEST")) == [
        WorkflowIntent(
            workflow_type="route",
            parameters={
                "request": "remind me in 20 minutes",
                "channel_id": "slack:C1/17.5",
                "user_id": "U7",
            },
        )
    ]


def test_plain_text_takes_channel_and_user_from_the_context() -> None:
    context = make_context(channel_id="console", user_id="U2")
    assert handle_user_request("hi", context) == [
        WorkflowIntent(
            workflow_type="route",
            parameters={"request": "hi", "channel_id": "console", "user_id": "U2"},
        )
    ]


def test_an_explicit_role_is_passed_on() -> None:
    (intent,) = handle_user_request({"text": "x", "role": "timer"}, make_context())
    assert intent.parameters["role"] == "timer"


def test_an_empty_request_gets_a_reply_asking_for_text() -> None:
    data = {"text": "  ", "channel_id": "slack:C1/17.5", "user_id": "U7"}
    assert handle_user_request(data, make_context()) == [
        NotificationIntent(
            message="Your request had no text; write what you would like me to do.",
            channel="slack:C1/17.5",
            user_id="U7",
        )
    ]


def test_a_request_without_text_is_answered_where_it_came_from() -> None:
    context = make_context(channel_id="console", user_id="U2")
    (reply,) = handle_user_request(None, context)
    assert (type(reply), reply.channel, reply.user_id) == (NotificationIntent, "console", "U2")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"text": "hi", "role": ["timer"]}, "USER_REQUEST data 'role' must be text, got list"),
        ({"text": "hi", "channel_id": 7}, "USER_REQUEST data 'channel_id' must be text, got int"),
        ({"text": "hi", "user_id": {}}, "USER_REQUEST data 'user_id' must be text, got dict"),
    ],
)
def test_a_request_with_a_field_of_the_wrong_type_is_refused(data, error) -> None:
    with pytest.raises(EventDataError) as refused:
        handle_user_request(data, make_context())
    assert str(refused.value) == error
