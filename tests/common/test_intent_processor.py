import asyncio
from dataclasses import dataclass

import pytest
import structlog
from structlog.testing import capture_logs

from common.errors import RoleContractError
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent, EventIntent, Intent, NotificationIntent, WorkflowIntent
from tests.factories import make_bus


@dataclass
class PingIntent(Intent):
    target: str

    def validate(self) -> bool:
        return bool(self.target)


class RecordingChannels:
    def __init__(self):
        self.sent = []

    async def send(self, intent):
        self.sent.append(intent)


async def test_core_intents_are_carried_out_and_counted():
    channels = RecordingChannels()
    processor = IntentProcessor(channels)
    result = await processor.process_intents(
        [NotificationIntent("hello", "console"), AuditIntent("said_hello", {"to": "U1"}, "U1")]
    )
    assert result == {"processed": 2, "failed": 0, "errors": []}
    assert [i.message for i in channels.sent] == ["hello"]
    assert [(r.action, r.user_id) for r in processor.audit_sink.records] == [("said_hello", "U1")]


async def test_an_invalid_intent_is_counted_as_failed_never_raised():
    result = await IntentProcessor().process_intents([NotificationIntent("", "console")])
    assert result == {
        "processed": 0,
        "failed": 1,
        "errors": [
            "invalid NotificationIntent: NotificationIntent.message must be non-empty text, got ''"
        ],
    }


async def test_something_that_is_not_an_intent_is_a_failure():
    result = await IntentProcessor().process_intents(["notify me"])
    assert result["failed"] == 1
    assert result["errors"][0].startswith("'notify me' is not an Intent")


async def test_an_unregistered_role_intent_is_a_failure_naming_the_type():
    result = await IntentProcessor().process_intents([PingIntent("db")])
    assert result["errors"] == [
        f"PingIntent failed: no handler is registered for {PingIntent.type_name()}; "
        "register one in the role's register_role()['intents']"
    ]


async def test_role_intent_handlers_get_the_intent_and_optionally_services():
    seen = []

    async def process_ping(intent, services):
        seen.append((intent.target, services))
        return {"pinged": intent.target}

    processor = IntentProcessor(services_factory=lambda role: f"services for {role}")
    processor.register_role_intent_handler(PingIntent, process_ping, role="pinger")
    outcome = await processor.carry_out(PingIntent("db"))
    assert (outcome.ok, outcome.result) == (True, {"pinged": "db"})
    assert seen == [("db", "services for pinger")]


async def test_a_raising_role_handler_fails_its_intent_only():
    async def process_ping(intent):
        raise ConnectionError("db is down")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, process_ping, role="pinger")
    result = await processor.process_intents([PingIntent("db"), AuditIntent("after", {})])
    assert result == {
        "processed": 1,
        "failed": 1,
        "errors": ["PingIntent failed: db is down"],
    }


async def test_a_role_handler_over_its_budget_is_cancelled():
    async def process_ping(intent):
        await asyncio.Event().wait()

    processor = IntentProcessor(intent_timeout=0.01)
    processor.register_role_intent_handler(PingIntent, process_ping)
    result = await processor.process_intents([PingIntent("db")])
    assert result["errors"] == [
        "PingIntent failed: intent handler 'test_a_role_handler_over_its_budget_is_cancelled."
        "<locals>.process_ping' exceeded its 0.01 s budget and was cancelled"
    ]


def test_registration_checks_the_type_and_the_handler():
    processor = IntentProcessor()

    async def ok(intent):
        return None

    def not_async(intent):
        return None

    async def three(intent, services, extra):
        return None

    with pytest.raises(TypeError, match=r"is not a subclass of common\.intents\.Intent"):
        processor.register_role_intent_handler(dict, ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is not an async function"):
        processor.register_role_intent_handler(PingIntent, not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"signature \(intent, services, extra\); it must accept"):
        processor.register_role_intent_handler(PingIntent, three)


async def test_a_reloaded_intent_class_with_the_same_name_uses_the_new_handler():
    calls = []

    async def old(intent):
        calls.append("old")

    async def new(intent):
        calls.append("new")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, old, role="pinger")
    processor.unregister_role("pinger")

    @dataclass
    class ReloadedPing(Intent):
        target: str

        def validate(self) -> bool:
            return True

    ReloadedPing.__qualname__ = PingIntent.__qualname__
    processor.register_role_intent_handler(ReloadedPing, new, role="pinger")
    await processor.process_intents([PingIntent("db")])
    assert calls == ["new"]


async def test_an_intent_type_owned_by_another_role_is_refused_and_keeps_its_owner():
    calls = []

    async def mine(intent):
        calls.append("mine")

    async def theirs(intent):
        calls.append("theirs")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, mine, role="pinger")
    with pytest.raises(RoleContractError) as caught:
        processor.register_role_intent_handler(PingIntent, theirs, role="thief")
    await processor.process_intents([PingIntent("db")])
    assert (str(caught.value), calls) == (
        f"role 'thief' cannot handle {PingIntent.type_name()!r}: role 'pinger' already handles "
        "it; a role handles only the intents it defines",
        ["mine"],
    )


async def test_the_same_role_registering_its_intent_again_replaces_the_handler():
    calls = []

    async def old(intent):
        calls.append("old")

    async def new(intent):
        calls.append("new")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, old, role="pinger")
    processor.register_role_intent_handler(PingIntent, new, role="pinger")
    await processor.process_intents([PingIntent("db")])
    assert calls == ["new"]


async def test_a_handler_whose_extra_parameters_have_defaults_gets_the_services():
    seen = []

    async def process_ping(intent, services=None, extra=None):
        seen.append((services, extra))

    processor = IntentProcessor(services_factory=lambda role: f"services for {role}")
    processor.register_role_intent_handler(PingIntent, process_ping, role="pinger")
    await processor.process_intents([PingIntent("db")])
    assert seen == [("services for pinger", None)]


async def test_a_subclass_of_a_core_intent_is_handled_as_that_intent():
    @dataclass
    class UrgentNotification(NotificationIntent):
        priority: str = "high"

    channels = RecordingChannels()
    result = await IntentProcessor(channels).process_intents([UrgentNotification("db down", "ops")])
    assert (result["processed"], channels.sent[0].priority) == (1, "high")


async def test_a_workflow_without_an_engine_fails_with_a_clear_error():
    result = await IntentProcessor().process_intents([WorkflowIntent("timer", {})])
    assert result["errors"] == [
        "WorkflowIntent failed: no workflow engine configured, so workflow 'timer' cannot run; "
        "set llm.provider in config.yaml"
    ]


async def test_an_event_intent_publishes_on_the_bus():
    bus, processor = make_bus()
    seen = []
    bus.subscribe("r", "FOLLOW_UP", lambda data, context: seen.append(data))
    result = await processor.process_intents([EventIntent("FOLLOW_UP", {"x": 1})])
    await bus.drain()
    assert (result["processed"], seen) == (1, [{"x": 1}])


async def test_an_event_intent_without_a_bus_fails():
    result = await IntentProcessor().process_intents([EventIntent("FOLLOW_UP", {})])
    assert result["errors"][0] == (
        "EventIntent failed: EventIntent 'FOLLOW_UP' cannot be published: this IntentProcessor "
        "has no message bus"
    )


async def test_services_handler_without_a_factory_is_a_clear_failure():
    async def process_ping(intent, services):
        return None

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, process_ping)
    result = await processor.process_intents([PingIntent("db")])
    assert "was built without a services_factory" in result["errors"][0]


def test_the_notification_protocol_is_not_named_like_the_class_that_implements_it():
    import common.intent_processor as module

    assert (hasattr(module, "NotificationSender"), hasattr(module, "CommunicationManager")) == (
        True,
        False,
    )


async def test_an_intent_handler_raising_a_stray_cancelled_error_fails_that_intent_only():
    async def process_ping(intent):
        raise asyncio.CancelledError("not the daemon's")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, process_ping, role="pinger")
    result = await processor.process_intents([PingIntent("db"), AuditIntent("after", {})])
    assert (result["processed"], result["failed"]) == (1, 1)
    assert result["errors"] == ["PingIntent failed: not the daemon's"]


async def test_logs_of_a_role_intent_handler_carry_its_role_and_intent():
    async def process_ping(intent):
        structlog.get_logger("test").info("pinging")

    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, process_ping, role="pinger")
    ping = PingIntent("db", parent_id="evt-7")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await processor.process_intents([ping])
    [entry] = [e for e in logs if e["event"] == "pinging"]
    assert (entry["role"], entry["intent_id"], entry["parent_id"]) == (
        "pinger",
        ping.intent_id,
        "evt-7",
    )


class CallRecordingSink:
    """An audit sink that keeps each append call as one entry, and can refuse them."""

    def __init__(self, journal, refuse=False):
        self.journal = journal
        self.refuse = refuse

    async def append(self, record):
        await self.append_many([record])

    async def append_many(self, records):
        if self.refuse:
            raise OSError("disk full")
        self.journal.append(("audit", [r.action for r in records]))

    async def recent(self, limit):
        return []


class JournalChannels:
    def __init__(self, journal):
        self.journal = journal

    async def send(self, intent):
        self.journal.append(("notify", intent.message))


async def test_consecutive_audit_intents_are_appended_together_and_in_order():
    journal = []
    processor = IntentProcessor(JournalChannels(journal), audit_sink=CallRecordingSink(journal))
    result = await processor.process_intents(
        [
            AuditIntent("a", {}),
            AuditIntent("b", {}),
            NotificationIntent("between", "console"),
            AuditIntent("c", {}),
            NotificationIntent("", "console"),  # invalid: it does not split the run
            AuditIntent("d", {}),
        ]
    )
    assert (result["processed"], result["failed"]) == (5, 1)
    assert journal == [("audit", ["a", "b"]), ("notify", "between"), ("audit", ["c", "d"])]
    assert processor.stats.processed["common.intents.AuditIntent"] == 4


async def test_an_audit_append_that_fails_fails_each_intent_of_its_run_and_the_rest_go_on():
    journal = []
    processor = IntentProcessor(
        JournalChannels(journal), audit_sink=CallRecordingSink(journal, refuse=True)
    )
    result = await processor.process_intents(
        [AuditIntent("a", {}), AuditIntent("b", {}), NotificationIntent("after", "console")]
    )
    assert result == {
        "processed": 1,
        "failed": 2,
        "errors": ["AuditIntent failed: disk full", "AuditIntent failed: disk full"],
    }
    assert journal == [("notify", "after")]
    assert processor.stats.failed["common.intents.AuditIntent"] == 2
