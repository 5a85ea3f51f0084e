"""Cheap, unique, sortable-enough identifiers for events and intents.

A process-wide random prefix plus a counter: unique across restarts and processes, and far
cheaper than ``uuid4()`` on the bus's hot path.
"""

import hashlib
import itertools
import secrets

_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def new_id(kind: str) -> str:
    """Return a new id such as ``evt-1a2b3c4d-17``."""
    return f"{kind}-{_PREFIX}-{next(_counter)}"


def derived_event_id(key: str) -> str:
    """Return the event id an event stored under ``key`` always gets, so a replay keeps it."""
    return "evt-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
