"""The shapes of the role contract, stated once.

- An event handler is called as ``handler(event_data, context)`` and returns a list of intents
  (or a coroutine producing one, if it truly needs to await).
- An intent handler is ``async def process_x(intent)`` or ``async def process_x(intent, services)``.
- A tool is a strands ``@tool`` function returning ``{"success", "message"[, "intent"]}``.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from common.context import EventContext
from common.intents import Intent

HandlerResult = list[Intent] | None
EventHandler = Callable[[Any, EventContext], HandlerResult | Awaitable[HandlerResult]]
IntentHandler = Callable[..., Awaitable[Any]]
ServicesFactory = Callable[[str], Any]
