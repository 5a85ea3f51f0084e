"""resume_within: a coroutine started by hand is driven on under its budget, like a task would."""

import asyncio

import pytest

from common.budget import resume_within


def first_step(coro):
    """Run ``coro`` to its first wait, as the IntentProcessor does; return what it waits on."""
    return coro.send(None)


async def test_a_coroutine_that_waits_is_resumed_and_its_result_returned():
    gate = asyncio.get_running_loop().create_future()

    async def handler():
        return await gate * 2

    coro = handler()
    waited = first_step(coro)
    gate.set_result(21)
    assert await resume_within(coro, waited, asyncio.get_running_loop().time() + 5) == 42


async def test_a_coroutine_that_sleeps_several_times_finishes():
    async def handler():
        for _ in range(3):
            await asyncio.sleep(0)
        return "done"

    coro = handler()
    assert await resume_within(coro, first_step(coro), asyncio.get_running_loop().time() + 5) == (
        "done"
    )


async def test_an_error_raised_after_the_first_wait_reaches_the_caller():
    async def handler():
        await asyncio.sleep(0)
        raise ValueError("bad row")

    coro = handler()
    with pytest.raises(ValueError, match="bad row"):
        await resume_within(coro, first_step(coro), asyncio.get_running_loop().time() + 5)


async def test_a_coroutine_past_its_deadline_is_cancelled_and_cleans_up():
    cleaned = []

    async def handler():
        try:
            await asyncio.get_running_loop().create_future()  # never done
        finally:
            cleaned.append("finally ran")

    coro = handler()
    waited = first_step(coro)
    with pytest.raises(TimeoutError):
        await resume_within(coro, waited, asyncio.get_running_loop().time() + 0.01)
    assert (cleaned, waited.cancelled()) == (["finally ran"], True)


async def test_a_deadline_already_past_cancels_at_the_next_wait():
    async def handler():
        await asyncio.sleep(0)
        await asyncio.sleep(3600)

    coro = handler()
    with pytest.raises(TimeoutError):
        await resume_within(coro, first_step(coro), asyncio.get_running_loop().time() - 1)


async def test_cancelling_the_caller_cancels_the_coroutine_and_goes_on_up():
    cleaned = []

    async def handler():
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("finally ran")

    async def caller():
        coro = handler()
        await resume_within(coro, first_step(coro), asyncio.get_running_loop().time() + 3600)

    task = asyncio.get_running_loop().create_task(caller())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally ran"]


async def test_a_coroutine_that_swallows_the_cancellation_keeps_its_result():
    async def handler():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "caught"

    coro = handler()
    # asyncio.timeout raises TimeoutError only when the cancellation came out; here it did not
    assert await resume_within(coro, first_step(coro), asyncio.get_running_loop().time()) == (
        "caught"
    )
