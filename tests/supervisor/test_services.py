from dataclasses import dataclass

from structlog.testing import capture_logs

from common.intents import Intent
from supervisor.services import DaemonServices
from tests.factories import make_bus


@dataclass
class RingIntent(Intent):
    room: str

    def validate(self) -> bool:
        return True


async def test_an_event_published_by_an_intent_handler_names_that_intent_as_its_cause():
    bus, processor = make_bus()
    processor.services_factory = lambda role: DaemonServices(
        role=role, bus=bus, timers=None, kv=None
    )

    async def process_ring(intent, services):
        services.publish("BELL_RANG", {"room": intent.room})

    processor.register_role_intent_handler(RingIntent, process_ring, role="bell")
    seen = []
    bus.subscribe("listener", "BELL_RANG", lambda data, context: seen.append(context))
    ring = RingIntent("hall")
    await processor.process_intents([ring])
    await bus.drain()
    [context] = seen
    assert (context.parent_id, context.source) == (ring.intent_id, "role:bell")


async def test_publishing_outside_an_intent_handler_has_no_cause():
    bus, _ = make_bus()
    seen = []
    bus.subscribe("listener", "BELL_RANG", lambda data, context: seen.append(context))
    DaemonServices(role="bell", bus=bus, timers=None, kv=None).publish("BELL_RANG")
    await bus.drain()
    assert seen[0].parent_id is None


def test_the_role_logger_names_the_role_in_every_event():
    services = DaemonServices(role="bell", bus=None, timers=None, kv=None)
    with capture_logs() as logs:
        services.log.info("rang", room="hall")
    assert logs == [{"event": "rang", "log_level": "info", "role": "bell", "room": "hall"}]
