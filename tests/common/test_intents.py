from dataclasses import dataclass

import pytest

from common.intents import (
    AuditIntent,
    EventIntent,
    Intent,
    NotificationIntent,
    WorkflowIntent,
)


def test_notification_is_valid_with_message_channel_and_known_priority():
    assert NotificationIntent("deploy done", "console", priority="high").validate() is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message": "", "channel": "console"},
        {"message": "   ", "channel": "console"},
        {"message": "hi", "channel": ""},
        {"message": "hi", "channel": "console", "priority": "urgent"},
    ],
)
def test_notification_is_invalid_without_text_channel_or_known_priority(kwargs):
    assert NotificationIntent(**kwargs).validate() is False


def test_notification_problem_names_the_field_and_value():
    assert NotificationIntent("hi", "console", priority="urgent").problems() == [
        "NotificationIntent.priority must be one of ('low', 'medium', 'high'), got 'urgent'"
    ]


def test_audit_and_workflow_validate_their_fields():
    assert AuditIntent("timer_set", {"id": 1}).validate() is True
    assert AuditIntent("", {}).validate() is False
    assert AuditIntent("x", "not a dict").validate() is False  # type: ignore[arg-type]
    assert WorkflowIntent("timer", {"request": "hi"}).validate() is True
    assert WorkflowIntent("timer", {}, priority="high").validate() is False  # type: ignore[arg-type]


def test_event_intent_rejects_a_lowercase_event_name():
    assert EventIntent("workflow_completed", {}).problems() == [
        "EventIntent.event_type 'workflow_completed' is not an UPPER_SNAKE_CASE name; "
        "use 'WORKFLOW_COMPLETED'"
    ]


def test_created_at_is_filled_in_and_left_out_of_equality():
    first, second = NotificationIntent("a", "console"), NotificationIntent("a", "console")
    assert first.created_at is not None
    assert first.intent_id != second.intent_id
    assert first == second


def test_base_intent_cannot_be_instantiated():
    with pytest.raises(TypeError):
        Intent()  # type: ignore[abstract]


def test_a_role_intent_can_declare_required_fields():
    @dataclass
    class PingIntent(Intent):
        target: str
        count: int = 1

        def validate(self) -> bool:
            return bool(self.target)

    ping = PingIntent("db")
    assert (ping.target, ping.count, ping.validate()) == ("db", 1, True)
    assert PingIntent("").problems() == [
        "PingIntent.validate() returned False for {'target': '', 'count': 1}"
    ]
