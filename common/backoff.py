"""Exponential backoff with jitter, for outbox retries, timer re-fires and Slack reconnects."""

from collections.abc import Callable


def backoff_delay(
    attempt: int, initial: float, maximum: float, random: Callable[[], float]
) -> float:
    """Return the wait after failed ``attempt``: doubling from ``initial``, capped, 50-100 %."""
    # A float power saturates to inf instead of overflowing, whatever the attempt number.
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 1023))
    return ceiling * (0.5 + 0.5 * random())
