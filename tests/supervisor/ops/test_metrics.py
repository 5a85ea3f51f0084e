"""/metrics over real HTTP: the figures move as events, intents and failures happen."""

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from common.context import EventContext
from common.message_bus import Subscription
from supervisor.ops.metrics import HandlerDurations, Metrics, gauge
from tests.fakes.clock import FakeClock
from tests.supervisor.http_daemon import make_config, running_daemon


async def scrape(daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with daemon.session.get(daemon.url("/metrics")) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def value(samples, name: str, **labels: str) -> float:
    """Return one sample's value; a sample the scrape does not have fails the test."""
    assert key(name, **labels) in samples, f"no sample {name}{labels} in the scrape"
    return samples[key(name, **labels)]


async def post(daemon, event_type: str, data: dict) -> None:
    async with daemon.session.post(daemon.url(f"/events/{event_type}"), json=data) as response:
        assert response.status == 202
    await daemon.supervisor.message_bus.drain()


async def test_a_handled_event_counts_publish_handling_duration_and_intents(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        before = await scrape(daemon)
        await post(daemon, "PING", {"n": 1})
        after = await scrape(daemon)
    by_role = {"role": "echo", "event_type": "PING"}
    expected = [
        ("intentd_events_published_total", {"event_type": "PING"}, 1),
        ("intentd_events_handled_total", by_role, 1),
        ("intentd_handler_duration_seconds_count", by_role, 1),
        (
            "intentd_intents_processed_total",
            {"intent_type": "common.intents.NotificationIntent"},
            1,
        ),
        ("intentd_intents_processed_total", {"intent_type": "common.intents.AuditIntent"}, 1),
    ]
    changes = [
        (name, labels, value(after, name, **labels) - before.get(key(name, **labels), 0.0))
        for name, labels, _ in expected
    ]
    assert changes == expected
    assert key("intentd_events_failed_total", **by_role) not in after  # no failure counted


async def test_an_event_no_role_subscribes_to_is_counted_by_type(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        await post(daemon, "DEPLOY_FINSHED", {})
        await post(daemon, "DEPLOY_FINSHED", {})
        await post(daemon, "PING", {})
        samples = await scrape(daemon)
    unheard = "intentd_events_unsubscribed_total"
    assert (
        value(samples, unheard, event_type="DEPLOY_FINSHED"),
        key(unheard, event_type="PING") in samples,
    ) == (2, False)


async def test_a_raising_handler_counts_as_a_failed_event(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        await post(daemon, "BOOM", {})
        samples = await scrape(daemon)
    assert value(samples, "intentd_events_failed_total", role="echo", event_type="BOOM") == 1
    assert key("intentd_events_handled_total", role="echo", event_type="BOOM") not in samples


async def test_an_invalid_intent_counts_as_a_failed_intent(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        await post(daemon, "BAD_INTENT", {})
        samples = await scrape(daemon)
    name = "common.intents.NotificationIntent"
    assert value(samples, "intentd_intents_failed_total", intent_type=name) == 1


async def test_http_requests_are_counted_by_route_and_status(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        await post(daemon, "PING", {})
        async with daemon.session.post(daemon.url("/events/ping"), json={}):
            pass
        async with daemon.session.get(daemon.url("/no/such/route")):
            pass
        samples = await scrape(daemon)
    route = "/events/{event_type}"
    assert value(samples, "intentd_http_requests_total", route=route, status="202") == 1
    assert value(samples, "intentd_http_requests_total", route=route, status="422") == 1
    assert value(samples, "intentd_http_requests_total", route="<unknown>", status="404") == 1


async def test_supervisor_gauges_report_roles_queue_and_uptime(tmp_path):
    clock = FakeClock()
    async with running_daemon(make_config(tmp_path), clock=clock) as daemon:
        await clock.advance(12)
        samples = await scrape(daemon)
    assert value(samples, "intentd_roles_loaded") == 1
    assert value(samples, "intentd_bus_queue_depth") == 0
    assert value(samples, "intentd_workflows_active") == 0
    assert value(samples, "intentd_uptime_seconds") == 12


async def test_a_contributed_source_appears_in_the_scrape(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        daemon.supervisor.metrics.add_source(
            "timers", lambda: [gauge("intentd_timers_pending", "Timers waiting.", 3)]
        )
        samples = await scrape(daemon)
    assert value(samples, "intentd_timers_pending") == 3


def test_a_failing_source_is_left_out_and_the_others_still_report():
    metrics = Metrics()
    metrics.add_source("broken", lambda: [1 / 0])
    metrics.add_source("fine", lambda: [GaugeMetricFamily("intentd_fine", "Fine.", value=1)])
    text = metrics.render().decode()
    assert "intentd_fine 1.0" in text


def test_two_daemons_in_one_process_have_separate_registries():
    first, second = Metrics(), Metrics()
    first.add_source("same", lambda: [gauge("intentd_same", "Same name.", 1)])
    second.add_source("same", lambda: [gauge("intentd_same", "Same name.", 2)])
    assert "intentd_same 1.0" in first.render().decode()
    assert "intentd_same 2.0" in second.render().decode()


def test_handler_durations_fill_cumulative_buckets():
    durations = HandlerDurations(buckets=(0.01, 0.1))
    sub = Subscription("echo", "PING", lambda data, context: None, "handler")
    context = EventContext("evt-1", "PING", "test", 0.0)
    for seconds in (0.005, 0.01, 0.05, 2.0):
        durations(sub, context, seconds, None)
    [family] = durations.metric_families()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples == {
        ("intentd_handler_duration_seconds_bucket", "0.01"): 2,
        ("intentd_handler_duration_seconds_bucket", "0.1"): 3,
        ("intentd_handler_duration_seconds_bucket", "+Inf"): 4,
        ("intentd_handler_duration_seconds_count", None): 4,
        ("intentd_handler_duration_seconds_sum", None): 2.065,
    }


async def test_workflow_states_and_llm_tokens_are_scraped(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        engine = daemon.supervisor.workflow_engine
        engine.finished["completed"] += 2
        engine.tokens["timer", "input"] += 140
        samples = await scrape(daemon)
    assert value(samples, "intentd_workflows_finished_total", state="completed") == 2
    assert value(samples, "intentd_llm_tokens_total", role="timer", direction="input") == 140
