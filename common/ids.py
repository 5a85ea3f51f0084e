"""Cheap, unique, sortable-enough identifiers for events and intents.

A process-wide random prefix plus a counter: unique across restarts and processes, and far
cheaper than ``uuid4()`` on the bus's hot path.
"""

import itertools
import secrets

_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def new_id(kind: str) -> str:
    """Return a new id such as ``evt-1a2b3c4d-17``."""
    return f"{kind}-{_PREFIX}-{next(_counter)}"
