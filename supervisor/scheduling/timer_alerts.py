"""What the admin channel is told when a timer's reminder keeps failing to be delivered."""

from typing import Any

from common.intents import Intent, NotificationIntent
from common.types import EventHandler


def make_timer_alerter(channel: str) -> EventHandler:
    """Return an event handler that turns TIMER_DELIVERY_FAILING into an alert on ``channel``."""

    def alert_timer_failing(event_data: Any, context: Any) -> list[Intent]:
        data = event_data if isinstance(event_data, dict) else {}
        message = (
            f"timer {data.get('timer_id')!r} ({data.get('label')!r}, due {data.get('due')}) "
            f"was not delivered after {data.get('attempts')} attempts; intentd keeps retrying, "
            "check that the timer role is loaded ('intentd roles') and the logs for "
            "timer_delivery_failed"
        )
        return [NotificationIntent(message=message, channel=channel, priority="high")]

    return alert_timer_failing
