"""The admin channel hears about a timer whose reminder keeps failing."""

import io
from pathlib import Path

from common.events import TIMER_DELIVERY_FAILING
from common.intents import NotificationIntent
from supervisor.config import Config
from supervisor.scheduling.timer_alerts import make_timer_alerter
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock


def test_the_alert_names_the_timer_and_goes_to_the_admin_channel_with_high_priority() -> None:
    alert = make_timer_alerter("ops")
    data = {"timer_id": "tmr-1", "label": "tea", "due": "2027-01-15T08:00:05Z", "attempts": 5}
    [intent] = alert(data, None)
    assert isinstance(intent, NotificationIntent)
    assert (intent.channel, intent.priority) == ("ops", "high")
    assert intent.message.startswith(
        "timer 'tmr-1' ('tea', due 2027-01-15T08:00:05Z) was not delivered after 5 attempts"
    )


async def test_a_daemon_without_a_timer_role_alerts_the_admin_channel(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    config = Config.model_validate(
        {
            "roles": {"directory": str(tmp_path / "roles")},
            "storage": {"path": str(tmp_path / "intentd.db")},
            "http": {"enabled": False},
            "timers": {"retry_initial": 1, "alert_after_attempts": 2},
        }
    )
    clock, out = FakeClock(), io.StringIO()
    supervisor = Supervisor(config=config, clock=clock, stdout=out)
    async with supervisor.running():
        assert supervisor.timers is not None
        timer_id = await supervisor.timers.create(duration=1, label="tea")
        for _ in range(4):
            await clock.advance(1)
            await supervisor.message_bus.drain()
        assert [s.role for s in supervisor.message_bus.subscriptions(TIMER_DELIVERY_FAILING)]
        timer = await supervisor.timers.get(timer_id)
        assert timer is not None and (timer.state, timer.attempts) == ("pending", 3)
    assert f"timer {timer_id!r} ('tea'" in out.getvalue()
