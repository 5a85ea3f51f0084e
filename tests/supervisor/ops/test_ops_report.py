"""/status, /readyz and /metrics report every part: store, timers, outbox, Slack, roles, lag."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from common.events import TIMER_EXPIRED
from supervisor.config import Config
from supervisor.store.sqlite import Store
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack, Fault
from tests.supervisor.http_daemon import make_config, running_daemon, write_role
from tests.supervisor.ops.test_metrics import scrape, value

BOT, APP = "xoxb-test", "xapp-test"
ROLES = Path(__file__).resolve().parents[3] / "roles"


async def get_json(daemon, path: str) -> tuple[int, Any]:
    async with daemon.session.get(daemon.url(path)) as response:
        return response.status, await response.json()


async def test_status_reports_pending_timers_outbox_dead_letters_and_loop_lag(tmp_path):
    async with running_daemon(make_config(tmp_path), clock=FakeClock()) as daemon:
        await daemon.supervisor.timers.create(duration=60, label="tea")
        monitor = daemon.supervisor.loop_lag
        await monitor.next_sample()  # the next one is at least an interval away
        monitor.observe(0.0123)
        _, status = await get_json(daemon, "/status")
    assert status.pop("loop_lag_ms") == 12.3
    assert {key: status[key] for key in ("pending_timers", "outbox_depth", "dead_letters")} == {
        "pending_timers": 1,
        "outbox_depth": 0,
        "dead_letters": 0,
    }


async def test_readyz_checks_the_store(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        _, body = await get_json(daemon, "/readyz")
    assert body["checks"]["store"] == "ok"


def test_a_closed_store_says_why_it_is_not_ready(tmp_path):
    store = Store(tmp_path / "i.db")
    assert store.not_ready() is None
    store.close()
    assert store.not_ready() == (
        f"the store at {str(tmp_path / 'i.db')!r} cannot be read "
        "(Cannot operate on a closed database.)"
    )


async def test_metrics_count_pending_timers_and_the_lateness_of_fired_ones(tmp_path):
    clock = FakeClock()
    async with running_daemon(make_config(tmp_path), clock=clock) as daemon:
        timers = daemon.supervisor.timers
        # a timer counts as fired once a handler took its expiry
        daemon.supervisor.message_bus.subscribe("test", "TIMER_EXPIRED", lambda data, ctx: [])
        await timers.create(duration=10, label="soon")
        await timers.create(duration=100, label="later")
        before = await scrape(daemon)
        await clock.advance(12)  # the FakeClock fires the first timer at its deadline
        await daemon.supervisor.message_bus.drain()
        after = await scrape(daemon)
    assert (value(before, "intentd_timers_pending"), value(after, "intentd_timers_pending")) == (
        2,
        1,
    )
    assert value(after, "intentd_timer_lateness_seconds_count") == 1
    assert value(after, "intentd_timer_lateness_seconds_bucket", le="0.001") == 1


async def test_metrics_report_the_loop_lag(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        daemon.supervisor.loop_lag.observe(0.25)
        samples = await scrape(daemon)
    assert (
        value(samples, "intentd_loop_lag_seconds"),
        value(samples, "intentd_loop_lag_max_seconds"),
        value(samples, "intentd_loop_lag_reports_total"),
    ) == (0.25, 0.25, 1)


async def test_metrics_count_role_load_reload_failures_and_quarantines(tmp_path):
    config = make_config(tmp_path)
    roles = config.roles.directory
    write_role(roles, "broken", "raise RuntimeError('nope')\n")
    async with running_daemon(config) as daemon:
        sup = daemon.supervisor
        echo = roles / "echo.py"
        echo.write_text(echo.read_text() + "\nROLE_CONFIG['version'] = 'one'\n")
        sup.reload()
        await sup.roles_rescanned()
        sup.role_registry.quarantine("echo", 5, 60.0, "boom")
        samples = await scrape(daemon)
    assert {
        name: value(samples, name)
        for name in (
            "intentd_role_load_failures_total",
            "intentd_role_reload_failures_total",
            "intentd_role_quarantines_total",
            "intentd_roles_failing",
            "intentd_roles_quarantined",
        )
    } == {
        "intentd_role_load_failures_total": 1,
        "intentd_role_reload_failures_total": 1,
        "intentd_role_quarantines_total": 1,
        "intentd_roles_failing": 2,
        "intentd_roles_quarantined": 1,
    }


# -- with Slack: readiness follows the Socket Mode connection; the outbox is counted ----------


@pytest.fixture
async def slack() -> Any:
    async with FakeSlack(bot_token=BOT, app_token=APP, channels={"C0GEN": "general"}) as fake:
        yield fake


def slack_config(tmp_path: Path, slack: FakeSlack) -> Config:
    """Return a config with the echo and timer roles and Slack at the fake server."""
    base = make_config(tmp_path, token=None)
    (base.roles.directory / "timer.py").symlink_to(ROLES / "timer.py")
    return base.model_copy(
        update={
            "slack": base.slack.model_copy(
                update={
                    "enabled": True,
                    "bot_token": BOT,
                    "app_token": APP,
                    "base_url": slack.base_url,
                    "reconnect_interval": 0.05,
                }
            ),
            "storage": base.storage.model_copy(update={"path": tmp_path / "intentd.db"}),
        }
    )


def expired(label: str) -> dict[str, str]:
    return {"label": label, "channel_id": "slack:C0GEN"}


async def settled(supervisor: Supervisor) -> None:
    assert supervisor.outbox is not None
    async with asyncio.timeout(5):
        await supervisor.message_bus.drain()
        await supervisor.outbox.wait_idle()


async def test_readyz_is_503_while_slack_is_away(tmp_path, slack):
    async with running_daemon(slack_config(tmp_path, slack)) as daemon:
        await slack.wait_connected(1)
        ok_status, ok = await get_json(daemon, "/readyz")
        opened = [call.method for call in slack.calls].count("apps.connections.open")
        slack.down()
        await slack.drop_connections()
        await slack.wait_calls("apps.connections.open", opened + 1)  # the client reconnects
        away_status, away = await get_json(daemon, "/readyz")
    assert (ok_status, ok["checks"]["slack"]) == (200, "ok")
    assert (away_status, away["checks"]["slack"]) == (
        503,
        "the Slack Socket Mode connection is down; it reconnects with backoff, waiting 0.05 s "
        "doubling up to 300 s between attempts",
    )


async def test_metrics_and_status_count_outbox_deliveries_and_dead_letters(tmp_path, slack):
    clock = FakeClock()
    async with running_daemon(slack_config(tmp_path, slack), clock=clock) as daemon:
        sup = daemon.supervisor
        sup.message_bus.publish("test", TIMER_EXPIRED, expired("tea"))
        await settled(sup)
        slack.fail_next("chat.postMessage", Fault.error("channel_not_found"))
        sup.message_bus.publish("test", TIMER_EXPIRED, expired("x"))
        await settled(sup)
        await clock.advance(5)  # past the channel's pacing
        await settled(sup)
        samples = await scrape(daemon)
        _, status = await get_json(daemon, "/status")
    assert (status["outbox_depth"], status["dead_letters"]) == (0, 1)
    assert value(samples, "intentd_outbox_deliveries_total", outcome="dead_lettered") == 1
    assert value(samples, "intentd_outbox_deliveries_total", outcome="delivered") == 1
    assert value(samples, "intentd_outbox_dead_letters") == 1
    assert value(samples, "intentd_outbox_depth") == 0


async def test_a_retried_delivery_is_counted(tmp_path, slack):
    clock = FakeClock()
    async with running_daemon(slack_config(tmp_path, slack), clock=clock) as daemon:
        sup = daemon.supervisor
        slack.fail_next("chat.postMessage", Fault.http_status(500))
        sup.message_bus.publish("test", TIMER_EXPIRED, expired("tea"))
        await settled(sup)
        await clock.advance(60)
        await settled(sup)
        samples = await scrape(daemon)
    assert value(samples, "intentd_outbox_retries_total") == 1
    assert [post.text for post in slack.posts] == ["Timer expired: tea"]
