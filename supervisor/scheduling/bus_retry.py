"""Publishing from a clock callback: a full bus defers the event a moment, never drops it."""

from collections.abc import Callable
from typing import Any

import structlog

from common.errors import BusFullError

log = structlog.get_logger("intentd.bus_retry")

RETRY_DELAY = 1.0  # seconds before an event the bus could not accept is offered again


def try_publish(publish: Callable[[], object], **fields: Any) -> bool:
    """Call ``publish()``; on a full bus log it with ``fields`` and return False (retry later)."""
    try:
        publish()
    except BusFullError as err:
        log.warning("publish_deferred", error=str(err), retry_in_s=RETRY_DELAY, **fields)
        return False
    return True
