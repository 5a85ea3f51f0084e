"""JSON as intentd reads and writes it: plain JSON, finite numbers only.

Rules kept here:
- ``loads`` refuses what is not plain JSON: ``NaN``, ``Infinity``, a number that overflows to
  infinity (``1e400``), an integer of more than 4300 digits, nesting deeper than Python can
  decode. Its error is one sentence that quotes nothing of the input, so it may go in a log line or
  an answer to a client.
- ``dumps`` never writes ``NaN`` or ``Infinity`` (which are not JSON): a non-finite float is
  written as ``null``.
"""

import json
import math
from typing import Any


class JSONRuleError(ValueError):
    """Text is not plain JSON with finite numbers; the message quotes none of it."""


def loads(text: str | bytes) -> Any:
    """Parse ``text`` as JSON; raise JSONRuleError for anything but plain, finite JSON."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it; the decoder alone would not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except JSONRuleError:
        raise
    except UnicodeDecodeError as err:
        raise JSONRuleError(
            f"the text is not UTF-8 (byte {err.start}); send UTF-8 encoded JSON"
        ) from err
    except json.JSONDecodeError as err:
        raise JSONRuleError(
            f"the text is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
            'send JSON such as {"key": "value"}'
        ) from err
    except RecursionError as err:
        raise JSONRuleError("the JSON is nested too deeply; send a flatter object") from err
    except ValueError as err:  # an integer over int's 4300-digit conversion limit
        raise JSONRuleError(
            "the JSON holds an integer of more than 4300 digits; send a smaller number"
        ) from err


def dumps(value: Any, **options: Any) -> str:
    """Return ``value`` as JSON text, non-finite floats written as ``null``."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:  # rare: walk the value only when it holds NaN or an infinity
        return json.dumps(_finite(value), allow_nan=False, **options)


def _refuse_constant(name: str) -> Any:
    raise JSONRuleError(f"the JSON holds {name}, which is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JSONRuleError(
            "the JSON holds a number too large for a float (it would be Infinity); "
            "send a finite number"
        )
    return number


# built once: json.loads given hooks builds a decoder per call
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
