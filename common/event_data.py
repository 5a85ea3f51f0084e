"""Checks a role's event handler makes on the data it is given, refusing bad data in one line.

A handler raises EventDataError (through these checks) for data it cannot act on; the bus logs it
as one ``event_data_rejected`` warning and does not count it toward quarantine. Errors name the
event, the field and the type found, never the value (it may be user text).
"""

from collections.abc import Mapping
from typing import Any

from common.errors import EventDataError

_KINDS: dict[Any, str] = {str: "text", int: "a whole number", (int, float): "a number"}


def optional_field(
    data: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    event_type: str,
    what: str | None = None,
) -> Any:
    """Return ``data[key]`` (None when missing or None) if it is a ``kind``; refuse it otherwise."""
    value = data.get(key)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    expected = what or _KINDS.get(kind, str(kind))
    raise EventDataError(
        f"{event_type} data {key!r} must be {expected}, got {type(value).__name__}"
    )


def refuse(event_type: str, expected: str, data: Any) -> EventDataError:
    """Return the error for event data of the wrong shape altogether."""
    return EventDataError(f"{event_type} data must be {expected}, got {type(data).__name__}")
