"""What the HTTP API accepts from a request: a JSON object body, and bounded query parameters.

Rules kept here:
- A body over ``MAX_BODY`` bytes is 413, a body not declared ``application/json`` 415, text that
  is not plain finite JSON (json_rules.py) 400, JSON that is not an object 422.
- A numeric query parameter is ASCII digits only, at most as long as its upper bound, within its
  range; anything else is 400. ``str.isdigit`` is not enough: it accepts ``'²'``, which ``int``
  refuses.
- Error texts quote no body, header or query value: they say what was expected.
"""

from typing import Any

from aiohttp import web

from common.errors import RequestRejected
from supervisor.ops.json_rules import JSONRuleError, loads

MAX_BODY = 64 * 1024


async def read_json_object(request: web.Request, what: str) -> dict[str, Any]:
    """Return the request's JSON object body after the size, type and syntax checks."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestRejected(413, too_large(request.content_length))
    if request.content_type != "application/json":
        raise RequestRejected(
            415,
            f"the request's Content-Type is not accepted; send {what} as "
            "'Content-Type: application/json'",
        )
    return parse_json_object(await request.read())


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Return ``body`` parsed as a JSON object; raise RequestRejected (400 or 422) otherwise."""
    try:
        data = loads(body)
    except JSONRuleError as err:
        raise RequestRejected(400, f"request body: {err}") from err
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(data), "number"
        )
        raise RequestRejected(
            422,
            f'request body must be a JSON object, got a JSON {kind}; wrap it as {{"value": ...}}',
        )
    return data


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """Return query parameter ``name`` as a whole number from ``low`` to ``high``."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    raise RequestRejected(
        400,
        f"query parameter {name} must be a whole number from {low} to {high} in ASCII "
        f"digits; send e.g. {name}={default}",
    )


def too_large(size: int | None) -> str:
    """Return the error for a body of ``size`` bytes (None if unknown) over the limit."""
    got = f"of {size} bytes " if size is not None else ""
    return f"request body {got}is over the {MAX_BODY}-byte limit; send a smaller JSON object"
