"""Prometheus metrics, read from the parts' own plain counters when ``/metrics`` is scraped.

Rules kept here:
- The core keeps plain counters (``bus.stats``, ``processor.stats``) that cost nothing until
  scraped; a source turns them into metric families at scrape time.
- Each daemon has its own ``CollectorRegistry``: two daemons in one process never share a metric.
- A part contributes with one line, ``metrics.add_source("timers", timers.metric_families)``, where
  the callable yields ``prometheus_client`` metric families (built with ``counter``/``gauge``).
  A source that raises is logged and left out of that scrape; the others are still reported.
- Durations are counted into plain histogram buckets as they happen, with no lock.
"""

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from common.context import EventContext
from common.events import ROLE_FAILED, ROLE_QUARANTINED, ROLE_RELOAD_FAILED
from common.intent_processor import IntentProcessor, ProcessorStats
from common.message_bus import BusStats, MessageBus, Subscription
from llm_provider.role_registry import RoleRegistry
from llm_provider.workflow_engine import WorkflowEngine
from supervisor.delivery.outbox import Outbox
from supervisor.event_intake import EventIntake
from supervisor.ops.loop_lag import LoopLagMonitor
from supervisor.scheduling.timers import TimerService

log = structlog.get_logger("intentd.metrics")

MetricSource = Callable[[], Iterable[Metric]]
CONTENT_TYPE = CONTENT_TYPE_LATEST
HANDLER_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 60.0, 3600.0)


class Metrics:
    """One daemon's metrics registry, filled by scrape-time sources."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._sources: dict[str, MetricSource] = {}
        self.registry.register(_SourcesCollector(self._sources))

    def add_source(self, name: str, source: MetricSource) -> None:
        """Add ``source()``'s metric families to every scrape (replacing a source of that name)."""
        self._sources[name] = source

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _SourcesCollector(Collector):
    def __init__(self, sources: dict[str, MetricSource]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for name, source in list(self._sources.items()):
            try:
                families = list(source())
            except Exception as err:
                log.error("metrics_source_failed", source=name, error=str(err), exc_info=err)
                continue
            yield from families


def counter(
    name: str, documentation: str, labelnames: Sequence[str], values: Mapping[Any, float]
) -> CounterMetricFamily:
    """Return a counter family; ``values`` maps a label value (or tuple of them) to a count."""
    family = CounterMetricFamily(name, documentation, labels=labelnames)
    for key, value in sorted(values.items(), key=lambda item: str(item[0])):
        family.add_metric(_label_values(key), value)
    return family


def gauge(
    name: str,
    documentation: str,
    value: float | None = None,
    *,
    labelnames: Sequence[str] = (),
    values: Mapping[Any, float] | None = None,
) -> GaugeMetricFamily:
    """Return a gauge family with one ``value`` or labelled ``values``."""
    if not labelnames:
        return GaugeMetricFamily(name, documentation, value=value)
    family = GaugeMetricFamily(name, documentation, labels=labelnames)
    for key, item in sorted((values or {}).items(), key=lambda pair: str(pair[0])):
        family.add_metric(_label_values(key), item)
    return family


def _label_values(key: Any) -> list[str]:
    return [str(part) for part in key] if isinstance(key, tuple) else [str(key)]


_BY_ROLE = ("role", "event_type")
_BUS_COUNTERS = (  # (metric name, BusStats field, labels, help)
    ("intentd_events_published", "published", ("event_type",), "Events accepted by the bus."),
    ("intentd_events_handled", "handled", _BY_ROLE, "Handler calls that succeeded."),
    ("intentd_events_failed", "failed", _BY_ROLE, "Handler calls that raised, timed out or erred."),
    ("intentd_handler_timeouts", "timed_out", _BY_ROLE, "Handler calls cancelled at their budget."),
    ("intentd_handler_blocked", "blocked", _BY_ROLE, "Handler calls that held the loop too long."),
    (
        "intentd_events_unsubscribed",
        "unsubscribed",
        ("event_type",),
        "Events delivered to no handler: no role subscribes to their type.",
    ),
)


def bus_families(stats: BusStats, queue_depth: int) -> Iterator[Metric]:
    """Yield the message bus's counters and queue depth."""
    for name, attribute, labels, documentation in _BUS_COUNTERS:
        yield counter(name, documentation, labels, getattr(stats, attribute))
    yield counter(
        "intentd_events_rejected_queue_full",
        "Events refused because the bus queue was full.",
        (),
        {(): stats.rejected_full},
    )
    yield gauge("intentd_bus_queue_depth", "Events waiting for the dispatcher.", queue_depth)


def processor_families(stats: ProcessorStats) -> Iterator[Metric]:
    """Yield the IntentProcessor's counters by intent type."""
    labels = ("intent_type",)
    yield counter("intentd_intents_processed", "Intents carried out.", labels, stats.processed)
    yield counter("intentd_intents_failed", "Intents invalid or failed.", labels, stats.failed)


def supervisor_families(
    *,
    now: float,
    started_at: float | None,
    last_heartbeat: float | None,
    roles: int,
    active_workflows: int,
) -> Iterator[Metric]:
    """Yield the daemon's own gauges: uptime, last heartbeat, roles and workflows."""
    if started_at is not None:
        yield gauge("intentd_uptime_seconds", "Seconds since the daemon started.", now - started_at)
    if last_heartbeat is not None:
        yield gauge(
            "intentd_last_heartbeat_timestamp_seconds",
            "Epoch seconds of the last HEARTBEAT_TICK.",
            last_heartbeat,
        )
    yield gauge("intentd_roles_loaded", "Roles loaded and wired in.", roles)
    yield gauge("intentd_workflows_active", "LLM workflows running now.", active_workflows)


def workflow_families(engine: WorkflowEngine) -> Iterator[Metric]:
    """Yield finished workflows by state and LLM tokens by role and direction."""
    yield counter(
        "intentd_workflows_finished", "LLM workflows finished.", ("state",), engine.finished
    )
    yield counter(
        "intentd_llm_tokens", "LLM tokens used, by role and direction.", ("role", "direction"),
        engine.tokens,
    )  # fmt: skip


def timer_families(timers: TimerService | None) -> Iterator[Metric]:
    """Yield the number of pending timers (nothing before the store is open)."""
    if timers is not None:
        pending = timers.pending_count()
        yield gauge("intentd_timers_pending", "Timers stored and not yet fired.", pending)


def journal_families(intake: EventIntake | None, now: float) -> Iterator[Metric]:
    """Yield the event journal's backlog, its oldest entry's age, dead events and replays."""
    if intake is None:
        return
    stats = intake.stats
    yield gauge("intentd_journal_backlog", "Accepted events not yet handled.", stats.backlog)
    age = now - stats.oldest_at if stats.oldest_at is not None and stats.backlog else 0.0
    yield gauge(
        "intentd_journal_oldest_pending_age_seconds",
        "Age of the oldest accepted event not yet handled.",
        age,
    )
    yield gauge("intentd_journal_dead_events", "Events parked after failing.", stats.dead)
    yield counter(
        "intentd_journal_events",
        "Events the journal stored, and deliveries that were replays.",
        ("kind",),
        {"accepted": intake.accepted, "replayed": intake.replayed},
    )


def outbox_families(outbox: Outbox | None) -> Iterator[Metric]:
    """Yield the outbox's depth, deliveries by outcome, retries and kept dead letters."""
    if outbox is None:
        return
    stats = outbox.stats
    yield gauge("intentd_outbox_depth", "Notifications stored and not yet delivered.", stats.depth)
    yield counter(
        "intentd_outbox_deliveries",
        "Notifications that left the outbox, by outcome.",
        ("outcome",),
        {"delivered": stats.delivered, "dead_lettered": stats.dead_letters},
    )
    yield counter(
        "intentd_outbox_retries", "Failed attempts to be retried.", (), {(): stats.retries}
    )
    yield gauge(
        "intentd_outbox_dead_letters",
        "Dead letters kept for inspection and replay.",
        outbox.dead_letter_count(),
    )


_ROLE_COUNTERS = (  # (metric name, ROLE_* event counted, help)
    ("intentd_role_load_failures", ROLE_FAILED, "Role files that failed their checks on load."),
    (
        "intentd_role_reload_failures",
        ROLE_RELOAD_FAILED,
        "Changed role files that failed; the old version stayed live.",
    ),
    ("intentd_role_quarantines", ROLE_QUARANTINED, "Roles unsubscribed for failing too often."),
)


def role_families(registry: RoleRegistry) -> Iterator[Metric]:
    """Yield role load, reload and quarantine counters and the roles failing or quarantined now."""
    for name, event_type, documentation in _ROLE_COUNTERS:
        yield counter(name, documentation, (), {(): registry.event_counts[event_type]})
    failing = len(registry.failed)
    yield gauge("intentd_roles_failing", "Role files failing their checks now.", failing)
    yield gauge("intentd_roles_quarantined", "Roles quarantined now.", len(registry.quarantined))


def loop_lag_families(monitor: LoopLagMonitor) -> Iterator[Metric]:
    """Yield the event loop's latest and largest lag and how many lags were reported."""
    yield gauge(
        "intentd_loop_lag_seconds",
        "Lateness of the loop-lag monitor's last wake-up.",
        monitor.current,
    )
    yield gauge("intentd_loop_lag_max_seconds", "Largest loop lag seen.", monitor.max)
    yield counter(
        "intentd_loop_lag_reports",
        "Loop lags over the block threshold.",
        (),
        {(): monitor.reported},
    )


class BucketHistogram:
    """A histogram counted into plain buckets as values arrive and built into a family when scraped.

    Plain lists and ``bisect`` instead of a prometheus ``Histogram``: no lock on the hot path
    (bench/metrics_overhead.py: ~0.5 us per handler call; a bus of empty handlers runs 1.3x slower
    with it, 1.75x with a ``Histogram``).
    HandlerDurations and TimerLateness below are the two in use.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._bounds = tuple(buckets)
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: defaultdict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, value: float, *labels: str) -> None:
        """Count ``value`` under the label values ``labels``."""
        counts = self._counts.get(labels)
        if counts is None:
            counts = self._counts[labels] = [0] * (len(self._bounds) + 1)
        counts[bisect_left(self._bounds, value)] += 1
        self._sums[labels] += value

    def metric_families(self) -> Iterator[Metric]:
        """Yield the histogram family with one series per label set seen."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [*map(str, self._bounds), "+Inf"]
        for labels, counts in sorted(self._counts.items()):
            cumulative = [float(n) for n in accumulate(counts)]
            buckets = list(zip(bounds, cumulative, strict=True))
            family.add_metric(list(labels), buckets, sum_value=self._sums[labels])
        yield family


class HandlerDurations(BucketHistogram):
    """A bus observer that records each handler call's duration by role and event type."""

    def __init__(self, buckets: Sequence[float] = HANDLER_BUCKETS) -> None:
        super().__init__(
            "intentd_handler_duration_seconds",
            "Wall time of each event handler call, intents excluded.",
            ("role", "event_type"),
            buckets,
        )

    def __call__(
        self, sub: Subscription, context: EventContext, seconds: float, error: str | None
    ) -> None:
        """Record one handler call."""
        self.observe(seconds, sub.role, sub.event_type)


class TimerLateness(BucketHistogram):
    """The TimerService's ``on_fired`` hook: records how late each timer expiry was published."""

    def __init__(self, buckets: Sequence[float] = LATENESS_BUCKETS) -> None:
        super().__init__(
            "intentd_timer_lateness_seconds",
            "Seconds between a timer's deadline and its TIMER_EXPIRED being published.",
            (),
            buckets,
        )

    def __call__(self, seconds: float) -> None:
        """Record one expiry."""
        self.observe(seconds)


def daemon_metrics(
    *,
    bus: MessageBus,
    processor: IntentProcessor,
    daemon: Callable[[], Iterable[Metric]],
    handler_durations: "HandlerDurations",
    timers: TimerService,
    timer_lateness: "TimerLateness",
    outbox: Outbox,
    registry: RoleRegistry,
    loop_lag: LoopLagMonitor,
    workflows: WorkflowEngine,
    journal: EventIntake | None = None,
    clock: Callable[[], float] = time.time,
) -> Metrics:
    """Build a daemon's Metrics wired to its bus, processor, parts and daemon gauges."""
    metrics = Metrics()
    metrics.add_source("bus", lambda: bus_families(bus.stats, bus.queue_depth))
    metrics.add_source("intents", lambda: processor_families(processor.stats))
    metrics.add_source("supervisor", daemon)
    metrics.add_source("handler_durations", handler_durations.metric_families)
    metrics.add_source("timers", lambda: timer_families(timers))
    metrics.add_source("timer_lateness", timer_lateness.metric_families)
    metrics.add_source("outbox", lambda: outbox_families(outbox))
    metrics.add_source("journal", lambda: journal_families(journal, clock()))
    metrics.add_source("roles", lambda: role_families(registry))
    metrics.add_source("loop_lag", lambda: loop_lag_families(loop_lag))
    metrics.add_source("workflows", lambda: workflow_families(workflows))
    return metrics
