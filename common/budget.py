"""Run a role's coroutine under a time budget, paying for a timer only when it waits.

Most intent handlers finish without ever waiting (they append, publish, store and return). For
those, the caller runs the coroutine's first step itself (``coro.send(None)``) and takes its
result: no ``asyncio.timeout``, so no timer handle is scheduled and cancelled per call. A coroutine
that does wait is handed to ``resume_within`` with the deadline its budget set when it started,
so a handler that overruns is cancelled exactly as under ``asyncio.timeout``.
"""

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


async def resume_within(coro: Coroutine[Any, Any, Any], waited: Any, deadline: float) -> Any:
    """Drive on a coroutine whose first step yielded ``waited``; cancel it at ``deadline``.

    ``deadline`` is in the loop's time; raises TimeoutError when it passes first.
    """
    async with asyncio.timeout_at(deadline):
        return await _Resumed(coro, waited)


class _Resumed:
    """An awaitable that hands the coroutine's pending wait to the task, then drives it on."""

    __slots__ = ("coro", "waited")

    def __init__(self, coro: Coroutine[Any, Any, Any], waited: Any) -> None:
        self.coro = coro
        self.waited = waited

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waited = self.coro, self.waited
        while True:
            try:
                sent = yield waited  # the task waits on what the coroutine waits on
            except BaseException as err:  # a cancellation (the budget) goes into the coroutine
                try:
                    waited = coro.throw(err)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waited = coro.send(sent)
                except StopIteration as done:
                    return done.value
