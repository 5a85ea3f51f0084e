"""The shapes of the role contract, stated once.

- An event handler is called as ``handler(event_data, context)`` and returns a list of intents
  (or a coroutine producing one, if it truly needs to await).
- An intent handler is ``async def process_x(intent)`` or ``async def process_x(intent, services)``;
  ``intent_handler_arity`` is the one rule, used by the contract check and the IntentProcessor.
- A tool is a strands ``@tool`` function returning ``{"success", "message"[, "intent"]}``.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from common.context import EventContext
from common.intents import Intent

HandlerResult = list[Intent] | None
EventHandler = Callable[[Any, EventContext], HandlerResult | Awaitable[HandlerResult]]
IntentHandler = Callable[..., Awaitable[Any]]
ServicesFactory = Callable[[str], Any]


def intent_handler_arity(handler: Any) -> int:
    """Return 2 if ``handler`` is called as (intent, services), 1 if as (intent); else raise."""
    name = getattr(handler, "__qualname__", None) or repr(handler)
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(
            f"intent handler {name!r} is not an async function; write "
            "'async def process_x(intent, services)'"
        )
    signature = inspect.signature(handler)
    for arity in (2, 1):
        try:
            signature.bind(*range(arity))
        except TypeError:
            continue
        return arity
    raise TypeError(
        f"intent handler {name!r} has signature {signature}; it must accept (intent) or "
        "(intent, services)"
    )
