"""What a role's key-value store accepts, whatever holds it: text keys and JSON values.

Rules kept here (supervisor/store/kv.py and the test kit's MemoryKV both keep them):
- A key is a non-empty string of at most ``MAX_KEY_LENGTH`` characters.
- A value is anything JSON can hold; it is stored as JSON text, so what comes back is a copy.
"""

import json
from typing import Any

from common.errors import StoreError

MAX_KEY_LENGTH = 200


def check_key(role: str, key: Any) -> str:
    """Return ``key`` if it is a valid key; raise StoreError otherwise."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise StoreError(
            f"role {role!r} kv key {key!r:.60} is not a non-empty string of at most "
            f"{MAX_KEY_LENGTH} characters; use a short text key"
        )
    return key


def encode_value(role: str, key: str, value: Any) -> str:
    """Return ``value`` as JSON text; raise StoreError if JSON cannot hold it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as err:
        raise StoreError(
            f"role {role!r} kv key {key!r}: value {value!r:.60} is not JSON-serialisable; "
            "store only dicts, lists, strings, numbers, booleans and None"
        ) from err
